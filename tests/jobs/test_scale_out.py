"""The server profile scaled out on one database: two API processes and two job workers.

Jobs spread over both workers and none runs twice; a caller's rate limit is one budget
whichever API process answers (in Redis, as across machines).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.kit.jobs.models import JobStatus
from kai.runtime import Runtime
from tests.conftest import REPO_ROOT
from tests.jobs import sample_tasks
from tests.jobs.conftest import effects, enqueue, wait_for

pytestmark = pytest.mark.database

READY_SECONDS = 120.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def processes(database_url: str, tmp_path: Path) -> Iterator[object]:
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("KAI_")},
        "PYTHONPATH": str(REPO_ROOT),
        "KAI_DATABASE_URL": database_url,
        "KAI_DATA_DIR": str(tmp_path / "data"),
        "KAI_LOG_LEVEL": "warning",
        "KAI_ACCESS_LOG": "false",
        "KAI_JOBS__IMPORT_PATHS": json.dumps(["tests.jobs.sample_tasks"]),
        "KAI_REDIS_URL": os.environ.get("KAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "KAI_RATE_LIMITS__REDIS_PREFIX": f"kai-test:{uuid.uuid4().hex}:",
        # Five sign-in attempts an hour per address, across every API process.
        "KAI_RATE_LIMITS__AUTH": '{"limit": 5, "period_seconds": 3600}',
        "KAI_SECRET_KEY": "one secret for every process of the deployment",
    }
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *arguments: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kai", *arguments],
                env=environment,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"kai serve exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("kai serve never became ready")


async def _workers_started_since(owner_engine: AsyncEngine, began: datetime) -> int:
    async with owner_engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat >= :began"),
            {"began": began},
        )
    return int(found or 0)


async def test_two_api_processes_and_two_workers_on_one_database(
    jobs_runtime: Runtime, processes: object, tmp_path: Path, owner_engine: AsyncEngine
) -> None:
    start = processes  # type: ignore[assignment]
    async with owner_engine.connect() as connection:
        began = await connection.scalar(text("SELECT now()"))
    workers = [start(f"worker-{n}", "worker", "--concurrency", "2") for n in range(2)]
    # Both listening before any job is queued: one started long before the other could
    # otherwise take every job.
    deadline = time.monotonic() + READY_SECONDS
    while await _workers_started_since(owner_engine, began) < 2:
        assert time.monotonic() < deadline, "the two workers never started"
        assert all(worker.poll() is None for worker in workers), "a worker exited"
        await asyncio.sleep(0.2)
    ports = [_free_port(), _free_port()]
    servers = [
        start(f"serve-{n}", "serve", "--no-worker", "--port", str(port))
        for n, port in enumerate(ports)
    ]

    # Enough jobs, each long enough, that one worker alone could not take them all.
    job_ids = [await enqueue(jobs_runtime, sample_tasks.whoami, seconds=0.3) for _ in range(16)]
    done = [
        await wait_for(jobs_runtime, job_id, (JobStatus.SUCCEEDED, JobStatus.FAILED))
        for job_id in job_ids
    ]
    assert {job.status for job in done} == {JobStatus.SUCCEEDED}
    # None ran twice: one attempt each, one effect each.
    assert {job.attempts for job in done} == {1}
    for job_id in job_ids:
        assert len(await effects(jobs_runtime, job_id)) == 1
    ran_in = {job.result["pid"] for job in done if job.result}
    assert ran_in == {worker.pid for worker in workers}

    for n, (port, server) in enumerate(zip(ports, servers, strict=True)):
        await asyncio.to_thread(_wait_ready, port, server, tmp_path / f"serve-{n}.log")
    answers = []
    async with httpx.AsyncClient() as client:
        for attempt in range(12):
            response = await client.post(
                f"http://127.0.0.1:{ports[attempt % 2]}/api/v1/auth/login",
                json={"email": "nobody@quarry.example", "password": "not this one"},
            )
            answers.append(response.status_code)
    assert answers == [401] * 5 + [429] * 7
