"""`kai serve` on the embedded default, as a new user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from kai.kit.pgembed import EmbeddedPostgres


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_")}
    env.update({"KAI_DATA_DIR": str(tmp_path / "kai-data"), "KAI_LOG_LEVEL": "warning"})
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        with (tmp_path / f"serve-{len(started)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kai", "serve", "--port", str(port)],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    server = EmbeddedPostgres(tmp_path / "kai-data" / "postgres")
    if server.is_running():
        server.stop()


def _wait_ready(port: int, process: subprocess.Popen[bytes], logs: Path) -> None:
    # Generous: a first start migrates a new database, on a machine that may be busy.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # What it wrote says why (each run's output is a serve-N.log in `logs`).
            written = "\n".join(
                path.read_text(errors="replace")[-3000:]
                for path in sorted(logs.glob("serve-*.log"))
            )
            raise AssertionError(f"kai serve exited ({process.returncode}):\n{written}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("kai serve never became ready")


def _postgres_processes(data_dir: Path) -> list[str]:
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True
    )
    return [line for line in listing.stdout.splitlines() if str(data_dir) in line]


def test_serve_starts_embedded_stops_cleanly_on_a_signal_and_keeps_data(
    serve: object, tmp_path: Path
) -> None:
    data_dir = tmp_path / "kai-data"
    port = _free_port()
    first = serve(port)  # type: ignore[operator]
    _wait_ready(port, first, tmp_path)

    docs = httpx.get(f"http://127.0.0.1:{port}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
    assert "/api/v1/jobs/{job_id}" in spec["paths"]

    server = EmbeddedPostgres(data_dir / "postgres")
    with psycopg.connect(server.url().replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("CREATE TABLE marker (note text)")
        connection.execute("INSERT INTO marker VALUES ('from the first run')")

    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=30) == 0
    assert not server.is_running()
    assert _postgres_processes(data_dir) == []

    second = serve(port)  # type: ignore[operator]
    _wait_ready(port, second, tmp_path)
    with psycopg.connect(server.url().replace("+psycopg", ""), autocommit=True) as connection:
        assert connection.execute("SELECT note FROM marker").fetchone() == ("from the first run",)
    # A service manager stops it with SIGTERM: just as clean.
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert not server.is_running()
    assert _postgres_processes(data_dir) == []


def _children(parent: int) -> list[int]:
    listing = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(parent)], capture_output=True, text=True
    )
    # The supervisor's server processes, not multiprocessing's resource tracker beside them.
    return [
        int(line.split()[0])
        for line in listing.stdout.splitlines()
        if "resource_tracker" not in line
    ]


def test_serve_with_two_processes_shares_the_database_limits_and_metrics(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "kai-data"
    port, metrics_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_")}
    env.update(
        {
            "KAI_DATA_DIR": str(data_dir),
            "KAI_LOG_LEVEL": "warning",
            "KAI_METRICS__PORT": str(metrics_port),
            # Five sign-in attempts an hour per address, whichever process is asked.
            "KAI_RATE_LIMITS__AUTH": '{"limit": 5, "period_seconds": 3600}',
        }
    )
    with (tmp_path / "serve-0.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kai", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(port, process, tmp_path)
        assert len(_children(process.pid)) == 2
        # The embedded database was started once, by the parent, for both (the data dir also
        # shows in the command line of the image model's export, beside them).
        postmasters = [line for line in _postgres_processes(data_dir) if "postgres -D" in line]
        assert len(postmasters) == 1, postmasters

        # Each attempt on a connection of its own: the two processes take them as they come.
        # Both may still be loading their models on this machine's two cores, so an answer
        # may take longer than httpx's default five seconds.
        answers = []
        for _ in range(12):
            with httpx.Client(timeout=60) as client:
                answers.append(
                    client.post(
                        f"http://127.0.0.1:{port}/api/v1/auth/login",
                        json={"email": "nobody@quarry.example", "password": "not this one"},
                    ).status_code
                )
        assert answers == [401] * 5 + [429] * 7

        for _ in range(20):
            with httpx.Client() as client:
                assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        counted = [
            line
            for line in scraped.splitlines()
            if line.startswith("kai_http_requests_total{") and 'route="/healthz"' in line
        ]
        # Every process's requests, whichever process answers the scrape.
        assert len(counted) == 1, counted
        assert float(counted[0].rsplit(" ", 1)[1]) == 20.0, counted

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert [line for line in _postgres_processes(data_dir) if "postgres -D" in line] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        server = EmbeddedPostgres(data_dir / "postgres")
        if server.is_running():
            server.stop()
