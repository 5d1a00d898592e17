"""General rate limits: 429 with Retry-After and RateLimit headers, per class and per caller,
kept in Redis when several instances serve the API."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from kai.app import create_app
from kai.config import RateLimitSettings, RatePolicy
from kai.kit.ratelimit import RedisRateLimiter
from kai.runtime import Runtime
from tests.identity.factories import member

pytestmark = pytest.mark.database

REDIS_URL = os.environ.get("KAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _limited(runtime: Runtime, **policies: RatePolicy) -> Runtime:
    settings = runtime.settings.model_copy(update={"rate_limits": RateLimitSettings(**policies)})
    return dataclasses.replace(runtime, settings=settings)


def _client(runtime: Runtime, address: str = "127.0.0.1") -> AsyncClient:
    app = create_app(runtime.settings, runtime=runtime)
    return AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False, client=(address, 50000)),
        base_url="http://kai.test",
    )


async def test_anonymous_auth_calls_are_limited_per_address(runtime: Runtime) -> None:
    limited = _limited(runtime, auth=RatePolicy(limit=3, period_seconds=60))
    async with _client(limited) as client:
        statuses = []
        for _ in range(4):
            response = await client.post(
                "/api/v1/auth/password-reset", json={"email": "someone@tiles.example"}
            )
            statuses.append(response.status_code)
        assert statuses == [202, 202, 202, 429]
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/rate-limited")
        # One request refills in 60 / 3 = 20 s, less what the four requests themselves took.
        assert 18 <= int(response.headers["retry-after"]) <= 20
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-remaining"] == "0"
        assert response.headers["ratelimit-policy"].startswith("3;w=60")


async def test_authenticated_calls_are_limited_per_caller(runtime: Runtime) -> None:
    limited = _limited(runtime, standard=RatePolicy(limit=5, period_seconds=60))
    async with _client(limited) as client:
        alice = await member(limited, client)
        bob = await member(limited, client)
        ok = await client.get("/api/v1/me", headers=alice.headers)
        assert ok.headers["ratelimit-remaining"] == "4"
        for _ in range(4):
            await client.get("/api/v1/me", headers=alice.headers)
        assert (await client.get("/api/v1/me", headers=alice.headers)).status_code == 429
        # Another caller from the same address has a budget of their own.
        assert (await client.get("/api/v1/me", headers=bob.headers)).status_code == 200
        # Health probes are never limited.
        for _ in range(20):
            assert (await client.get("/healthz")).status_code == 200


async def test_each_failed_authentication_spends_the_addresss_auth_budget(
    runtime: Runtime,
) -> None:
    limited = _limited(runtime, auth=RatePolicy(limit=3, period_seconds=60))
    async with _client(limited, "192.0.2.1") as elsewhere:
        alice = await member(limited, elsewhere)
    async with _client(limited) as client:
        wrong = [
            {"authorization": "Bearer not-a-token"},
            {"authorization": "Bearer kai_abcdefghijkl_" + "x" * 40},  # no such API key
            {"authorization": f"Bearer {alice.access_token}x"},
        ]
        statuses = [
            (await client.get("/api/v1/me", headers=headers)).status_code for headers in wrong
        ]
        refused = await client.get("/api/v1/me", headers=wrong[0])

        assert statuses == [401, 401, 401]
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        # The address's login form shares that budget; a right credential is not held back.
        login = await client.post(
            "/api/v1/auth/login", json={"email": alice.user.email, "password": "wrong"}
        )
        assert login.status_code == 429
        assert (await client.get("/api/v1/me", headers=alice.headers)).status_code == 200
        # Asking without any credential costs no lookup, and no budget.
        assert (await client.get("/api/v1/me")).status_code == 401


async def test_an_ipv6_caller_is_limited_by_its_64_not_by_each_address(runtime: Runtime) -> None:
    limited = _limited(runtime, auth=RatePolicy(limit=2, period_seconds=60))
    reset = {"email": "someone@tiles.example"}

    async def statuses(address: str, count: int) -> list[int]:
        async with _client(limited, address) as client:
            return [
                (await client.post("/api/v1/auth/password-reset", json=reset)).status_code
                for _ in range(count)
            ]

    assert await statuses("2001:db8:1:2::10", 1) == [202]
    # Another address of the same /64 (a host's next privacy address) is the same caller.
    assert await statuses("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 2) == [202, 429]
    # The next /64 is another customer's.
    assert await statuses("2001:db8:1:3::10", 1) == [202]


@pytest.fixture
async def shared_limiters() -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    prefix = f"kai-test:{uuid.uuid4().hex}:"
    first, second = (
        RedisRateLimiter(REDIS_URL, prefix=prefix),
        RedisRateLimiter(REDIS_URL, prefix=prefix),
    )
    yield first, second
    await first.close()
    await second.close()


async def test_instances_sharing_redis_share_one_budget(
    runtime: Runtime, shared_limiters: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    policy = RatePolicy(limit=4, period_seconds=60)
    one = _limited(runtime, auth=policy)
    two = _limited(runtime, auth=policy)
    one.rate_limiter, two.rate_limiter = shared_limiters
    async with _client(one) as first, _client(two) as second:
        statuses = []
        for client in (first, second, first, second, first):
            response = await client.post(
                "/api/v1/auth/verify-email/resend", json={"email": "x@tiles.example"}
            )
            statuses.append(response.status_code)
    assert statuses == [202, 202, 202, 202, 429]


async def test_rate_limits_can_be_switched_off(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"rate_limits": RateLimitSettings(enabled=False)})
    async with _client(dataclasses.replace(runtime, settings=settings)) as client:
        for _ in range(40):
            response = await client.post(
                "/api/v1/auth/password-reset", json={"email": "x@tiles.example"}
            )
            assert response.status_code == 202
            assert "ratelimit-limit" not in response.headers
