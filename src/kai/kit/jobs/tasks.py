"""Job entry points of the job machinery itself: housekeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from procrastinate import JobContext

from kai.kit.jobs.queue import JobRuntime, job_app
from kai.kit.jobs.repository import JobRepository, retention_cutoff

log = structlog.get_logger(__name__)


@job_app.periodic(cron="17 3 * * *", periodic_id="daily")
@job_app.task(name="jobs.prune_finished", pass_context=True, queueing_lock="jobs.prune_finished")
async def prune_finished(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Forget finished jobs older than the retention period (`KAI_JOBS__KEEP_FINISHED_DAYS`)."""
    runtime: JobRuntime = context.additional_context["runtime"]
    days = runtime.job_settings.keep_finished_days
    cutoff = retention_cutoff(datetime.fromtimestamp(timestamp, UTC), days)
    async with runtime.session_factory.begin() as session:
        removed = await JobRepository(session).delete_finished_before(cutoff)
    await context.app.job_manager.delete_old_jobs(
        nb_hours=days * 24, include_failed=True, include_cancelled=True, include_aborted=True
    )
    log.info("jobs.pruned", removed=removed, older_than=cutoff.isoformat())
    return {"removed": removed}
