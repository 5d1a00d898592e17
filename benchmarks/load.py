"""A mixed workload against the server profile: two API processes and a job worker.

`kai serve --workers 2 --no-worker` and `kai worker` on one data dir (the embedded
PostgreSQL started once, by the server); a catalog of materials with photos is made through
the API, then `--clients` concurrent clients each loop for `--duration` seconds over what
people and integrations do all day, each request of one kind, chosen by weight:

- searches with words and facets, and a search box's suggestions;
- reads of a material and of a page of materials;
- writes: a material changed (If-Match, each client its own materials);
- recognitions of a photo;
- now and then a batch of photos, or an import of a small CSV (both run on the worker).

Every answer is checked: anything but the kind's expected status is an error, as is a
request past `--timeout`. Reported per kind: count, errors, p50/p99. Each process's memory
(RSS) is sampled every `--sample-seconds` all along; with `--soak-minutes` the run goes on that
long and the report gives each process's memory at its first and last minute, so growth shows.
A pool that ran dry shows as errors: a request that waited past the pool's timeout is one.

    python -m benchmarks.load [--clients 64] [--duration 60] [--soak-minutes 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from benchmarks.run import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    ServeProcess,
    create_account,
    kai_command,
    stop_everything,
)

WORDS = ("carrara", "nero", "travertine", "slate", "oak", "basalt", "terrazzo", "onyx")
FINISHES = ("polished", "honed", "brushed")
# Kind: weight of the mix (per 1,000 requests).
MIX = {
    "search": 300,
    "suggest": 80,
    "read": 220,
    "list": 100,
    "write": 120,
    "recognition": 160,
    "batch": 10,
    "import": 10,
}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def record(self, kind: str, seconds: float, problem: str | None) -> None:
        self.latencies[kind].append(seconds)
        if problem is not None:
            self.errors[kind].append(problem)


def photo(family: int, seed: int = 0, size: int = 320) -> bytes:
    """A textured JPEG of a colour family, with grain, like a close photo of a surface."""
    rng = random.Random(family * 1_000_003 + seed)  # noqa: S311 - reproducible pictures
    hues = ((225, 222, 215), (70, 75, 85), (160, 110, 60), (190, 170, 150))
    base = tuple(max(0, min(255, channel + rng.randrange(-15, 15))) for channel in hues[family % 4])
    image = Image.new("RGB", (size, size), base)
    pixels = image.load()
    assert pixels is not None
    for _ in range(size * 8):
        x, y = rng.randrange(size), rng.randrange(size)
        shade = rng.randrange(-40, 40)
        pixels[x, y] = tuple(max(0, min(255, channel + shade)) for channel in base)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kai-load-") as scratch:
        root = Path(scratch)
        (root / "data").mkdir()
        yield root


class Worker:
    """`kai worker` beside the servers, on their database."""

    def __init__(self, data_dir: Path, settings: dict[str, str]) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
        env.update({"KAI_DATA_DIR": str(data_dir), "KAI_LOG_LEVEL": "warning", **settings})
        self.log_path = data_dir.parent / "worker.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*kai_command(), "worker"],
                env=env,
                cwd=data_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def processes_of(server: ServeProcess, worker: Worker) -> dict[str, int]:
    """The API processes (the server's children that serve: not PostgreSQL's) and the worker."""
    found = {"serve (parent)": server.pid, "worker": worker.process.pid}
    others = [pid for pid in _children(server.pid) if "postgres" not in _command_line(pid)]
    number = 0
    for pid in others:
        command = _command_line(pid)
        if "multiprocessing" in command and "spawn_main" in command:
            number += 1
            found[f"api {number}"] = pid
        else:
            found[command[:40].strip()] = pid
    return found


async def sample_memory(
    processes: dict[str, int], every: float, into: dict[str, list[tuple[float, int]]]
) -> None:
    started = time.monotonic()
    while True:
        for name, pid in processes.items():
            with contextlib.suppress(OSError):
                into[name].append((time.monotonic() - started, rss_bytes(pid)))
        await asyncio.sleep(every)


class Catalog:
    """What the run made: its materials."""

    def __init__(self) -> None:
        self.materials: list[str] = []


CATEGORIES = ("Marble", "Slate", "Oak", "Terrazzo")


async def build_catalog(client: httpx.AsyncClient, materials: int, photos: int) -> Catalog:
    """Four categories of materials, `photos` of them with a photo (their category's colour
    family, so a model can tell the categories apart)."""
    catalog = Catalog()
    categories = []
    for name in CATEGORIES:
        category = await client.post(
            "/api/v1/categories",
            json={
                "name": name,
                "properties": [
                    {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm"},
                    {
                        "key": "finish",
                        "label": "Finish",
                        "type": "enum",
                        "options": list(FINISHES),
                    },
                ],
            },
        )
        category.raise_for_status()
        categories.append(category.json()["id"])
    rng = random.Random(7)  # noqa: S311 - reproducible data
    for number in range(materials):
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {number}"
        created = await client.post(
            "/api/v1/materials",
            json={
                "name": name,
                "code": f"LOAD-{number:05d}",
                "category_id": categories[number % len(categories)],
                "status": "active",
                "properties": {
                    "thickness": rng.choice((8, 10, 12, 20, 30)),
                    "finish": rng.choice(FINISHES),
                },
            },
        )
        created.raise_for_status()
        catalog.materials.append(created.json()["id"])
    for number in range(photos):
        uploaded = await client.post(
            f"/api/v1/materials/{catalog.materials[number]}/images",
            files={
                "file": (
                    f"photo-{number}.jpg",
                    photo(number % len(categories), number),
                    "image/jpeg",
                )
            },
        )
        uploaded.raise_for_status()
    return catalog


async def train_model(client: httpx.AsyncClient) -> None:
    """A model trained on the photos (by category) and active, as recognitions need one."""
    started = await client.post("/api/v1/models", json={"label_by": "category"})
    started.raise_for_status()
    version_id = started.json()["id"]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        version = (await client.get(f"/api/v1/models/{version_id}")).json()
        if version["status"] in ("ready", "active") or version.get("active"):
            return
        if version["status"] == "failed":
            raise RuntimeError(f"training failed: {version}")
        await asyncio.sleep(1.0)
    raise RuntimeError("training took more than 15 minutes")


async def wait_for_images(client: httpx.AsyncClient, catalog: Catalog, photos: int) -> None:
    """Until the worker has made every photo's derivatives (and its embedding)."""
    deadline = time.monotonic() + 600
    for material_id in catalog.materials[:photos]:
        while True:
            listed = (await client.get(f"/api/v1/materials/{material_id}/images")).json()
            if all(image["status"] != "processing" for image in listed["items"]):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not process the photos in 10 minutes")
            await asyncio.sleep(0.5)


def csv_of(rows: int, seed: int) -> bytes:
    lines = ["code,name,category,thickness,finish"]
    lines += [
        f"IMP-{seed:06d}-{row:03d},Imported {seed} {row},Surfaces,12,honed" for row in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


Operation = Callable[[httpx.AsyncClient, random.Random], Awaitable[str | None]]


def operations(catalog: Catalog, client_number: int, clients: int) -> dict[str, Operation]:
    """Each kind's request: it returns None when the answer is what it should be."""
    mine = catalog.materials[client_number::clients] or catalog.materials
    counter = iter(range(10**9))

    def expect(response: httpx.Response, *statuses: int) -> str | None:
        if response.status_code in statuses:
            return None
        return f"{response.request.method} {response.request.url.path}: {response.status_code}"

    async def search(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        words = " ".join(rng.sample(WORDS, rng.choice((1, 1, 2))))
        params: dict[str, Any] = {"q": words, "limit": 20}
        if rng.random() < 0.3:
            params["filter"] = f"finish:{rng.choice(FINISHES)}"
        return expect(await client.get("/api/v1/search", params=params), 200)

    async def suggest(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        word = rng.choice(WORDS)
        prefix = word[: rng.randrange(2, len(word) + 1)]
        return expect(await client.get("/api/v1/search/suggest", params={"q": prefix}), 200)

    async def read(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        return expect(await client.get(f"/api/v1/materials/{rng.choice(catalog.materials)}"), 200)

    async def listing(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        return expect(await client.get("/api/v1/materials", params={"limit": 20}), 200)

    async def write(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        material_id = rng.choice(mine)
        current = await client.get(f"/api/v1/materials/{material_id}")
        if current.status_code != 200:
            return expect(current, 200)
        changed = await client.patch(
            f"/api/v1/materials/{material_id}",
            json={"description": f"Checked {next(counter)} times by client {client_number}."},
            headers={"If-Match": current.headers["etag"]},
        )
        return expect(changed, 200)

    async def recognition(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        data = photo(rng.randrange(4), rng.randrange(10**6))
        answered = await client.post(
            "/api/v1/recognitions", files={"file": ("site.jpg", data, "image/jpeg")}
        )
        return expect(answered, 201)

    async def batch(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        files = [
            (
                "files",
                (f"b{number}.jpg", photo(rng.randrange(4), rng.randrange(10**6)), "image/jpeg"),
            )
            for number in range(5)
        ]
        return expect(await client.post("/api/v1/recognition-batches", files=files), 202, 201)

    async def imports(client: httpx.AsyncClient, rng: random.Random) -> str | None:
        data = csv_of(20, rng.randrange(10**6))
        started = await client.post(
            "/api/v1/catalog/imports",
            files={"file": ("materials.csv", data, "text/csv")},
            data={"mode": "all_or_nothing"},
        )
        return expect(started, 202, 200, 201)

    return {
        "search": search,
        "suggest": suggest,
        "read": read,
        "list": listing,
        "write": write,
        "recognition": recognition,
        "batch": batch,
        "import": imports,
    }


async def run_client(
    number: int,
    clients: int,
    base_url: str,
    token: str,
    catalog: Catalog,
    until: float,
    timeout: float,  # noqa: ASYNC109 - each request's, handed to httpx
    tally: Tally,
) -> None:
    rng = random.Random(1000 + number)  # noqa: S311 - a reproducible mix
    kinds = list(MIX)
    weights = [MIX[kind] for kind in kinds]
    ops = operations(catalog, number, clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    ) as client:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                problem = await ops[kind](client, rng)
            except httpx.TimeoutException:
                problem = f"{kind}: no answer in {timeout:g} s"
            except httpx.HTTPError as exc:
                problem = f"{kind}: {type(exc).__name__}: {exc}"
            tally.record(kind, time.perf_counter() - started, problem)


async def drive(
    options: argparse.Namespace, server: ServeProcess, worker: Worker
) -> dict[str, Any]:
    base_url = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as setup:
        login = await setup.post(
            "/api/v1/auth/login", json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD}
        )
        login.raise_for_status()
        token = login.json()["access_token"]
        setup.headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        catalog = await build_catalog(setup, options.materials, options.photos)
        await wait_for_images(setup, catalog, options.photos)
        await train_model(setup)
        print(
            f"catalog: {options.materials} materials, {options.photos} with a photo, and a"
            f" model trained on them, in {time.perf_counter() - started:.0f} s",
            flush=True,
        )

    tally = Tally()
    memory: dict[str, list[tuple[float, int]]] = defaultdict(list)
    seconds = options.soak_minutes * 60 if options.soak_minutes else options.duration
    until = time.monotonic() + seconds
    sampler = asyncio.create_task(
        sample_memory(processes_of(server, worker), options.sample_seconds, memory)
    )
    await asyncio.gather(
        *(
            run_client(
                number, options.clients, base_url, token, catalog, until, options.timeout, tally
            )
            for number in range(options.clients)
        )
    )
    sampler.cancel()
    return {"seconds": seconds, "tally": tally, "memory": memory}


def report(options: argparse.Namespace, result: dict[str, Any]) -> str:
    tally: Tally = result["tally"]
    seconds = result["seconds"]
    total = sum(len(values) for values in tally.latencies.values())
    errors = sum(len(values) for values in tally.errors.values())
    lines = [
        f"{options.clients} clients for {seconds:.0f} s against `kai serve --workers 2"
        f" --no-worker` and `kai worker`: {total:,} requests, {total / seconds:,.0f} a second,"
        f" {errors} errors",
        "",
        "| kind | requests | errors | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in MIX:
        values = tally.latencies.get(kind, [])
        lines.append(
            f"| {kind} | {len(values):,} | {len(tally.errors.get(kind, []))} |"
            f" {percentile(values, 0.5) * 1000:.0f} | {percentile(values, 0.99) * 1000:.0f} |"
        )
    lines += ["", "| process | RSS first minute (MiB) | RSS last minute (MiB) | peak (MiB) |"]
    lines.append("|---|---:|---:|---:|")
    for name, samples in result["memory"].items():
        if not samples:
            continue
        end = samples[-1][0]
        first = [rss for at, rss in samples if at <= 60] or [samples[0][1]]
        last = [rss for at, rss in samples if at >= end - 60] or [samples[-1][1]]
        mib = 1024 * 1024
        lines.append(
            f"| {name} | {statistics.median(first) / mib:,.0f} |"
            f" {statistics.median(last) / mib:,.0f} |"
            f" {max(rss for _, rss in samples) / mib:,.0f} |"
        )
    shown = [problem for problems in tally.errors.values() for problem in problems[:5]]
    if shown:
        lines += ["", "First errors:", *(f"- {problem}" for problem in shown[:20])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="run this long instead")
    parser.add_argument("--materials", type=int, default=600)
    parser.add_argument("--photos", type=int, default=40, help="materials given a photo")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take")
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    options = parser.parse_args(argv)
    settings = {
        # Measured is what the processes serve, not what the limits let through.
        "KAI_RATE_LIMITS__ENABLED": "false",
        "KAI_JOBS__HEAVY_QUEUED_PER_ORGANIZATION": "10000",
    }
    with scratch_dir() as root:
        data_dir = root / "data"
        server = ServeProcess(data_dir, worker=False, settings=settings, processes=2)
        worker: Worker | None = None
        try:
            server.start()
            server.wait_ready()
            create_account(data_dir)
            worker = Worker(data_dir, settings)
            result = asyncio.run(drive(options, server, worker))
        finally:
            if worker is not None:
                worker.stop()
            stop_everything()
        text = report(options, result)
        print(text)
        problems = server.log_problems()
        if problems:
            print("\nThe servers' log mentions errors:", *problems[:10], sep="\n- ")
        if options.json:
            tally: Tally = result["tally"]
            options.json.write_text(
                json.dumps(
                    {
                        "latencies": {k: sorted(v) for k, v in tally.latencies.items()},
                        "errors": tally.errors,
                        "memory": result["memory"],
                    }
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
