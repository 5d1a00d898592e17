"""Guessing passwords: bursts in parallel, shutting the owner out, and every place a password is
typed counting alike.

Each test runs against an app whose requests commit, as in production: a refusal's count
must outlive the refused request, and parallel requests see each other only once committed.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.identity.audit import verify_chain
from kai.identity.lockout import email_digest
from kai.identity.models import LoginThrottle
from kai.kit import totp
from kai.kit.db import libpq_url
from kai.kit.ratelimit import MemoryRateLimiter
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import PASSWORD, create_user, member
from tests.identity.outbox import latest_token, outbox_messages
from tests.identity.test_cli import (
    _kai,
    operator_env,  # noqa: F401 - a fixture, used by name
)
from tests.identity.test_mfa import _enrol

pytestmark = pytest.mark.database

PROBLEMS = "https://kai.dev/problems/"
NEW_PASSWORD = "basalt staircase lantern 7"


def _tune(runtime: Runtime, **auth: int) -> Clock:
    """A hand-moved clock, and the account rules of the test; no per-address rate limit (a
    wall of its own, tested elsewhere), so that only the account's throttle answers."""
    clock = Clock()
    runtime.clock = clock
    runtime.rate_limiter = MemoryRateLimiter(clock=lambda: clock.now.timestamp())
    settings = runtime.settings
    runtime.settings = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(update=auth),
            "rate_limits": settings.rate_limits.model_copy(update={"enabled": False}),
        }
    )
    return clock


async def _login(client: httpx.AsyncClient, address: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": address, "password": password})


def _kind(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    kind: str = response.json()["type"]
    return kind.removeprefix(PROBLEMS)


async def _throttle(runtime: Runtime, address: str) -> LoginThrottle | None:
    async with runtime.session_factory() as session:
        return await session.get(LoginThrottle, email_digest(address))


async def _lock_notices(runtime: Runtime, address: str) -> list[str]:
    return [
        message.get_content()
        for message in await outbox_messages(runtime, address)
        if "locked" in message["Subject"]
    ]


# --- guesses in parallel ----------------------------------------------------------------------


async def test_parallel_wrong_passwords_get_no_more_guesses_than_a_sequence(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient
) -> None:
    # From the 3rd failure on, each next try waits: a burst must not all be judged at once.
    _tune(committed_runtime, throttle_after_failures=3)
    victim = await create_user(committed_runtime)

    answers = await asyncio.gather(
        *(_login(committed_client, victim.email, f"guess number {n}") for n in range(16))
    )

    judged = [answer for answer in answers if answer.status_code == 401]
    waiting = [answer for answer in answers if answer.status_code == 429]
    assert len(judged) == 3
    assert len(waiting) == 13
    assert {_kind(answer) for answer in judged} == {"invalid-credentials"}
    assert {_kind(answer) for answer in waiting} == {"login-throttled"}
    assert {answer.headers["retry-after"] for answer in waiting} == {"1"}
    throttle = await _throttle(committed_runtime, victim.email)
    assert throttle is not None
    assert throttle.failures == 3
    # The owner's right password waits too, for the second the delay lasts.
    assert (await _login(committed_client, victim.email, PASSWORD)).status_code == 429


async def test_parallel_wrong_passwords_lock_the_address_at_exactly_the_count(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient
) -> None:
    # No delays before the lock: only the row lock keeps the count exact.
    lock_at = 6
    _tune(committed_runtime, throttle_after_failures=100, lockout_after_failures=lock_at)
    victim = await create_user(committed_runtime)

    answers = await asyncio.gather(
        *(_login(committed_client, victim.email, f"guess number {n}") for n in range(3 * lock_at))
    )

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(401) == lock_at
    assert statuses.count(429) == 2 * lock_at
    assert {_kind(answer) for answer in answers if answer.status_code == 429} == {"login-locked"}
    throttle = await _throttle(committed_runtime, victim.email)
    assert throttle is not None
    assert throttle.failures == lock_at
    assert throttle.locked_until is not None
    assert throttle.locks == 1
    assert len(await _lock_notices(committed_runtime, victim.email)) == 1
    # Even the right password is refused now: no guess slipped past the lock.
    refused = await _login(committed_client, victim.email, PASSWORD)
    assert refused.status_code == 429
    assert _kind(refused) == "login-locked"


# --- locking someone out ----------------------------------------------------------------------


async def test_a_stranger_who_knows_the_address_cannot_lock_its_owner_out_for_good(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient
) -> None:
    clock = _tune(committed_runtime, throttle_after_failures=100, lockout_after_failures=5)
    victim = await create_user(committed_runtime)
    bystander = await create_user(committed_runtime)

    # Each lock lasts four times the one before, up to a day; each runs out.
    for minutes in (15, 60, 240, 960, 24 * 60, 24 * 60):
        for n in range(5):
            guess = await _login(committed_client, victim.email, f"guess {minutes}-{n}")
            assert guess.status_code == 401, guess.text
        refused = await _login(committed_client, victim.email, PASSWORD)
        assert _kind(refused) == "login-locked"
        assert refused.headers["retry-after"] == str(minutes * 60)
        clock.advance(minutes=minutes - 1)
        assert (await _login(committed_client, victim.email, PASSWORD)).status_code == 429
        # Someone else was never affected.
        assert (await _login(committed_client, bystander.email, PASSWORD)).status_code == 200
        clock.advance(minutes=1)

    assert (await _login(committed_client, victim.email, PASSWORD)).status_code == 200
    # The right password wiped the slate: the next lock is a short one again.
    for n in range(5):
        await _login(committed_client, victim.email, f"guess again {n}")
    assert (await _login(committed_client, victim.email, PASSWORD)).headers["retry-after"] == str(
        15 * 60
    )
    notices = await _lock_notices(committed_runtime, victim.email)
    assert len(notices) == 7
    assert "locked for 15 minutes" in notices[0]
    assert "locked for 24 hours" in notices[-2]


async def test_a_password_reset_lets_the_owner_in_during_a_lock(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient
) -> None:

    _tune(committed_runtime, throttle_after_failures=100, lockout_after_failures=3)
    victim = await create_user(committed_runtime)
    for n in range(3):
        await _login(committed_client, victim.email, f"guess {n}")
    assert (await _login(committed_client, victim.email, PASSWORD)).status_code == 429

    await committed_client.post("/api/v1/auth/password-reset", json={"email": victim.email})
    reset = await committed_client.post(
        "/api/v1/auth/password-reset/confirm",
        json={
            "token": await latest_token(committed_runtime, victim.email, "reset-password"),
            "password": NEW_PASSWORD,
        },
    )

    assert reset.status_code == 204
    assert (await _login(committed_client, victim.email, NEW_PASSWORD)).status_code == 200


@pytest.mark.usefixtures("operator_env")
def test_kai_admin_unlock_lifts_a_lock(database_url: str) -> None:
    address = f"locked.{uuid.uuid4().hex[:6]}@quarry.example"
    _kai(
        "admin",
        "create-user",
        "--email",
        address,
        "--organization",
        "quarry-lock",
        "--password",
        NEW_PASSWORD,
    )
    with psycopg.connect(libpq_url(database_url)) as connection:
        connection.execute(
            "INSERT INTO login_throttles (email_digest, failures, last_failure_at, locked_until,"
            " locks) VALUES (%s, 100, now(), now() + interval '1 day', 4)",
            (email_digest(address),),
        )

    assert f"{address} unlocked" in _kai("admin", "unlock", "--email", address)

    with psycopg.connect(libpq_url(database_url)) as connection:
        left = connection.execute(
            "SELECT count(*) FROM login_throttles WHERE email_digest = %s",
            (email_digest(address),),
        ).fetchone()
    assert left == (0,)


# --- every place a password is typed ------------------------------------------------------------


async def test_wrong_passwords_given_to_reauthentication_count_with_logins(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient, owner_engine: AsyncEngine
) -> None:
    clock = _tune(committed_runtime, throttle_after_failures=4, lockout_after_failures=6)
    person = await member(committed_runtime, committed_client)
    secret, _ = await _enrol(committed_client, person, clock)
    clock.advance(seconds=30)
    code = totp.totp(secret, clock.now.timestamp())
    headers = person.headers

    async def step_up(password: str, **codes: str) -> httpx.Response:
        return await committed_client.post(
            "/api/v1/auth/step-up", json={"password": password, **codes}, headers=headers
        )

    async def change_password(current: str) -> httpx.Response:
        return await committed_client.post(
            "/api/v1/me/password",
            json={"current_password": current, "new_password": NEW_PASSWORD},
            headers=headers,
        )

    # A right password clears what went before, wherever it is typed.
    assert (await step_up("not my password")).status_code == 401
    assert (await step_up(PASSWORD, totp_code=code)).status_code == 200
    assert await _throttle(committed_runtime, person.user.email) is None

    # Four wrong ones, at four different routes (a wrong code counts as well).
    clock.advance(seconds=30)
    wrong = [
        await step_up("not my password"),
        await change_password("not my password either"),
        await committed_client.post(
            "/api/v1/auth/mfa/totp/disable",
            json={"password": PASSWORD, "code": "000000"},
            headers=headers,
        ),
        await committed_client.post(
            "/api/v1/auth/mfa/recovery-codes",
            json={"password": "still not it", "code": totp.totp(secret, clock.now.timestamp())},
            headers=headers,
        ),
    ]
    assert [_kind(answer) for answer in wrong] == [
        "invalid-credentials",
        "invalid-credentials",
        "invalid-mfa-code",
        "invalid-credentials",
    ]

    # The threshold is reached: the next try anywhere waits, the login form's included.
    for waiting in (
        await committed_client.post(
            "/api/v1/auth/login",
            json={
                "email": person.user.email,
                "password": PASSWORD,
                "totp_code": totp.totp(secret, clock.now.timestamp()),
            },
        ),
        await step_up(PASSWORD),
        await change_password(PASSWORD),
    ):
        assert _kind(waiting) == "login-throttled"
        assert waiting.headers["retry-after"] == "1"

    # Two more wrong ones lock the address: the owner hears of it.
    clock.advance(seconds=1)
    assert (await step_up("guess five")).status_code == 401
    clock.advance(seconds=2)
    assert (await change_password("guess six")).status_code == 401
    locked = await _login(committed_client, person.user.email, PASSWORD)
    assert _kind(locked) == "login-locked"
    assert len(await _lock_notices(committed_runtime, person.user.email)) == 1
    # The platform's events (the account's, not its organization's: see below).
    async with owner_engine.connect() as connection:
        purposes = (
            await connection.scalars(
                text(
                    "SELECT details->>'purpose' FROM audit_events"
                    " WHERE action = 'auth.reauthentication.failed' AND organization_id IS NULL"
                )
            )
        ).all()
    assert sorted(purposes) == sorted(
        [
            "step-up",
            "step-up",
            "password-change",
            "totp-disable",
            "recovery-codes",
            "step-up",
            "password-change",
        ]
    )


# --- what an organization sees ------------------------------------------------------------------


async def test_an_organization_does_not_see_its_members_failed_logins_nor_why_they_failed(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient, owner_engine: AsyncEngine
) -> None:
    # The failures are the account's, not the organization's: "wrong one-time code" would tell
    # its admins (or whoever holds `audit:read`) that the person's password was just typed
    # right, and from where.
    clock = _tune(committed_runtime, throttle_after_failures=100, lockout_after_failures=3)
    admin = await member(committed_runtime, committed_client)
    person = await member(
        committed_runtime, committed_client, role="member", organization=admin.organization
    )
    secret, _ = await _enrol(committed_client, person, clock)
    clock.advance(seconds=30)
    wrong_code = f"{(int(totp.totp(secret, clock.now.timestamp())) + 1) % 1_000_000:06d}"

    address = person.user.email
    assert (await _login(committed_client, address, "a wrong guess")).status_code == 401
    with_code = await committed_client.post(
        "/api/v1/auth/login", json={"email": address, "password": PASSWORD, "totp_code": wrong_code}
    )
    assert _kind(with_code) == "invalid-mfa-code"
    assert (await _login(committed_client, address, "another guess")).status_code == 401
    assert _kind(await _login(committed_client, address, PASSWORD)) == "login-locked"

    log = await committed_client.get("/api/v1/audit-events?limit=100", headers=admin.headers)
    assert log.status_code == 200
    seen = log.json()["items"]
    assert not [event for event in seen if event["action"].startswith("auth.login.failed")]
    assert not [event for event in seen if event["action"] == "auth.account.locked"]
    assert not [event for event in seen if "reason" in event["details"]]

    # The platform keeps them, for its operator, in the same hash chain.
    async with owner_engine.connect() as connection:
        platform = (
            await connection.execute(
                text(
                    "SELECT action, details->>'reason' FROM audit_events"
                    " WHERE organization_id IS NULL AND action LIKE 'auth.%' ORDER BY seq"
                )
            )
        ).all()
        report = await verify_chain(connection)
    assert [tuple(row) for row in platform] == [
        ("auth.login.failed", "wrong password"),
        ("auth.login.failed", "wrong one-time code"),
        ("auth.login.failed", "wrong password"),
        ("auth.account.locked", None),
    ]
    assert report.intact
