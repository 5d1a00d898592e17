"""All SQL about jobs."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.jobs.models import FINISHED_STATUSES, Job, JobStatus
from kai.kit.pagination import PageParams, paginate

_RUNNABLE = (JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: Job) -> Job:
        self.session.add(job)
        await self.session.flush()
        return job

    async def get(
        self,
        job_id: uuid.UUID,
        *,
        organization_id: uuid.UUID | None = None,
        for_update: bool = False,
    ) -> Job | None:
        """The job `job_id` of `organization_id` (None: a platform job)."""
        statement = select(Job).where(
            Job.id == job_id, Job.organization_id.is_not_distinct_from(organization_id)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def list_page(
        self,
        params: PageParams,
        *,
        organization_id: uuid.UUID | None,
        status: JobStatus | None = None,
        kind: str | None = None,
    ) -> tuple[list[Job], str | None]:
        statement = select(Job).where(Job.organization_id.is_not_distinct_from(organization_id))
        if status is not None:
            statement = statement.where(Job.status == status)
        if kind is not None:
            statement = statement.where(Job.kind == kind)
        return await paginate(
            self.session, statement, order_by=(Job.created_at, Job.id), params=params
        )

    async def has_waiting(self, kind: str, organization_id: uuid.UUID | None) -> bool:
        """Whether a job of `kind` for the organization is queued, or waits for a retry."""
        statement = (
            select(Job.id)
            .where(
                Job.kind == kind,
                Job.organization_id.is_not_distinct_from(organization_id),
                Job.status.in_((JobStatus.QUEUED, JobStatus.RETRYING)),
            )
            .limit(1)
        )
        return (await self.session.scalar(statement)) is not None

    async def start_attempt(self, job_id: uuid.UUID) -> Job | None:
        """Mark a runnable job running and count the attempt; None when it must not run."""
        statement = (
            update(Job)
            .where(Job.id == job_id, Job.status.in_(_RUNNABLE))
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, func.now()),
                updated_at=func.now(),
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def set_status(self, job_id: uuid.UUID, status: JobStatus, **values: Any) -> None:
        if status in FINISHED_STATUSES:
            # The attempt runs in one transaction: now() would be its start, not its end.
            values.setdefault("finished_at", func.clock_timestamp())
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=status, updated_at=func.clock_timestamp(), **values)
            .execution_options(synchronize_session=False)
        )

    async def set_params(self, job_id: uuid.UUID, params: dict[str, Any]) -> None:
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(params=params, updated_at=func.clock_timestamp())
            .execution_options(synchronize_session=False)
        )

    async def set_progress(self, job_id: uuid.UUID, done: int, total: int | None) -> None:
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(progress_done=done, progress_total=total, updated_at=func.now())
            .execution_options(synchronize_session=False)
        )

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """Across every organization: through a function that may cross the tenant wall."""
        result = await self.session.execute(
            text("SELECT kai_prune_finished_jobs(:cutoff)"), {"cutoff": cutoff}
        )
        return int(result.scalar_one())


def retention_cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)
