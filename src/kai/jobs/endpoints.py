"""HTTP routes of jobs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query

from kai.deps import DbSession
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.jobs import service
from kai.jobs.schemas import JobRead
from kai.kit.errors import problem_responses
from kai.kit.jobs.models import JobStatus
from kai.kit.jobs.queue import KIND_MAX_LENGTH, KIND_PATTERN
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter

router = IndexedRouter(prefix="/jobs", tags=["jobs"], responses=AUTH_RESPONSES)

JobsRead = Annotated[Actor, Depends(require(Permission.JOBS_READ))]
JobsManage = Annotated[Actor, Depends(require(Permission.JOBS_MANAGE))]


@router.get("", summary="List jobs, newest first", responses=problem_responses(400))
async def list_jobs(
    actor: JobsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    kind: Annotated[
        str | None,
        Query(
            max_length=KIND_MAX_LENGTH,
            pattern=KIND_PATTERN,
            description="Only jobs of this kind (a dotted name such as `catalog.reindex`).",
        ),
    ] = None,
) -> Page[JobRead]:
    jobs, next_cursor = await service.list_jobs(
        session, actor=actor, params=page, status=status, kind=kind
    )
    return Page[JobRead](items=[JobRead.from_job(job) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", summary="Get a job", responses=problem_responses(404))
async def get_job(actor: JobsRead, session: DbSession, job_id: uuid.UUID) -> JobRead:
    return JobRead.from_job(await service.get_job(session, actor=actor, job_id=job_id))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    description=(
        "A queued job is cancelled at once. A running job is asked to stop: its status is "
        "`cancelling` until its worker stops it."
    ),
    responses=problem_responses(404, 409),
)
async def cancel_job(actor: JobsManage, session: DbSession, job_id: uuid.UUID) -> JobRead:
    return JobRead.from_job(await service.cancel_job(session, actor=actor, job_id=job_id))
