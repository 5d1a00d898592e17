"""Abuse and fairness: expensive work is rate-limited per credential and per organization.

Sign-up is open, so an organization may mint API keys and invite members as fast as the
server lets it; these tests do that and show the others keep being served.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis

from kai.app import api_routes, create_app
from kai.config import RateLimitSettings, RatePolicy, Settings
from kai.kit.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from kai.runtime import Runtime
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

REDIS_URL = os.environ.get("KAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Routes whose work grows with their input or runs a model. Adding one is a decision,
# reviewed as such; a route taking files cannot be left off.
EXPENSIVE_ROUTES = {
    ("POST", "/api/v1/recognitions"),
    ("POST", "/api/v1/recognition-batches"),
    ("GET", "/api/v1/recognition-batches/{batch_id}/results"),
    ("POST", "/api/v1/catalog/imports"),
    ("GET", "/api/v1/catalog/exports"),
    ("PUT", "/api/v1/catalog/settings"),
    ("POST", "/api/v1/materials/bulk"),
    ("POST", "/api/v1/materials/bulk/delete"),
    ("POST", "/api/v1/materials/{material_id}/images"),
    ("POST", "/api/v1/models"),
    ("POST", "/api/v1/backbones"),
    ("GET", "/api/v1/catalog/near-duplicates"),
    ("POST", "/api/v1/search/images"),
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
    # Every file a caller sends is read, checked and kept or run: never at the standard rate.
    assert uploads <= expensive, f"uploads at a cheaper rate: {uploads - expensive}"


def test_the_openapi_document_names_each_routes_rate_class() -> None:
    paths = _app().openapi()["paths"]

    assert paths["/api/v1/recognitions"]["post"]["x-kai-rate-class"] == "expensive"
    assert "`expensive` rate limit" in paths["/api/v1/recognitions"]["post"]["description"]
    assert paths["/api/v1/recognitions"]["get"]["x-kai-rate-class"] == "standard"
    assert paths["/api/v1/auth/login"]["post"]["x-kai-rate-class"] == "auth"
    assert "x-kai-rate-class" not in paths["/healthz"]["get"]


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
