"""Running a worker: procrastinate's, plus recovery of jobs whose worker died."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from procrastinate import App, PsycopgConnector

from kai.kit.db import libpq_url
from kai.kit.jobs.queue import JobRuntime, finish_cancelling, job_app

log = structlog.get_logger(__name__)

# The machinery's own housekeeping; the domains' task modules come from the runtime, so
# this package names no domain.
OWN_TASKS = "kai.kit.jobs.tasks"


def load_task_modules(modules: Iterable[str]) -> None:
    for module in (OWN_TASKS, *modules):
        importlib.import_module(module)


def worker_connector(database_url: str, *, pool_size: int) -> PsycopgConnector:
    return PsycopgConnector(
        conninfo=libpq_url(database_url),
        min_size=1,
        max_size=pool_size,
        kwargs={"application_name": "kai-worker"},
    )


async def recover_stalled_jobs(app: App, runtime: JobRuntime, *, silent_for_seconds: float) -> int:
    """Hand running jobs whose worker stopped sending heartbeats back to the queue. One that
    was being cancelled is not handed back (the queue fails it): it ends cancelled here, and
    its task is told it was given up, as if its worker had stopped it."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=silent_for_seconds)
    for job in stalled:
        await app.job_manager.retry_job(job)
        log.warning("job.recovered", queue_job_id=job.id, task=job.task_name)
        tracked = job.task_kwargs.get("job_id")
        if isinstance(tracked, str):
            organization = job.task_kwargs.get("organization_id")
            await finish_cancelling(
                runtime.session_factory,
                uuid.UUID(tracked),
                uuid.UUID(organization) if isinstance(organization, str) else None,
            )
    return len(list(stalled))


async def _recover_forever(
    app: App, runtime: JobRuntime, *, silent_for_seconds: float, every_seconds: float
) -> None:
    while True:
        try:
            await recover_stalled_jobs(app, runtime, silent_for_seconds=silent_for_seconds)
        except Exception:
            log.exception("job.recovery_failed")
        await asyncio.sleep(every_seconds)


async def run_worker(
    runtime: JobRuntime,
    database_url: str,
    *,
    concurrency: int,
    queues: list[str] | None = None,
    name: str | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run jobs until cancelled or signalled; in-flight jobs finish or are handed back."""
    load_task_modules(runtime.task_modules)
    # The app itself gets the connector, not a copy: tasks (periodic ones too) refer to their
    # own app, and a copy's connector would never be open for them. One worker a process.
    connector = worker_connector(database_url, pool_size=concurrency + 2)
    with job_app.replace_connector(connector) as app:
        await _run(app, runtime, concurrency, queues, name, install_signal_handlers)


async def _run(
    app: App,
    runtime: JobRuntime,
    concurrency: int,
    queues: list[str] | None,
    name: str | None,
    install_signal_handlers: bool,
) -> None:
    settings = runtime.job_settings
    async with app.open_async():
        recovery = asyncio.create_task(
            _recover_forever(
                app,
                runtime,
                silent_for_seconds=settings.stalled_after_seconds,
                every_seconds=settings.stalled_check_seconds,
            )
        )
        # Unset options are left out, so procrastinate's own defaults apply.
        chosen: dict[str, Any] = {"queues": queues, "name": name}
        try:
            await app.run_worker_async(
                **{key: value for key, value in chosen.items() if value is not None},
                concurrency=concurrency,
                additional_context={"runtime": runtime},
                install_signal_handlers=install_signal_handlers,
                update_heartbeat_interval=settings.heartbeat_seconds,
                stalled_worker_timeout=settings.stalled_after_seconds,
                abort_job_polling_interval=1.0,
            )
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
