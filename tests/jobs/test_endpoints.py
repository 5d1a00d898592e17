"""The jobs API: what a user polling a job sees."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.db import act_for, scoped_transaction
from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.queue import UNEXPECTED_REASON, TrackedTask
from kai.kit.jobs.repository import JobRepository
from kai.runtime import Runtime
from tests.identity.factories import Member, member
from tests.jobs import sample_tasks
from tests.jobs.sample_tasks import STATEMENT_SECRET

pytestmark = pytest.mark.database


@pytest.fixture
async def owner(runtime: Runtime, client: AsyncClient) -> Member:
    """The owner of an organization; the client calls as them."""
    owner = await member(runtime, client)
    client.headers.update(owner.headers)
    return owner


async def enqueue(session: AsyncSession, owner: Member, task: TrackedTask, **params: object) -> Job:
    await act_for(session, organization_id=owner.organization_id)
    return await task.enqueue(session, params=params, organization_id=owner.organization_id)


async def test_a_queued_job_reads_back_with_its_progress_and_timestamps(
    client: AsyncClient, session: AsyncSession, owner: Member
) -> None:
    job = await enqueue(session, owner, sample_tasks.record, note="x")
    await session.commit()

    response = await client.get(f"/api/v1/jobs/{job.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(job.id)
    assert body["kind"] == "tests.record"
    assert body["status"] == "queued"
    assert body["progress"] == {"done": 0, "total": None}
    assert body["attempts"] == 0
    assert body["max_attempts"] == 3
    assert body["result"] is None
    assert body["error"] is None
    assert body["started_at"] is None
    assert body["finished_at"] is None
    assert body["created_at"]


async def test_an_unknown_job_is_a_404_problem(client: AsyncClient, owner: Member) -> None:
    response = await client.get(f"/api/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["type"].endswith("/job-not-found")


async def test_a_job_id_that_is_not_a_uuid_is_a_422_problem(
    client: AsyncClient, owner: Member
) -> None:
    response = await client.get("/api/v1/jobs/not-a-uuid")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["path", "job_id"]


async def test_cancelling_a_queued_job_over_http(
    client: AsyncClient, session: AsyncSession, owner: Member
) -> None:
    job = await enqueue(session, owner, sample_tasks.record)
    await session.commit()

    response = await client.post(f"/api/v1/jobs/{job.id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/jobs/{job.id}/cancel")
    assert again.status_code == 409
    assert again.json()["type"].endswith("/job-finished")


async def test_listing_jobs_pages_through_all_of_them_newest_first(
    client: AsyncClient, session: AsyncSession, owner: Member
) -> None:
    created = [(await enqueue(session, owner, sample_tasks.record, n=n)).id for n in range(7)]
    await session.commit()

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/jobs", params=params)
        assert response.status_code == 200
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == [str(job_id) for job_id in reversed(created)]


async def test_listing_filters_by_status_and_kind(
    client: AsyncClient, session: AsyncSession, owner: Member
) -> None:
    kept = await enqueue(session, owner, sample_tasks.record)
    other = await enqueue(session, owner, sample_tasks.flaky, succeed_on=1)
    await JobRepository(session).set_status(other.id, JobStatus.FAILED, error="boom")
    await session.commit()

    queued = (await client.get("/api/v1/jobs", params={"status": "queued"})).json()
    failed_flaky = (
        await client.get("/api/v1/jobs", params={"status": "failed", "kind": "tests.flaky"})
    ).json()

    assert [item["id"] for item in queued["items"]] == [str(kept.id)]
    assert [item["id"] for item in failed_flaky["items"]] == [str(other.id)]
    assert failed_flaky["items"][0]["error"] == "boom"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": "WzEsMiwzXQ"}, 400),  # valid base64 JSON, wrong shape
        ({"limit": 0}, 422),
        ({"limit": 10_000}, 422),
        ({"status": "sleeping"}, 422),
    ],
)
async def test_bad_listing_parameters_are_problems(
    client: AsyncClient, owner: Member, params: dict[str, object], status: int
) -> None:
    response = await client.get("/api/v1/jobs", params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_failed_jobs_error_is_a_plain_sentence_never_its_statement(
    committed_runtime: Runtime,
    committed_client: AsyncClient,
    running_worker: None,
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    owner = await member(committed_runtime, committed_client)
    async with scoped_transaction(
        committed_runtime.session_factory, organization_id=owner.organization_id
    ) as session:
        job = await sample_tasks.bad_statement.enqueue(
            session, organization_id=owner.organization_id
        )

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not seen or seen[-1]["status"] != "failed":
        assert time.monotonic() < deadline, seen[-1:]
        response = await committed_client.get(f"/api/v1/jobs/{job.id}", headers=owner.headers)
        seen.append(response.json())
        await asyncio.sleep(0.05)

    assert seen[-1]["attempts"] == 2
    assert seen[-1]["error"] == UNEXPECTED_REASON
    # Retrying or failed, the owner never reads the statement or what it was given...
    for polled in seen:
        assert "SELECT" not in (polled["error"] or "")
        assert STATEMENT_SECRET not in (polled["error"] or "")
    # ...which the server's log keeps, under the job's id, for whoever runs the server.
    [failed] = [line for line in logged() if line["event"] == "job.failed"]
    assert failed["job_id"] == str(job.id)
    assert "division by zero" in failed["exception"]
