"""Brute force: growing delays per address, the lockout at 100 failures, and the way out."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from kai.identity.sessions import email_digest
from kai.kit.ratelimit import MemoryRateLimiter
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import PASSWORD, create_user, login
from tests.identity.outbox import latest_token, outbox_messages

pytestmark = pytest.mark.database


def _move_time(runtime: Runtime) -> Clock:
    """A hand-moved clock for the account rules and for the per-address rate limit alike."""
    clock = Clock()
    runtime.clock = clock
    runtime.rate_limiter = MemoryRateLimiter(clock=lambda: clock.now.timestamp())
    return clock


async def _attempt(client: AsyncClient, email: str, password: str) -> int:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response.status_code


async def test_failures_are_throttled_with_growing_delays(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    clock = _move_time(committed_runtime)
    user = await create_user(committed_runtime)
    threshold = committed_runtime.settings.auth.throttle_after_failures

    for _ in range(threshold):
        assert await _attempt(committed_client, user.email, "wrong password!") == 401
    # From the threshold on, the next try waits 1 s, then 2 s, then 4 s...
    refused = await committed_client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/login-throttled")
    assert refused.headers["retry-after"] == "1"
    clock.advance(seconds=1)
    assert await _attempt(committed_client, user.email, "wrong password!") == 401
    assert (
        await committed_client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
    ).headers["retry-after"] == "2"
    # An unknown address is throttled exactly alike: the delay tells nothing. (A minute
    # later, so that the per-address rate limit has room again.)
    clock.advance(seconds=60)
    for _ in range(threshold):
        assert await _attempt(committed_client, "ghost@tiles.example", "whatever it is") == 401
    assert await _attempt(committed_client, "ghost@tiles.example", "whatever it is") == 429
    # Waiting long enough, the right password works and the count starts again.
    clock.advance(seconds=2)
    await login(committed_client, user.email)
    assert await _attempt(committed_client, user.email, "wrong password!") == 401
    assert await _attempt(committed_client, user.email, PASSWORD) == 200


async def test_a_thousand_wrong_passwords_lock_the_account_until_reset(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    clock = _move_time(committed_runtime)
    victim = await create_user(committed_runtime)
    bystander = await create_user(committed_runtime)
    max_wait = committed_runtime.settings.auth.throttle_max_seconds

    statuses = set()
    for attempt in range(1000):
        clock.advance(seconds=max_wait + 1)  # past every delay: each try is judged
        statuses.add(await _attempt(committed_client, victim.email, f"guess number {attempt}"))
    assert statuses == {401}

    # Locked at 100: now even the right password is refused, with the same answer.
    clock.advance(seconds=max_wait + 1)
    refused = await committed_client.post(
        "/api/v1/auth/login", json={"email": victim.email, "password": PASSWORD}
    )
    assert refused.status_code == 401
    assert refused.json()["type"].endswith("/invalid-credentials")
    async with committed_runtime.session_factory() as session:
        from kai.identity.repository import LoginThrottleRepository

        throttle = await LoginThrottleRepository(session).get(email_digest(victim.email))
    assert throttle is not None
    assert throttle.locked_at is not None
    # The owner of the address was told, with the way out.
    notices = await outbox_messages(committed_runtime, victim.email)
    assert any("was locked" in notice["Subject"] for notice in notices)

    # Someone else is not affected.
    await login(committed_client, bystander.email)

    # A password reset unlocks.
    await committed_client.post("/api/v1/auth/password-reset", json={"email": victim.email})
    token = await latest_token(committed_runtime, victim.email, "reset-password")
    reset = await committed_client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "password": "new terrazzo floor 2026"},
    )
    assert reset.status_code == 204
    await login(committed_client, victim.email, "new terrazzo floor 2026")


async def test_an_administrator_can_unlock_an_account(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    clock = _move_time(committed_runtime)
    user = await create_user(committed_runtime)
    lockout = committed_runtime.settings.auth.lockout_after_failures
    for _ in range(lockout):
        clock.advance(seconds=committed_runtime.settings.auth.throttle_max_seconds + 1)
        await _attempt(committed_client, user.email, "wrong password!")
    assert await _attempt(committed_client, user.email, PASSWORD) == 401

    from kai.identity import accounts

    async with committed_runtime.session_factory.begin() as session:
        assert await accounts.unlock(session, email=user.email)
    assert await _attempt(committed_client, user.email, PASSWORD) == 200
