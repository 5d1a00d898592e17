"""Removing stored objects by job: a job acting for one organization removes that
organization's objects and no other's, however its parameters were written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from kai.kit.db import scoped_transaction
from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.tasks import delete_after_commit, delete_objects, delete_objects_task
from kai.kit.storage.keys import user_upload_key
from kai.runtime import Runtime
from tests.identity.factories import create_organization, create_user
from tests.jobs.conftest import WAIT_SECONDS

pytestmark = pytest.mark.database


async def _finished(runtime: Runtime, job_id: uuid.UUID, organization_id: uuid.UUID | None) -> Job:
    for _ in range(int(WAIT_SECONDS / 0.1)):
        async with scoped_transaction(
            runtime.session_factory, organization_id=organization_id
        ) as session:
            job = await session.get(Job, job_id)
        assert job is not None
        if job.status in (JobStatus.FAILED, JobStatus.SUCCEEDED):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def test_a_deletion_job_of_one_organization_leaves_anothers_objects(
    jobs_runtime: Runtime, start_worker: Callable[[], None]
) -> None:
    runtime = jobs_runtime
    alpha = await create_organization(runtime, owner=await create_user(runtime))
    beta = await create_organization(runtime, owner=await create_user(runtime))
    theirs = user_upload_key(beta.id, "recognitions/photo.jpg")
    ours = user_upload_key(alpha.id, "recognitions/photo.jpg")
    await runtime.storage.put(theirs, b"beta's photo")
    await runtime.storage.put(ours, b"alpha's photo")

    # Asked in the open, the request is refused before anything is queued.
    async with scoped_transaction(runtime.session_factory, organization_id=alpha.id) as session:
        with pytest.raises(ValueError, match="not the organization's"):
            await delete_after_commit(session, [ours, theirs], organization_id=alpha.id)
    with pytest.raises(ValueError, match="not the organization's"):
        await delete_objects(runtime.storage, [ours, theirs], organization_id=alpha.id)

    # A job whose parameters name the other's key anyway (written by hand, or by a bug).
    async with scoped_transaction(runtime.session_factory, organization_id=alpha.id) as session:
        job = await delete_objects_task.enqueue(
            session, params={"keys": [ours, theirs]}, organization_id=alpha.id
        )
    # And one that names no organization at all, which would check no prefix.
    async with scoped_transaction(runtime.session_factory, organization_id=None) as session:
        platform = await delete_objects_task.enqueue(session, params={"keys": [theirs]})
    start_worker()

    refused = await _finished(runtime, job.id, alpha.id)
    unowned = await _finished(runtime, platform.id, None)

    assert refused.status == JobStatus.FAILED
    assert refused.attempts == 1  # no retry can make it right
    assert unowned.status == JobStatus.FAILED
    assert unowned.error is not None
    assert "no organization" in unowned.error
    assert await runtime.storage.read(theirs) == b"beta's photo"
    # Nothing of a refused job is removed, its own organization's keys included.
    assert await runtime.storage.read(ours) == b"alpha's photo"
