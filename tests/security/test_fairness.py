"""Abuse and fairness: expensive work is rate-limited per credential and per organization, and
one organization's queued heavy jobs cannot starve another's on the shared queue.

Sign-up is open, so an organization may mint API keys, invite members and queue jobs as fast
as the server lets it; these tests do that and show the others keep being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from kai.app import api_routes, create_app
from kai.config import RateLimitSettings, RatePolicy, Settings
from kai.deps import DbSession
from kai.identity.dependencies import public
from kai.kit.db import SETTINGS_INFO, act_for, scoped_transaction
from kai.kit.errors import install_error_handlers
from kai.kit.jobs.models import Job
from kai.kit.jobs.queue import HEAVY_KINDS, HeavyJobFromCheapRoute
from kai.kit.jobs.worker import load_task_modules, run_worker
from kai.kit.middleware import RequestContextMiddleware
from kai.kit.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    declared_rate_class,
)
from kai.ml.models import ModelVersion
from kai.runtime import DOMAIN_TASK_MODULES, Runtime
from tests.identity.factories import Member, member
from tests.security import fairness_tasks
from tests.security.fairness_tasks import RUNS_TABLE, ensure_runs_table

pytestmark = pytest.mark.database

REDIS_URL = os.environ.get("KAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# How long a test waits for the worker before it gives up (a deadline, not a measurement).
WAIT_SECONDS = 30.0

# Routes whose work grows with their input or runs a model. Adding one is a decision,
# reviewed as such; a route taking files, or queueing a heavy job, cannot be left off.
EXPENSIVE_ROUTES = {
    ("POST", "/api/v1/recognitions"),
    ("POST", "/api/v1/recognition-batches"),
    ("GET", "/api/v1/recognition-batches/{batch_id}/results"),
    ("POST", "/api/v1/catalog/imports"),
    ("GET", "/api/v1/catalog/exports"),
    ("GET", "/api/v1/projects/{project_id}/export"),
    ("PUT", "/api/v1/catalog/settings"),
    ("PATCH", "/api/v1/catalog/settings"),
    ("PATCH", "/api/v1/categories/{category_id}"),
    ("POST", "/api/v1/materials/bulk"),
    ("POST", "/api/v1/materials/bulk/delete"),
    ("POST", "/api/v1/materials/{material_id}/images"),
    ("POST", "/api/v1/models"),
    ("POST", "/api/v1/backbones"),
    ("GET", "/api/v1/catalog/near-duplicates"),
    ("POST", "/api/v1/search/images"),
}

# The job kinds capped per organization on the shared queue.
HEAVY_DOMAIN_KINDS = {
    "recognition.recognize_batch",
    "ml.train_model",
    "catalog.import",
    "catalog.reindex_documents",
}


# Which routes pay the expensive rate.


def _app() -> FastAPI:
    return create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]


def test_expensive_work_is_declared_at_the_expensive_rate() -> None:
    routes = api_routes(_app())
    expensive = {
        (method, route.path)
        for route in routes
        for method in route.methods - {"HEAD"}
        if route.rate_class == "expensive"
    }
    uploads = {
        (method, route.path)
        for route in routes
        for method in route.methods - {"HEAD"}
        if route.takes_files
    }

    assert expensive == EXPENSIVE_ROUTES
    # Files come as parameters or inside a form's schema: both are seen.
    assert ("POST", "/api/v1/recognitions") in uploads
    # Every file a caller sends is read, checked and kept or run: never at the standard rate.
    assert uploads <= expensive, f"uploads at a cheaper rate: {uploads - expensive}"


def test_the_openapi_document_names_each_routes_rate_class() -> None:
    paths = _app().openapi()["paths"]

    assert paths["/api/v1/recognitions"]["post"]["x-kai-rate-class"] == "expensive"
    assert "`expensive` rate limit" in paths["/api/v1/recognitions"]["post"]["description"]
    assert paths["/api/v1/recognitions"]["get"]["x-kai-rate-class"] == "standard"
    assert paths["/api/v1/auth/login"]["post"]["x-kai-rate-class"] == "auth"
    assert "x-kai-rate-class" not in paths["/healthz"]["get"]


def test_every_route_that_takes_a_credential_declares_its_rate_class() -> None:
    undeclared = {
        (method, route.path)
        for route in api_routes(_app())
        for method in route.methods - {"HEAD"}
        if route.access is not None and route.access[0] != "public" and route.rate_class is None
    }

    assert undeclared == set()


def test_batches_trainings_imports_and_reindexing_are_heavy_jobs() -> None:
    load_task_modules(DOMAIN_TASK_MODULES)

    assert HEAVY_KINDS - {fairness_tasks.hold.kind} == HEAVY_DOMAIN_KINDS


def _probe(runtime: Runtime) -> FastAPI:
    """Two routes that queue heavy work: one declared at the standard rate by mistake."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=1024, access_log=False)
    app.state.runtime = runtime

    async def queue_heavy_work(session: DbSession) -> dict[str, str]:
        job = await fairness_tasks.hold.enqueue(session, params={"note": "probe"})
        return {"job_id": str(job.id)}

    app.post("/forgot", dependencies=[Depends(public(rate_class="standard"))])(queue_heavy_work)
    app.post("/declared", dependencies=[Depends(public(rate_class="expensive"))])(queue_heavy_work)
    return app


async def test_a_route_that_queues_heavy_work_at_a_cheaper_rate_fails_loudly(
    runtime: Runtime, session: AsyncSession
) -> None:
    transport = ASGITransport(app=_probe(runtime), raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://kai.test") as client:
        forgot = await client.post("/forgot")
        declared = await client.post("/declared")

    assert forgot.status_code == 500
    assert forgot.headers["content-type"] == "application/problem+json"
    assert declared.status_code == 200
    queued = await session.scalars(select(Job.id).where(Job.kind == fairness_tasks.hold.kind))
    assert [str(job_id) for job_id in queued] == [declared.json()["job_id"]]
    # The request's declaration ends with it: jobs and commands queue heavy work freely.
    assert declared_rate_class.get() is None


async def test_heavy_work_is_refused_in_a_request_of_a_cheaper_class(runtime: Runtime) -> None:
    token = declared_rate_class.set("standard")
    try:
        async with runtime.session_factory.begin() as session:
            with pytest.raises(HeavyJobFromCheapRoute, match="rate_class='expensive'"):
                await fairness_tasks.hold.enqueue(session, params={"note": "refused"})
    finally:
        declared_rate_class.reset(token)


# Per credential and per organization.


def _limited(
    runtime: Runtime, limiter: RateLimiter, *, multiple: int, **policies: RatePolicy
) -> Runtime:
    rate_limits = RateLimitSettings(organization_multiple=multiple, **policies)
    settings = runtime.settings.model_copy(update={"rate_limits": rate_limits})
    limited = dataclasses.replace(runtime, settings=settings)
    limited.rate_limiter = limiter
    return limited


def _client(runtime: Runtime) -> AsyncClient:
    app = create_app(runtime.settings, runtime=runtime)
    return AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kai.test"
    )


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """A fresh limiter of each kind: in process, and the one several instances share."""
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    prefix = f"kai-test:{uuid.uuid4().hex}:"
    shared = RedisRateLimiter(REDIS_URL, prefix=prefix)
    yield shared
    await shared.close()
    admin = Redis.from_url(REDIS_URL)
    leftovers = [key async for key in admin.scan_iter(match=f"{prefix}*")]
    if leftovers:
        await admin.delete(*leftovers)
    await admin.aclose()


async def _api_key(client: AsyncClient, owner: Member, name: str) -> dict[str, str]:
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": name, "permissions": ["materials:read"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def test_more_api_keys_or_members_buy_no_more_expensive_requests(
    runtime: Runtime, limiter: RateLimiter
) -> None:
    limited = _limited(
        runtime, limiter, multiple=2, expensive=RatePolicy(limit=3, period_seconds=60)
    )
    async with _client(limited) as client:
        owner = await member(limited, client)
        keys = [await _api_key(client, owner, f"Sync {index}") for index in range(4)]

        statuses = []
        for index in range(12):
            response = await client.get("/api/v1/catalog/exports", headers=keys[index % 4])
            statuses.append(response.status_code)

        # Four keys of 3 each would make 12; the organization's bucket holds 2 x 3.
        assert statuses == [200] * 6 + [429] * 6
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/rate-limited")
        assert "organization" in problem["detail"]
        assert 1 <= int(response.headers["retry-after"]) <= 10
        assert response.headers["ratelimit-limit"] == "6"
        assert 'policy="expensive per organization"' in response.headers["ratelimit-policy"]
        # Another expensive route, another credential of the organization: the same budget.
        scan = await client.get("/api/v1/catalog/near-duplicates", headers=owner.headers)
        assert scan.status_code == 429
        # Everyday work goes on: the classes keep separate budgets.
        assert (await client.get("/api/v1/materials", headers=keys[0])).status_code == 200

        # Another organization is untouched, and its single key still has its own limit.
        other = await member(limited, client)
        other_key = await _api_key(client, other, "Their sync")
        others = [
            (await client.get("/api/v1/catalog/exports", headers=other_key)).status_code
            for _ in range(4)
        ]
        assert others == [200, 200, 200, 429]
        assert (
            await client.get("/api/v1/catalog/exports", headers=other.headers)
        ).status_code == 200


async def test_routes_asking_for_a_password_proof_spend_the_organizations_budget_too(
    runtime: Runtime,
) -> None:
    # An owner changing their own account still spends what the organization shares: the
    # routes that ask for a password proof are not a way around its budget.
    limited = _limited(
        runtime,
        MemoryRateLimiter(),
        multiple=1,
        standard=RatePolicy(limit=4, period_seconds=60),
    )
    async with _client(limited) as client:
        owner = await member(limited, client)
        colleague = await member(limited, client, role="member", organization=owner.organization)
        for path in ("mfa/totp/enrol", "mfa/totp/enrol", "logout-everywhere"):
            spent = await client.post(f"/api/v1/auth/{path}", headers=owner.headers)
            assert spent.status_code in (200, 409), spent.text
        # Three of the organization's four spent by the owner: one left for the colleague.
        passed = await client.get("/api/v1/auth/mfa", headers=colleague.headers)
        assert passed.status_code == 200, passed.text

        refused = await client.get("/api/v1/materials", headers=colleague.headers)

        assert refused.status_code == 429
        assert "organization" in refused.json()["detail"]


# Heavy jobs on the shared queue.


def _with_jobs(
    runtime: Runtime, session_factory: Callable[..., async_sessionmaker[AsyncSession]], **jobs: Any
) -> Runtime:
    """The runtime with other job settings, in its sessions too (where the queue reads them)."""
    settings = runtime.settings.model_copy(
        update={"jobs": runtime.settings.jobs.model_copy(update=jobs)}
    )
    return dataclasses.replace(
        runtime, settings=settings, session_factory=session_factory(info={SETTINGS_INFO: settings})
    )


@pytest.fixture(scope="session")
async def runs_table(owner_engine: AsyncEngine) -> str:
    # Made by the owner, so the app role is granted it like any table of the migrations.
    async with owner_engine.begin() as connection:
        await ensure_runs_table(connection)
    return RUNS_TABLE


@pytest.fixture
async def queue_runtime(
    committed_runtime: Runtime, engine: AsyncEngine, owner_engine: AsyncEngine, runs_table: str
) -> AsyncIterator[Callable[..., Runtime]]:
    """Runtimes that really commit, with the job settings a test asks for."""

    def make(**jobs: Any) -> Runtime:
        return _with_jobs(
            committed_runtime,
            lambda **options: async_sessionmaker(engine, expire_on_commit=False, **options),
            **jobs,
        )

    fairness_tasks.release = asyncio.Event()
    yield make
    fairness_tasks.release.set()
    fairness_tasks.release = None
    async with owner_engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {runs_table}"))


@contextlib.asynccontextmanager
async def _worker(runtime: Runtime, *, concurrency: int) -> AsyncIterator[None]:
    worker = asyncio.create_task(
        run_worker(
            runtime,
            runtime.database_url,
            concurrency=concurrency,
            name="fairness-worker",
            install_signal_handlers=False,
        )
    )
    try:
        yield
    finally:
        # A stopping worker waits for its jobs: let the held ones finish, passed or failed.
        if fairness_tasks.release is not None:
            fairness_tasks.release.set()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def _queue(runtime: Runtime, organization_id: uuid.UUID, note: str) -> None:
    async with scoped_transaction(
        runtime.session_factory, organization_id=organization_id
    ) as session:
        await fairness_tasks.hold.enqueue(
            session, params={"note": note}, organization_id=organization_id
        )


async def _runs_when(
    runtime: Runtime, condition: Callable[[Sequence[Row[Any]]], bool]
) -> Sequence[Row[Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        async with runtime.session_factory() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT note, organization_id, started, finished"
                        f" FROM {RUNS_TABLE} ORDER BY started"
                    )
                )
            ).all()
        if condition(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not get there; runs so far: {rows}")
        await asyncio.sleep(0.05)


def _most_at_once(rows: Sequence[Row[Any]]) -> int:
    """The most of these runs that were under way together (by their start and end numbers)."""
    events = sorted([(row.started, 1) for row in rows] + [(row.finished, -1) for row in rows])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize(("per_organization", "concurrency"), [(1, 2), (2, 3)])
async def test_one_organizations_backlog_does_not_hold_back_anothers_jobs(
    queue_runtime: Callable[..., Runtime], per_organization: int, concurrency: int
) -> None:
    runtime = queue_runtime(heavy_per_organization=per_organization)
    hoarder, newcomer = uuid.uuid4(), uuid.uuid4()
    backlog = [f"A{number}" for number in range(1, 7)]
    for note in backlog:
        await _queue(runtime, hoarder, note)
    await _queue(runtime, newcomer, "B1")
    assert fairness_tasks.release is not None

    async with _worker(runtime, concurrency=concurrency):
        # Every worker is busy, each job holding its worker until released.
        busy = await _runs_when(runtime, lambda rows: len(rows) == concurrency)
        # In the order queued, A's backlog would fill them all; B's one job has one of them.
        assert {row.note for row in busy} == {*backlog[:per_organization], "B1"}

        fairness_tasks.release.set()
        done = await _runs_when(
            runtime, lambda rows: len(rows) == 7 and all(row.finished for row in rows)
        )

    started = {row.note: row.started for row in done}
    assert started["B1"] < min(started[note] for note in backlog[per_organization:])
    # A never had more running at once than its cap, even with workers free.
    assert _most_at_once([row for row in done if row.organization_id == hoarder]) == (
        per_organization
    )


@pytest.fixture
def rolled_back_runtime(runtime: Runtime, connection: AsyncConnection) -> Callable[..., Runtime]:
    """Runtimes whose sessions join the test's rolled-back transaction, with job settings."""

    def make(**jobs: Any) -> Runtime:
        return _with_jobs(
            runtime,
            lambda **options: async_sessionmaker(
                bind=connection,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
                **options,
            ),
            **jobs,
        )

    return make


async def _train(client: AsyncClient, owner: Member) -> int:
    response = await client.post(
        "/api/v1/models", json={"backbones": ["handcrafted"]}, headers=owner.headers
    )
    return response.status_code


async def test_trainings_queued_through_the_api_take_their_organizations_slots(
    rolled_back_runtime: Callable[..., Runtime], session: AsyncSession
) -> None:
    runtime = rolled_back_runtime(heavy_per_organization=2)
    async with _client(runtime) as client:
        first, second = await member(runtime, client), await member(runtime, client)
        statuses = [await _train(client, owner) for owner in (first, first, first, second)]

    assert statuses == [202] * 4
    locks = await session.scalars(
        text("SELECT lock FROM procrastinate_jobs WHERE task_name = 'ml.train_model' ORDER BY id")
    )
    # The first organization's three spread over its two slots; the second has its own.
    assert list(locks) == [
        f"kai.heavy:{first.organization_id}:0",
        f"kai.heavy:{first.organization_id}:1",
        f"kai.heavy:{first.organization_id}:0",
        f"kai.heavy:{second.organization_id}:0",
    ]


async def test_an_organizations_heavy_backlog_is_bounded(
    rolled_back_runtime: Callable[..., Runtime], session: AsyncSession
) -> None:
    runtime = rolled_back_runtime(heavy_queued_per_organization=2)
    async with _client(runtime) as client:
        hoarder, other = await member(runtime, client), await member(runtime, client)
        statuses = [await _train(client, hoarder) for _ in range(2)]
        refused = await client.post(
            "/api/v1/models", json={"backbones": ["handcrafted"]}, headers=hoarder.headers
        )
        others = await _train(client, other)

    assert statuses == [202, 202]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/too-many-queued-jobs")
    assert int(refused.headers["retry-after"]) > 0
    assert others == 202
    # The refused training left no version behind.
    await act_for(session, organization_id=hoarder.organization_id)
    versions = await session.scalar(
        select(func.count())
        .select_from(ModelVersion)
        .where(ModelVersion.organization_id == hoarder.organization_id)
    )
    assert versions == 2
