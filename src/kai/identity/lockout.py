"""Guessing passwords: every check of a person's password is counted here.

Logins and the re-authentications of a signed-in person (step-up, password change, turning
TOTP off, new recovery codes) share one count per email address. From
`throttle_after_failures` on, each next try waits (1 s, 2 s, 4 s... up to
`throttle_max_seconds`); at `lockout_after_failures` the address is locked for a while that
grows with each lock (15 min, 1 h, 4 h... up to a day), never for good, so that knowing
someone's address is not enough to shut them out. A right password, a password reset and
`kai admin unlock` clear it all.

A try is counted as a failure before the password is checked, under the row's lock, and the
right password clears the count afterwards: tries sent in parallel are judged one by one
against the delays and the lock, so a burst gets no more guesses than a patient sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import AuthSettings
from kai.identity import audit, emails
from kai.identity.actor import Actor, Origin
from kai.identity.errors import InvalidCredentials, LoginLocked, LoginThrottled, PasswordNotSet
from kai.identity.models import User
from kai.identity.repository import LoginThrottleRepository
from kai.kit.crypto import token_digest
from kai.kit.db import act_for
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

# Where a signed-in person may be asked for their password again (audit details).
REAUTHENTICATION_PURPOSES = frozenset(
    {"step-up", "password-change", "totp-disable", "recovery-codes"}
)


SSO_ONLY_ADVICE = (
    "You sign in through your organization's identity provider only, and it cannot vouch for "
    "changes to your whole account. Set a password first with a reset by email "
    "(`POST /api/v1/auth/password-reset`), then confirm it with `POST /api/v1/auth/step-up`."
)


def email_digest(email: str) -> bytes:
    return token_digest("login:" + email.strip().lower())


@dataclass(frozen=True)
class Attempt:
    """One try at an address's password, already counted as a failure."""

    email_digest: bytes
    # Consecutive failures, this try included.
    failures: int
    # The lock this try starts when it fails; None when it starts none.
    locks_until: datetime | None


def throttle_wait_seconds(
    failures: int, last_failure_at: datetime, now: datetime, settings: AuthSettings
) -> float:
    """Seconds still to wait before the next try: doubling from the threshold, capped."""
    if failures < settings.throttle_after_failures:
        return 0.0
    exponent = min(failures - settings.throttle_after_failures, 62)
    delay = min(2**exponent, settings.throttle_max_seconds)
    return max(0.0, (last_failure_at + timedelta(seconds=delay) - now).total_seconds())


def lock_duration(locks_before: int, settings: AuthSettings) -> timedelta:
    """How long the next lock lasts: longer with each lock since the last right password."""
    growth = settings.lockout_growth ** min(locks_before, 32)
    return timedelta(minutes=min(settings.lockout_minutes * growth, settings.lockout_max_minutes))


def _duration(seconds: float) -> str:
    """A wait as a person reads it: whole minutes, rounded up; whole hours when exact."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes % 60 == 0:
        hours = minutes // 60
        return "1 hour" if hours == 1 else f"{hours} hours"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


async def begin(runtime: Runtime, digest: bytes) -> Attempt:
    """Count a try at the address's password, or refuse it (429) while it must wait.

    In a transaction of its own, committed before the password is checked: the request's
    own is rolled back by a refusal, and a parallel try must see this one.
    """
    settings = runtime.settings.auth
    now = runtime.clock()
    async with runtime.session_factory.begin() as session:
        throttle = await LoginThrottleRepository(session).locked_row(digest, now)
        if throttle.locked_until is not None and throttle.locked_until > now:
            wait = (throttle.locked_until - now).total_seconds()
            raise LoginLocked(
                f"Too many failed attempts: try again in {_duration(wait)}, or reset the "
                "password by email to get in now.",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        # After a lock has run out, the count starts again (the next lock lasts longer).
        failures = 0 if throttle.locked_until is not None else throttle.failures
        wait = throttle_wait_seconds(failures, throttle.last_failure_at, now, settings)
        if wait > 0:
            raise LoginThrottled(
                f"Try again in {math.ceil(wait)} seconds.",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        throttle.failures = failures + 1
        throttle.last_failure_at = now
        throttle.locked_until = None
        if throttle.failures >= settings.lockout_after_failures:
            throttle.locked_until = now + lock_duration(throttle.locks, settings)
            throttle.locks += 1
        return Attempt(
            email_digest=digest, failures=throttle.failures, locks_until=throttle.locked_until
        )


async def succeeded(session: AsyncSession, attempt: Attempt) -> None:
    """The password (and second factor) were right: the count starts from nothing."""
    await LoginThrottleRepository(session).clear(attempt.email_digest)


async def failed(
    runtime: Runtime,
    attempt: Attempt,
    *,
    user: User | None,
    origin: Origin,
    reason: str,
    purpose: str = "login",
) -> None:
    """Audit a wrong password or code; tell the owner of the address when it locked it.

    Recorded as the platform's events (no organization): they are about the account, not
    about any organization it belongs to, and their reasons ("wrong one-time code" says the
    password was right) and addresses are not for an organization's `audit:read` holders.
    """
    # In transactions of their own: the request's is rolled back by the refusal.
    await audit.record_detached(
        runtime.session_factory,
        action="auth.login.failed" if purpose == "login" else "auth.reauthentication.failed",
        outcome="failure",
        organization_id=None,
        actor_type="user" if user else "anonymous",
        actor_id=str(user.id) if user else None,
        origin=origin,
        details={
            "reason": reason,
            "consecutive_failures": attempt.failures,
            **({} if purpose == "login" else {"purpose": purpose}),
        },
    )
    if attempt.locks_until is None or user is None:
        return
    log.warning("auth.account_locked", user_id=str(user.id))
    await audit.record_detached(
        runtime.session_factory,
        action="auth.account.locked",
        outcome="success",
        organization_id=None,
        actor_type="system",
        target_type="user",
        target_id=str(user.id),
        origin=origin,
        details={
            "consecutive_failures": attempt.failures,
            "locked_until": attempt.locks_until.isoformat(),
        },
    )
    # Sent by a job after this commits: a slow mail server must not hold the refusal, nor
    # time it.
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=None)  # a platform job
        await emails.queue(
            session,
            emails.ACCOUNT_LOCKED,
            to=user.email,
            failures=attempt.failures,
            lasting=_duration((attempt.locks_until - runtime.clock()).total_seconds()),
            until=f"{attempt.locks_until:%Y-%m-%d %H:%M}",
        )


async def incomplete(
    runtime: Runtime, attempt: Attempt, *, user: User, origin: Origin, purpose: str = "login"
) -> None:
    """The password was right but the try stops short (no one-time code with it): it stays
    counted, or the refusal would tell whether the password was right for free."""
    if attempt.locks_until is not None:
        await failed(
            runtime, attempt, user=user, origin=origin, reason="no one-time code", purpose=purpose
        )


async def check_password_again(
    runtime: Runtime, *, actor: Actor, user: User, password: str, purpose: str
) -> Attempt:
    """A signed-in person's password, asked again before a change to the whole account.

    Counted with their logins: an organization's identity provider (which can open a
    session as any of its members) gets no more guesses here than at the login form.
    """
    assert purpose in REAUTHENTICATION_PURPOSES
    if user.password_hash is None:
        raise PasswordNotSet(SSO_ONLY_ADVICE)
    attempt = await begin(runtime, email_digest(user.email))
    check = await runtime.passwords.verify_async(user.password_hash, password)
    if not check.verified or user.disabled:
        await failed(
            runtime,
            attempt,
            user=user,
            origin=actor.origin,
            reason="wrong password",
            purpose=purpose,
        )
        raise InvalidCredentials("The password is not correct.")
    return attempt
