"""Jobs as a user of the platform sees them: queued, run, retried, cancelled, reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text

from kai.config import JobSettings
from kai.identity.actor import Actor
from kai.jobs import service
from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.queue import UNEXPECTED_REASON, backoff_seconds, job_app
from kai.kit.metrics import REGISTRY
from kai.runtime import Runtime
from tests.jobs import sample_tasks
from tests.jobs.conftest import effects, enqueue, load_job, wait_for

pytestmark = pytest.mark.database

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

# Platform jobs (of no organization) as maintenance code sees them.
PLATFORM = Actor(kind="api_key", organization_id=None, permissions=frozenset())


async def test_a_job_enqueued_in_a_rolled_back_transaction_leaves_no_trace(
    jobs_runtime: Runtime,
) -> None:
    async with jobs_runtime.session_factory() as session:
        await sample_tasks.record.enqueue(session, params={"note": "never"})
        await session.rollback()
    async with jobs_runtime.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
        queued = await session.scalar(text("SELECT count(*) FROM procrastinate_jobs"))
        assert queued == 0


async def test_a_job_enqueued_while_no_worker_runs_is_done_when_one_starts(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    job_id = await enqueue(jobs_runtime, sample_tasks.record, note="hello")
    await asyncio.sleep(0.5)
    waiting = await load_job(jobs_runtime, job_id)
    assert waiting.status == JobStatus.QUEUED
    assert waiting.started_at is None

    start_worker()
    done = await wait_for(jobs_runtime, job_id, FINISHED)

    assert done.status == JobStatus.SUCCEEDED
    assert done.result == {"recorded": True, "attempt": 1}
    assert done.attempts == 1
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert await effects(jobs_runtime, job_id) == [(1, "hello")]


async def test_a_task_working_in_its_own_transactions_holds_none_open_meanwhile(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.own_transactions)

    done = await wait_for(jobs_runtime, job_id, FINISHED)

    assert done.status == JobStatus.SUCCEEDED
    # The attempt's own transaction begins only when used: here, to record the success.
    assert done.result == {"attempt_transaction_open": False}
    assert await effects(jobs_runtime, job_id) == [(1, "")]


async def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.flaky, succeed_on=3)

    done = await wait_for(jobs_runtime, job_id, FINISHED)

    assert done.status == JobStatus.SUCCEEDED
    assert done.attempts == 3
    assert done.error is None
    assert await effects(jobs_runtime, job_id) == [(3, "flaky")]
    # Two waits of 0.2 s and 0.4 s (base 0.2 s, doubling) separate the three attempts.
    assert done.finished_at is not None
    assert (done.finished_at - done.created_at).total_seconds() >= 0.6


async def test_a_job_that_keeps_failing_stops_after_its_attempts(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.broken)

    done = await wait_for(jobs_runtime, job_id, (JobStatus.FAILED,))

    assert done.attempts == 5
    # Its own words are the server log's; the job's owner reads a plain sentence.
    assert done.error == UNEXPECTED_REASON
    assert done.finished_at is not None


async def test_a_permanent_error_is_not_retried(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.broken, permanent=True)

    done = await wait_for(jobs_runtime, job_id, (JobStatus.FAILED,))

    assert done.attempts == 1
    assert done.error == "the input can never work"


async def test_a_cancelled_queued_job_never_runs(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    job_id = await enqueue(jobs_runtime, sample_tasks.record, note="cancelled")
    async with jobs_runtime.session_factory.begin() as session:
        cancelled = await service.cancel_job(session, actor=PLATFORM, job_id=job_id)
    assert cancelled.status == JobStatus.CANCELLED

    start_worker()
    await asyncio.sleep(1.5)

    job = await load_job(jobs_runtime, job_id)
    assert job.status == JobStatus.CANCELLED
    assert job.attempts == 0
    assert await effects(jobs_runtime, job_id) == []


async def test_a_running_job_is_stopped_when_cancelled_and_its_writes_undone(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.slow, seconds=60, steps=60)
    await wait_for(
        jobs_runtime, job_id, (JobStatus.RUNNING,), condition=lambda j: j.progress_done > 0
    )

    async with jobs_runtime.session_factory.begin() as session:
        cancelling = await service.cancel_job(session, actor=PLATFORM, job_id=job_id)
    assert cancelling.status == JobStatus.CANCELLING

    done = await wait_for(jobs_runtime, job_id, (JobStatus.CANCELLED,))
    assert done.finished_at is not None
    assert await effects(jobs_runtime, job_id) == []


async def test_progress_is_visible_while_a_job_runs(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.slow, seconds=2, steps=10)

    midway = await wait_for(
        jobs_runtime, job_id, (JobStatus.RUNNING,), condition=lambda j: j.progress_done >= 2
    )
    assert midway.progress_total == 10
    assert midway.progress_done < 10

    done = await wait_for(jobs_runtime, job_id, FINISHED)
    assert (done.status, done.progress_done, done.progress_total) == (JobStatus.SUCCEEDED, 10, 10)
    # How long it ran: from its start to its end, not to its transaction's start.
    assert done.started_at is not None
    assert done.finished_at is not None
    assert (done.finished_at - done.started_at).total_seconds() >= 2


async def test_job_outcomes_and_durations_are_in_the_metrics(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    def succeeded() -> float:
        labels = {"kind": "tests.record", "outcome": "succeeded"}
        return REGISTRY.get_sample_value("kai_jobs_total", labels) or 0.0

    before = succeeded()
    runs_before = REGISTRY.get_sample_value(
        "kai_job_duration_seconds_count", {"kind": "tests.record"}
    )
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.record, note="metrics")
    await wait_for(jobs_runtime, job_id, FINISHED)

    assert succeeded() == before + 1
    runs = REGISTRY.get_sample_value("kai_job_duration_seconds_count", {"kind": "tests.record"})
    assert runs == (runs_before or 0) + 1


async def test_cancelling_a_finished_job_is_a_conflict(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    job_id = await enqueue(jobs_runtime, sample_tasks.record, note="done")
    await wait_for(jobs_runtime, job_id, FINISHED)

    async with jobs_runtime.session_factory.begin() as session:
        with pytest.raises(service.JobAlreadyFinished):
            await service.cancel_job(session, actor=PLATFORM, job_id=job_id)


UNEXPECTED = "failed: The job stopped on an unexpected error; the server's log has the details."


async def test_a_job_given_up_after_its_last_attempt_runs_its_tasks_hook_once(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    start_worker()
    unexpected = await enqueue(jobs_runtime, sample_tasks.given_up, mode="unexpected")
    permanent = await enqueue(jobs_runtime, sample_tasks.given_up, mode="permanent")

    failed = await wait_for(jobs_runtime, unexpected, (JobStatus.FAILED,))
    refused = await wait_for(jobs_runtime, permanent, (JobStatus.FAILED,))

    # Not after the first attempt, which was retried: once, after the last.
    assert failed.attempts == 2
    assert await effects(jobs_runtime, unexpected) == [(sample_tasks.GIVEN_UP, UNEXPECTED)]
    # An unexpected error's own words stay in the log, not in the job or what the hook is told.
    assert failed.error == UNEXPECTED_REASON
    assert refused.attempts == 1
    assert await effects(jobs_runtime, permanent) == [
        (sample_tasks.GIVEN_UP, "failed: the photo is not there")
    ]


async def test_a_job_cancelled_queued_or_running_runs_its_tasks_hook(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    cancelled = (sample_tasks.GIVEN_UP, "cancelled: The job was cancelled.")
    queued = await enqueue(jobs_runtime, sample_tasks.given_up, mode="work")
    async with jobs_runtime.session_factory.begin() as session:
        await service.cancel_job(session, actor=PLATFORM, job_id=queued)
    # At once, in the cancelling transaction: no worker will ever see this job.
    assert await effects(jobs_runtime, queued) == [cancelled]

    start_worker()
    running = await enqueue(jobs_runtime, sample_tasks.given_up, mode="work")
    await wait_for(
        jobs_runtime, running, (JobStatus.RUNNING,), condition=lambda job: job.progress_done > 0
    )
    assert await effects(jobs_runtime, running) == []
    async with jobs_runtime.session_factory.begin() as session:
        await service.cancel_job(session, actor=PLATFORM, job_id=running)

    await wait_for(jobs_runtime, running, (JobStatus.CANCELLED,))
    assert await effects(jobs_runtime, running) == [cancelled]


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    settings = JobSettings(retry_base_seconds=2, retry_max_seconds=30)
    assert [backoff_seconds(n, settings) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_housekeeping_is_scheduled_daily() -> None:
    import kai.kit.jobs.tasks  # noqa: F401 - registers the periodic task

    schedules = {
        task.task.name: task.cron for task in job_app.periodic_registry.periodic_tasks.values()
    }
    assert schedules["jobs.prune_finished"] == "17 3 * * *"


async def test_the_daily_housekeeping_task_runs_through_a_worker(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    # Periodic tasks are deferred through their own app by the worker's deferrer, at the
    # scheduled minute: that app must be the open one, or the worker stops at that minute.
    from kai.kit.jobs.tasks import prune_finished

    start_worker()
    for _ in range(100):
        if job_app.connector is not None and getattr(job_app.connector, "_pool", None):
            break
        await asyncio.sleep(0.05)
    queue_job_id = await prune_finished.defer_async(timestamp=int(time.time()))

    status = None
    for _ in range(200):
        async with jobs_runtime.session_factory() as session:
            status = await session.scalar(
                text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"),
                {"id": queue_job_id},
            )
        if status in {"succeeded", "failed"}:
            break
        await asyncio.sleep(0.05)
    assert status == "succeeded"
