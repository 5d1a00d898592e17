"""Running the queued `storage.delete_objects` jobs of a test's own transaction, as a worker
would once that transaction committed (a test's rolled-back transaction never does)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from kai.kit.db import scoped_transaction
from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.repository import JobRepository
from kai.kit.jobs.tasks import delete_objects, delete_objects_task
from kai.runtime import Runtime


async def run_queued_deletions(runtime: Runtime, organization_id: uuid.UUID) -> list[str]:
    """Run the organization's queued deletions in this process; the keys they removed."""
    removed: list[str] = []
    async with scoped_transaction(
        runtime.session_factory, organization_id=organization_id
    ) as session:
        queued = await session.scalars(
            select(Job)
            .where(Job.kind == delete_objects_task.kind, Job.status == JobStatus.QUEUED)
            .order_by(Job.created_at)
        )
        for job in queued.all():
            keys = list(job.params["keys"])
            await delete_objects(runtime.storage, keys, organization_id=organization_id)
            await JobRepository(session).set_status(job.id, JobStatus.SUCCEEDED)
            removed.extend(keys)
    return removed
