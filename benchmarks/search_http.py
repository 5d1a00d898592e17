"""Catalog search through the HTTP API, on a catalog `benchmarks.catalog` generated.

    .venv/bin/python -m benchmarks.search_http --data-dir /tmp/kai-cat-100k \
        [--materials 100000] [--queries 300] [--clients 64] [--duration 30]

One `kai serve` (one process, no worker) on the catalog's data dir, the benchmark account
signed in with a bearer token, then:

- search with facets: `--queries` requests one after another on one keep-alive connection, the
  mix `benchmarks.catalog` measures in-process (words, common and selective; browsing the whole
  catalog; browsing a category or a property filter), full-text, facets counted;
- autocomplete: what a search box sends as a person types;
- hybrid search: the everyday words in the API's default mode (full-text fused with the
  nearest by meaning);
- `--clients` connections for `--duration` seconds from wrk, each request the next of a mix of
  all three: errors, timeouts and the latency distribution.

The catalog is generated and imported first when the data dir holds none (`--materials`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchmarks.catalog import BENCH_PASSWORD, QUERIES, TYPED, percentile
from benchmarks.run import ServeProcess, parse_wrk, start_profiler

RESULTS = Path(__file__).parent / "results"
# Everyday words people type, of the kinds QUERIES has, searched in the default (hybrid) mode.
HYBRID = [query for query in QUERIES if "-" not in query and '"' not in query]


class Client:
    """One keep-alive connection with the benchmark's bearer token."""

    def __init__(self, port: int, timeout: float = 60) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """Status, decoded JSON body and milliseconds from sending to the last byte."""
        payload = json.dumps(body) if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if payload else {})}
        begun = time.perf_counter()
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - begun) * 1000
        return response.status, json.loads(data) if data else None, elapsed


def search_paths(queries: int, views: list[str], seed: int) -> list[tuple[str, str]]:
    """(kind, path) of the mix benchmarks.catalog measures in-process, in the same order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible queries, not secrets
    paths = []
    for index in range(queries):
        params: list[tuple[str, str]] = [("mode", "fulltext"), ("limit", "20")]
        text = QUERIES[index % len(QUERIES)] if index % 5 else None
        if text:
            params.append(("q", text))
        narrowed = False
        if index % 3 == 1:
            params.append(
                ("filter", rng.choice(["thickness>=10", "frost_resistant:true", "colour:white"]))
            )
            narrowed = True
        if index % 4 == 2:
            params.append(("category_id", rng.choice(views)))
            narrowed = True
        kind = "words" if text else "browse_narrowed" if narrowed else "browse_all"
        paths.append((kind, "/api/v1/search?" + urlencode(params)))
    return paths


def catalog_names(client: Client) -> list[list[str]]:
    """The words of the names of the catalog's newest 500 materials."""
    names = []
    cursor = None
    for _ in range(5):
        params = {"mode": "fulltext", "limit": "100", "facets": "false"}
        _, found, _ = client.call(
            "GET",
            "/api/v1/search?" + urlencode({**params, **({"cursor": cursor} if cursor else {})}),
        )
        cursor = found["next_cursor"]
        names += [item["material"]["name"].lower().split() for item in found["items"]]
    return names


def first_typed(names: list[list[str]], how_many: int, seed: int) -> list[str]:
    """Beginnings of the catalog's own names, each different and none of TYPED: what people
    type for the first time (as much of a word or two as search boxes send)."""
    words = {word for named in names for word in named}
    pairs = {" ".join(named[i : i + 2]) for named in names for i in range(len(named) - 1)}
    beginnings = {word[:length] for word in words for length in range(3, len(word) + 1)}
    beginnings |= {pair[: pair.index(" ") + 2] for pair in pairs}
    rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
    chosen = sorted(beginnings - set(TYPED))
    rng.shuffle(chosen)
    return chosen[:how_many]


def first_searched(names: list[list[str]], how_many: int, seed: int) -> list[str]:
    """Two words of the catalog's names together, each query different and none of QUERIES:
    searches nobody made before (their counts are not kept yet)."""
    words = sorted({word for named in names for word in named if word.isalpha()})
    rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
    chosen: dict[str, None] = {}
    while len(chosen) < min(how_many, len(words) * (len(words) - 1)):
        query = " ".join(rng.sample(words, 2))
        if query not in QUERIES:
            chosen[query] = None
    return list(chosen)


def machine_speed() -> float:
    """Milliseconds of a fixed piece of Python work (encoding and decoding a page of results'
    worth of JSON), the best of seven: this shared machine's speed drifts 2-3x from hour to
    hour, and a run's figures are compared through it."""
    page = {
        "items": [
            {"id": str(n), "name": f"Material {n}", "properties": {"a": n, "b": [n, n + 1]}}
            for n in range(200)
        ]
    }
    best = math.inf
    for _ in range(7):
        begun = time.perf_counter()
        for _ in range(50):
            json.loads(json.dumps(page))
        best = min(best, time.perf_counter() - begun)
    return round(best * 1000, 2)


def rss_mib(pid: int) -> float:
    """The process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": round(percentile(values, 0.5), 2),
        "p90": round(percentile(values, 0.9), 2),
        "p99": round(percentile(values, 0.99), 2),
        "max": round(max(values), 2),
    }


def timed(
    client: Client, paths: list[tuple[str, str]], *, first_time: bool = False
) -> dict[str, Any]:
    """Each path once, in order, after the first twenty as a warm-up; latencies by kind. With
    `first_time`, the twenty of the warm-up are not measured again (each path is asked once)."""
    for _, path in paths[:20]:
        client.call("GET", path)
    if first_time:
        paths = paths[20:]
    kinds: dict[str, list[float]] = {}
    every: list[float] = []
    for kind, path in paths:
        status, body, elapsed = client.call("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body}")
        kinds.setdefault(kind, []).append(elapsed)
        every.append(elapsed)
    return {
        "all": summary(every),
        **(
            {kind: summary(values) for kind, values in sorted(kinds.items())}
            if len(kinds) > 1
            else {}
        ),
    }


def wrk_mix(
    port: int, token: str, paths: list[str], clients: int, duration: float, scratch: Path
) -> dict[str, Any]:
    """`clients` connections from wrk for `duration` s, each request the next path of the mix."""
    script = scratch / "search-mix.lua"
    quoted = ",\n".join(json.dumps(path) for path in paths)
    script.write_text(
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f"local paths = {{\n{quoted}\n}}\n"
        "local next_one = 0\n"
        "request = function()\n"
        "  next_one = next_one % #paths + 1\n"
        '  return wrk.format("GET", paths[next_one])\n'
        "end\n"
    )
    command = [
        "wrk", "-t2", f"-c{clients}", f"-d{round(duration)}s", "--timeout", "10s", "--latency",
        "-s", str(script), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 60
    )
    parsed = parse_wrk(result.stdout)
    parsed["timeouts"] = int(_after(result.stdout, "timeout "))
    return parsed


def _after(text: str, marker: str) -> str:
    if marker not in text:
        return "0"
    return text.split(marker, 1)[1].split()[0].rstrip(",")


def ensure_catalog(options: argparse.Namespace) -> None:
    """Generate and import the catalog into the data dir unless it holds one already."""
    if (options.data_dir / "loaded").exists():
        return
    subprocess.run(
        [sys.executable, "-m", "benchmarks.catalog", "--data-dir", str(options.data_dir),
         "--materials", str(options.materials), "--load-only"],
        check=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_http", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--materials", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--setting", action="append", default=[], metavar="KAI_X=value")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy samples the server during the concurrent run: a flame graph (.svg) or "
        "collapsed stacks (.txt).",
    )
    options = parser.parse_args()
    options.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_catalog(options)

    settings = dict(setting.split("=", 1) for setting in options.setting)
    server = ServeProcess(options.data_dir / "kai-data", worker=False, settings=settings)
    server.start()
    results: dict[str, Any] = {"materials": options.materials, "queries": options.queries}
    results["machine_speed_ms"] = machine_speed()
    print("  machine speed (fixed Python work):", results["machine_speed_ms"], "ms", flush=True)
    try:
        results["ready_s"] = round(server.wait_ready(), 1)
        results["idle_after_s"] = round(server.wait_idle(), 1)
        client = Client(server.port)
        status, body, _ = client.call(
            "POST",
            "/api/v1/auth/login",
            {"email": "bench@quarry.example", "password": BENCH_PASSWORD},
        )
        if status != 200:
            raise RuntimeError(f"the benchmark account cannot sign in ({status}): {body}")
        token = body["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        _, tree, _ = client.call("GET", "/api/v1/categories?limit=100")
        rows = tree["items"] if isinstance(tree, dict) else tree
        views = [row["id"] for row in rows if len(row["path"]) < 2]
        # The first search reads the catalog's columns and postings into the process: what
        # it costs once per process (and organization), and what it holds after.
        rss_before = rss_mib(server.pid)
        patient = Client(server.port, timeout=1800)
        patient.headers = client.headers
        _, first, cold_ms = patient.call("GET", "/api/v1/search?mode=fulltext&limit=1")
        # The server closes a connection left idle that long: a fresh one for the rest.
        client = Client(server.port)
        client.headers = patient.headers
        results["materials_found"] = first["total"]
        results["first_search_ms"] = round(cold_ms, 1)
        results["rss_mib"] = {"before_first_search": rss_before, "after": rss_mib(server.pid)}
        print("  first search:", results["first_search_ms"], "ms", results["rss_mib"], flush=True)

        paths = search_paths(options.queries, views, options.seed)
        results["search_with_facets_ms"] = timed(client, paths)
        print("  search with facets:", json.dumps(results["search_with_facets_ms"]), flush=True)
        typed = [
            ("suggest", "/api/v1/search/suggest?" + urlencode({"q": TYPED[i % len(TYPED)]}))
            for i in range(options.queries)
        ]
        results["autocomplete_ms"] = timed(client, typed)["all"]
        print("  autocomplete:", json.dumps(results["autocomplete_ms"]), flush=True)
        # Suggestions are kept until the catalog changes: letters nobody typed before cost
        # the database's trigram search each time.
        names = catalog_names(client)
        fresh = [
            ("suggest", "/api/v1/search/suggest?" + urlencode({"q": text}))
            for text in first_typed(names, options.queries + 20, options.seed)
        ]
        results["autocomplete_first_typed_ms"] = timed(client, fresh, first_time=True)["all"]
        print("  autocomplete, first typed:", results["autocomplete_first_typed_ms"], flush=True)
        hybrid = [
            ("hybrid", "/api/v1/search?" + urlencode({"q": HYBRID[i % len(HYBRID)]}))
            for i in range(options.queries)
        ]
        # Counts (and corrections) are kept until the catalog changes: words nobody searched
        # before are counted, corrected and ranked afresh.
        unseen = [
            ("words", "/api/v1/search?" + urlencode({"mode": "fulltext", "limit": 20, "q": text}))
            for text in first_searched(names, options.queries + 20, options.seed)
        ]
        results["search_first_time_ms"] = timed(client, unseen, first_time=True)["all"]
        print("  search, words never searched before:", results["search_first_time_ms"], flush=True)
        results["hybrid_ms"] = timed(client, hybrid)["all"]
        print("  hybrid:", json.dumps(results["hybrid_ms"]), flush=True)

        # Everyday traffic: mostly searches as typed (hybrid, full-text with filters and
        # facets), with the search box's suggestions between them.
        mix = []
        for index in range(options.queries):
            mix.append(paths[index][1])
            mix.append(typed[index][1])
            if index % 3 == 0:
                mix.append(hybrid[index][1])
        scratch = options.data_dir / "wrk"
        scratch.mkdir(exist_ok=True)
        profiler = (
            start_profiler(server.pid, options.profile, options.duration)
            if options.profile
            else None
        )
        loaded = wrk_mix(server.port, token, mix, options.clients, options.duration, scratch)
        if profiler is not None:
            profiler.wait(timeout=60)
        results["concurrent"] = {"clients": options.clients, **loaded}
        print("  concurrent:", json.dumps(results["concurrent"]), flush=True)
        results["rss_mib"]["end"] = rss_mib(server.pid)
    finally:
        server.stop()
    results["log_problems"] = server.log_problems()[:20]
    print(json.dumps(results, indent=2))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
