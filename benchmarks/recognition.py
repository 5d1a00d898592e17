"""Recognition end to end: `POST /api/v1/recognitions` latency on one `kai serve` process, for a
512x384 phone-size JPEG and a 12-megapixel JPEG.

    .venv/bin/python -m benchmarks.recognition [--dataset DIR] [--requests 200]

A fresh data dir; an account; the dataset (a folder per label, by default the shared KTH-TIPS
set) imported with `kai dataset import` and trained on with `kai train`; then `kai serve
--no-worker` answers recognitions one at a time (one client: latency, not throughput) of
photos taken from the dataset and re-encoded at each size. Reported: client-side p50/p90/p99
and the server's own per-step timings (median). Then `kai serve` with its worker recognizes
one batch (a zip of 350 such 512x384 photos, 22 MB: under the default 25 MiB limit of a
request body): photos a second. Results go to
`benchmarks/results/recognition.json`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.run import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    ServeProcess,
    create_account,
    kai_command,
    stop_everything,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "kth-tips-color"
RESULTS = Path(__file__).resolve().parent / "results" / "recognition.json"
SIZES = {"512x384": (512, 384), "12 MP (4000x3000)": (4000, 3000)}
GOALS_MS = {"512x384": 50.0, "12 MP (4000x3000)": 120.0}


def _kai(data_dir: Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
    env.update({"KAI_DATA_DIR": str(data_dir), "KAI_LOG_LEVEL": "warning"})
    done = subprocess.run(
        [*kai_command(), *args],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kai {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _photos(dataset: Path, size: tuple[int, int], count: int, seed: int) -> list[bytes]:
    """Photos of the dataset at `size`, as a phone would save them (JPEG, quality 90). A
    12-megapixel photo is an enlarged texture with sensor-like noise, so it compresses like
    a real one rather than like a smooth enlargement."""
    rng = random.Random(seed)  # noqa: S311 - reproducible choice, not a secret
    sources = sorted(path for path in dataset.rglob("*") if path.suffix.lower() in {".jpg", ".png"})
    noise = np.random.default_rng(seed)
    made = []
    for path in rng.sample(sources, min(count, len(sources))):
        with Image.open(path) as image:
            resized = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        pixels = np.asarray(resized).astype(np.int16)
        pixels += noise.integers(-6, 7, pixels.shape, dtype=np.int16)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        made.append(buffer.getvalue())
    return made


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _measure(
    port: int, token: str, photos: list[bytes], requests: int, warm_up: int
) -> dict[str, Any]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies: list[float] = []
    steps: dict[str, list[float]] = {}
    try:
        for index in range(warm_up + requests):
            body, content_type = _multipart(photos[index % len(photos)])
            started = time.perf_counter()
            connection.request(
                "POST",
                "/api/v1/recognitions",
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            )
            response = connection.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 201:
                raise RuntimeError(f"recognition answered {response.status}: {payload[:500]!r}")
            if index >= warm_up:
                latencies.append(elapsed)
                for step, value in json.loads(payload)["timings"].items():
                    steps.setdefault(step, []).append(value)
    finally:
        connection.close()
    return {
        "requests": len(latencies),
        "photo_kilobytes": round(statistics.mean(len(photo) for photo in photos) / 1024, 1),
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p90_ms": round(_percentile(latencies, 0.9), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "server_steps_median_ms": {
            step: round(statistics.median(values), 2) for step, values in steps.items()
        },
    }


def _batch(port: int, token: str, photos: list[bytes]) -> dict[str, Any]:
    """One zip of `photos` as a recognition batch; photos a second from the batch's own
    timestamps (recorded to its end) and as the client saw it (upload to last poll)."""
    import http.client
    import zipfile
    from datetime import datetime

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        for index, photo in enumerate(photos):
            writer.writestr(f"photo-{index:04d}.jpg", photo)
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            'filename="photos.zip"\r\nContent-Type: application/zip\r\n\r\n'
        ).encode()
        + archive.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request(
        "POST",
        "/api/v1/recognition-batches",
        body=body,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    response = connection.getresponse()
    created = json.loads(response.read())
    if response.status != 202:
        raise RuntimeError(f"the batch was answered {response.status}: {created}")
    accepted = time.perf_counter() - started
    while True:
        connection.request("GET", f"/api/v1/recognition-batches/{created['id']}", headers=headers)
        batch = json.loads(connection.getresponse().read())
        if batch["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    connection.request("GET", f"/api/v1/jobs/{batch['job_id']}", headers=headers)
    job = json.loads(connection.getresponse().read())
    connection.close()
    # From the job's start: the request's own work (storing the photos) is counted above.
    seconds = (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    ).total_seconds()
    return {
        "photos": batch["total"],
        "recognized": batch["done"],
        "failed": batch["failed"],
        "upload_and_check_seconds": round(accepted, 2),
        "job_seconds": round(seconds, 2),
        "photos_per_second": round(batch["total"] / seconds, 1),
        "photos_per_second_end_to_end": round(batch["total"] / elapsed, 1),
        "goal_photos_per_second": 40.0,
        "job_seconds_by_step": (job.get("result") or {}).get("seconds"),
    }


def _login(port: int) -> str:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST",
            "/api/v1/auth/login",
            body=json.dumps({"email": BENCH_EMAIL, "password": BENCH_PASSWORD}),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return str(json.loads(response.read())["access_token"])
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recognition", description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--large-requests", type=int, default=60)
    parser.add_argument(
        "--batch", type=int, default=350, help="Photos in the batch (under the 25 MiB body limit)."
    )
    parser.add_argument(
        "--only",
        choices=("latency", "batch"),
        help="Measure one of the two only; results go to recognition-<only>.json.",
    )
    options = parser.parse_args()
    if not options.dataset.is_dir():
        raise SystemExit(
            f"no dataset at {options.dataset}: pass --dataset DIR (a folder per label)"
        )
    results: dict[str, Any] = {"dataset": str(options.dataset), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="kai-bench-recognition-") as scratch:
        data_dir = Path(scratch) / "kai-data"
        data_dir.mkdir()
        create_account(data_dir)
        started = time.perf_counter()
        _kai(data_dir, "models", "prepare")
        results["prepare_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        _kai(data_dir, "dataset", "import", str(options.dataset), "--organization", "bench")
        results["import_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        version = json.loads(_kai(data_dir, "train", "--organization", "bench", "--json"))
        results["train_seconds"] = round(time.perf_counter() - started, 1)
        results["validation_accuracy"] = version["metrics"]["accuracy"]
        results["votes"] = version["metrics"]["votes"]
        if options.only != "batch":
            results.update(_latencies(data_dir, options))
        if options.only != "latency":
            results["batch"] = _batch_throughput(data_dir, options)
    print(json.dumps(results, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    where = RESULTS.with_name(f"recognition-{options.only}.json") if options.only else RESULTS
    where.write_text(json.dumps(results, indent=2) + "\n")


def _latencies(data_dir: Path, options: argparse.Namespace) -> dict[str, Any]:
    """One recognition at a time on `kai serve --no-worker`, at each photo size."""
    results: dict[str, Any] = {}
    server = ServeProcess(data_dir, worker=False)
    server.start()
    try:
        server.wait_ready()
        token = _login(server.port)
        for name, size in SIZES.items():
            large = size[0] * size[1] > 2_000_000
            photos = _photos(options.dataset, size, 8 if large else 40, seed=7)
            measured = _measure(
                server.port,
                token,
                photos,
                options.large_requests if large else options.requests,
                warm_up=5 if large else 20,
            )
            measured["goal_p50_ms"] = GOALS_MS[name]
            results[name] = measured
            print(name, json.dumps(measured), flush=True)
    finally:
        server.stop()
    return results


def _batch_throughput(data_dir: Path, options: argparse.Namespace) -> dict[str, Any]:
    """The server's own worker (as `make run` runs it) recognizes one zip of photos."""
    server = ServeProcess(data_dir, worker=True)
    server.start()
    try:
        server.wait_ready()
        token = _login(server.port)
        photos = _photos(options.dataset, SIZES["512x384"], 275, seed=11)
        photos = (photos * (options.batch // len(photos) + 1))[: options.batch]
        measured = _batch(server.port, token, photos)
        print("batch", json.dumps(measured), flush=True)
        return measured
    finally:
        server.stop()
        stop_everything()


if __name__ == "__main__":
    main()
