"""Brute force: growing delays per address, a lock at 100 failures that runs out, and the ways
out sooner. The attacks (parallel guesses, locking someone out) are in tests/security."""

from __future__ import annotations

from datetime import timedelta

import pytest
from httpx import AsyncClient

from kai.identity import admin
from kai.identity.lockout import email_digest
from kai.identity.repository import LoginThrottleRepository
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


async def lock_notices(runtime: Runtime, address: str) -> list[str]:
    """The bodies of the lock notices sent to `address`."""
    return [
        message.get_content()
        for message in await outbox_messages(runtime, address)
        if "locked" in message["Subject"]
    ]


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


async def test_a_hundred_wrong_passwords_lock_the_address_for_a_while(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    clock = _move_time(committed_runtime)
    victim = await create_user(committed_runtime)
    bystander = await create_user(committed_runtime)
    settings = committed_runtime.settings.auth
    max_wait = settings.throttle_max_seconds

    statuses = set()
    for attempt in range(settings.lockout_after_failures):
        clock.advance(seconds=max_wait + 1)  # past every delay: each try is judged
        statuses.add(await _attempt(committed_client, victim.email, f"guess number {attempt}"))
    assert statuses == {401}

    # Locked at 100: even the right password waits out the lock, which the answer says.
    refused = await committed_client.post(
        "/api/v1/auth/login", json={"email": victim.email, "password": PASSWORD}
    )
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/login-locked")
    assert refused.headers["retry-after"] == str(settings.lockout_minutes * 60)
    async with committed_runtime.session_factory() as session:
        throttle = await LoginThrottleRepository(session).get(email_digest(victim.email))
    assert throttle is not None
    assert throttle.locked_until == clock.now + timedelta(minutes=settings.lockout_minutes)
    # The owner of the address was told, with the way out.
    [notice] = await lock_notices(committed_runtime, victim.email)
    assert "locked for 15 minutes" in notice
    assert "/reset-password" in notice

    # Someone else is not affected.
    await login(committed_client, bystander.email)

    # A password reset unlocks at once.
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
    assert await _attempt(committed_client, user.email, PASSWORD) == 429

    # What `kai admin unlock --email` runs.
    assert await admin.unlock(committed_runtime, email=user.email)
    assert await _attempt(committed_client, user.email, PASSWORD) == 200
