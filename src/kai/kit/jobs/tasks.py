"""Job entry points of the job machinery itself: housekeeping, removing stored objects once
the transaction that forgot them has committed, and removing those a job owned once it ends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.jobs.models import Job
from kai.kit.jobs.queue import JobRun, JobRuntime, PermanentJobError, job_app, job_task
from kai.kit.jobs.repository import JobRepository, retention_cutoff
from kai.kit.storage import InvalidObjectKey, ObjectStorage, organization_prefix, validate_key

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


# Storage may be down for a while; each attempt waits longer (KAI_JOBS__RETRY_*).
DELETE_ATTEMPTS = 10


@job_task("storage.delete_objects", max_attempts=DELETE_ATTEMPTS)
async def delete_objects_task(run: JobRun) -> dict[str, Any]:
    """Remove objects no committed row names any more (queued by `delete_after_commit`)."""
    keys = run.params.get("keys")
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise PermanentJobError("the job names no list of object keys")
    if run.organization_id is None:
        # Only an organization's objects are removed this way: a job of no organization
        # would check no prefix, and could remove any tenant's files.
        raise PermanentJobError("the job acts for no organization")
    try:
        removed = await delete_objects(run.storage, keys, organization_id=run.organization_id)
    except (ValueError, InvalidObjectKey) as exc:
        raise PermanentJobError(str(exc)) from exc
    return {"deleted": removed}


async def delete_after_commit(
    session: AsyncSession, keys: Sequence[str], *, organization_id: uuid.UUID
) -> Job | None:
    """Remove the objects under `keys` once `session`'s transaction commits, and never if it
    rolls back: the rows that name them are then still there, and so must the bytes be.

    Queued in that transaction (a job runs only once it commits); removing is idempotent, so
    a retried or repeated job does no harm.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return None
    _check_keys(wanted, organization_id)
    return await delete_objects_task.enqueue(
        session, params={"keys": wanted}, organization_id=organization_id
    )


async def delete_objects(
    storage: ObjectStorage, keys: Sequence[str], *, organization_id: uuid.UUID
) -> int:
    """Remove each object (one already gone is no error); how many keys were handled.

    InvalidObjectKey or ValueError, removing nothing, when a key is not valid or not the
    organization's."""
    _check_keys(keys, organization_id)
    for key in keys:
        await storage.delete(key)
    log.info("storage.objects_deleted", keys=len(keys), organization_id=str(organization_id))
    return len(keys)


def _check_keys(keys: Sequence[str], organization_id: uuid.UUID) -> None:
    # A job acting for one organization removes only that organization's objects; there is
    # no way to name none (organization_prefix refuses anything but a UUID).
    prefix = organization_prefix(organization_id)
    for key in keys:
        validate_key(key)
        if not key.startswith(prefix):
            raise ValueError(f"the object {key!r} is not the organization's")
