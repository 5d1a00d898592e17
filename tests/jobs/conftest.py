from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.queue import TrackedTask
from kai.kit.jobs.worker import run_worker
from kai.runtime import Runtime
from tests.jobs.sample_tasks import EFFECTS_TABLE, ensure_effects_table

# How long a test waits for a job to get somewhere: it asserts where, not how fast, and a
# worker process started on a busy machine can take a while to import and begin.
WAIT_SECONDS = 90.0


@pytest.fixture(scope="session")
async def effects_table(owner_engine: AsyncEngine) -> str:
    # Made by the owner, so the app role is granted it like any table of the migrations.
    async with owner_engine.begin() as connection:
        await ensure_effects_table(connection)
    return EFFECTS_TABLE


@pytest.fixture
async def jobs_runtime(
    committed_runtime: Runtime, effects_table: str, owner_engine: AsyncEngine
) -> AsyncIterator[Runtime]:
    yield committed_runtime
    async with owner_engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {effects_table}"))


@pytest.fixture
async def start_worker(jobs_runtime: Runtime) -> AsyncIterator[Callable[[], None]]:
    """Start an in-process worker when the test says so; it is stopped afterwards."""
    workers: list[asyncio.Task[None]] = []

    def start() -> None:
        workers.append(
            asyncio.create_task(
                run_worker(
                    jobs_runtime,
                    jobs_runtime.database_url,
                    concurrency=2,
                    name="test-worker",
                    install_signal_handlers=False,
                )
            )
        )

    yield start
    for worker in workers:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def enqueue(runtime: Runtime, task: TrackedTask, **params: Any) -> uuid.UUID:
    async with runtime.session_factory.begin() as session:
        job = await task.enqueue(session, params=params)
        return job.id


async def load_job(runtime: Runtime, job_id: uuid.UUID) -> Job:
    async with runtime.session_factory() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def wait_for(
    runtime: Runtime,
    job_id: uuid.UUID,
    statuses: Iterable[JobStatus],
    *,
    condition: Callable[[Job], bool] = lambda job: True,
) -> Job:
    wanted = set(statuses)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job = await load_job(runtime, job_id)
        if job.status in wanted and condition(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job.status} (wanted {wanted}): {job.error}")
        await asyncio.sleep(0.1)


async def effects(runtime: Runtime, job_id: uuid.UUID) -> list[tuple[int, str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            text(f"SELECT attempt, note FROM {EFFECTS_TABLE} WHERE job_id = :job"), {"job": job_id}
        )
        return [(row.attempt, row.note) for row in rows]
