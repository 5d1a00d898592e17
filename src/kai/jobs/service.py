"""Rules about jobs: reading them, and cancelling those not yet finished."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity.actor import Actor
from kai.kit.errors import Conflict, NotFound
from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.queue import final_failure, given_up_as
from kai.kit.jobs.repository import JobRepository
from kai.kit.pagination import PageParams


class JobNotFound(NotFound):
    type, title = "job-not-found", "No such job"


class JobAlreadyFinished(Conflict):
    type, title = "job-finished", "The job has already finished"


async def get_job(session: AsyncSession, *, actor: Actor, job_id: uuid.UUID) -> Job:
    job = await JobRepository(session).get(job_id, organization_id=actor.organization_id)
    if job is None:
        raise JobNotFound(f"There is no job {job_id}.")
    return job


async def list_jobs(
    session: AsyncSession,
    *,
    actor: Actor,
    params: PageParams,
    status: JobStatus | None = None,
    kind: str | None = None,
) -> tuple[list[Job], str | None]:
    return await JobRepository(session).list_page(
        params, organization_id=actor.organization_id, status=status, kind=kind
    )


async def cancel_job(session: AsyncSession, *, actor: Actor, job_id: uuid.UUID) -> Job:
    """Cancel a queued job at once; ask the worker running a job to stop it."""
    repository = JobRepository(session)
    job = await repository.get(job_id, organization_id=actor.organization_id, for_update=True)
    if job is None:
        raise JobNotFound(f"There is no job {job_id}.")
    status = JobStatus(job.status)
    if status.finished:
        raise JobAlreadyFinished(f"The job {job_id} is already {status.value}.")
    if status == JobStatus.CANCELLING:
        return job
    if job.queue_job_id is not None:
        # abort=true: a waiting job is cancelled, a running one is flagged for its worker.
        await session.execute(
            text("SELECT procrastinate_cancel_job_v1(:queue_job_id, true, false)"),
            {"queue_job_id": job.queue_job_id},
        )
    queue_status = await _queue_status(session, job.queue_job_id)
    new_status = JobStatus.CANCELLING if queue_status == "doing" else JobStatus.CANCELLED
    await repository.set_status(job.id, new_status)
    if new_status == JobStatus.CANCELLED:
        # It will never run: what it was to work on is given up with it, in this transaction.
        # (A running job's worker does this once it has stopped it.)
        await final_failure(session, given_up_as(job))
    await session.refresh(job)
    return job


async def _queue_status(session: AsyncSession, queue_job_id: int | None) -> str | None:
    if queue_job_id is None:
        return None
    result = await session.execute(
        text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": queue_job_id}
    )
    return result.scalar_one_or_none()
