"""Logging in and staying logged in: sessions, access tokens, rotating refresh tokens.

A login opens a session: the family of every refresh token that descends from it. Each
refresh token works once; presenting one a second time means it was copied, and the whole
family is revoked. A session ends at its absolute lifetime whatever the refreshes.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, emails
from kai.identity.actor import Actor, Origin
from kai.identity.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidRefreshToken,
    LoginThrottled,
    MemberNotFound,
    MfaRequired,
    PermissionDenied,
)
from kai.identity.mfa import check_second_factor, has_confirmed_totp
from kai.identity.models import AuthSession, Organization, RefreshToken, User
from kai.identity.repository import (
    LoginThrottleRepository,
    MembershipRepository,
    OrganizationRepository,
    SessionRepository,
    UserRepository,
)
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.kit.jws import new_jti
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JWT `typ` (RFC 9068)
REFRESH_TOKEN_PREFIX = "kai_rt_"  # noqa: S105 - a public marker


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str | None
    expires_in: int
    organization_id: uuid.UUID | None


def email_digest(email: str) -> bytes:
    return token_digest("login:" + email.strip().lower())


def throttle_wait_seconds(
    failures: int, last_failure_at: datetime, now: datetime, runtime: Runtime
) -> float:
    """Seconds still to wait before the next attempt: doubling from the threshold, capped."""
    settings = runtime.settings.auth
    if failures < settings.throttle_after_failures:
        return 0.0
    delay = min(2 ** (failures - settings.throttle_after_failures), settings.throttle_max_seconds)
    return max(0.0, (last_failure_at + timedelta(seconds=delay) - now).total_seconds())


async def login(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    totp_code: str | None,
    recovery_code: str | None,
    origin: Origin,
) -> TokenPair:
    """Check the credentials and open a session; every refusal looks the same from outside."""
    now = runtime.clock()
    digest = email_digest(email)
    throttles = LoginThrottleRepository(session)
    throttle = await throttles.get(digest)
    if throttle is not None and throttle.locked_at is None:
        wait = throttle_wait_seconds(throttle.failures, throttle.last_failure_at, now, runtime)
        if wait > 0:
            raise LoginThrottled(
                f"Try again in {math.ceil(wait)} seconds.",
                headers={"Retry-After": str(math.ceil(wait))},
            )

    user = await UserRepository(session).by_email(email)
    # The same argon2 work whether or not the account exists.
    check = await runtime.passwords.verify_async(user.password_hash if user else None, password)
    locked = throttle is not None and throttle.locked_at is not None
    if user is None or not check.verified or user.disabled or locked:
        await _record_failure(runtime, digest, user, origin, now, reason=_reason(user, locked))
        raise InvalidCredentials()

    methods = ["pwd"]
    if await has_confirmed_totp(session, user.id):
        if not totp_code and not recovery_code:
            raise MfaRequired("Send `totp_code` (or a `recovery_code`) with the password.")
        if not await check_second_factor(
            session, runtime, user_id=user.id, totp_code=totp_code, recovery_code=recovery_code
        ):
            await _record_failure(runtime, digest, user, origin, now, reason="wrong one-time code")
            raise InvalidMfaCode()
        methods.append("otp")
    if user.email_verified_at is None:
        raise EmailNotVerified("Follow the link in the email we sent, or ask for a new one.")

    if throttle is not None:
        await throttles.clear(digest)
    if check.needs_rehash:
        await UserRepository(session).update(
            user.id, password_hash=await runtime.passwords.hash_async(password)
        )
    await UserRepository(session).update(user.id, last_login_at=now)
    organization = await _starting_organization(session, user)
    return await open_session(
        session, runtime, user=user, organization=organization, methods=methods, origin=origin
    )


def _reason(user: User | None, locked: bool) -> str:
    if user is None:
        return "unknown email"
    if locked:
        return "account locked"
    if user.disabled:
        return "account disabled"
    return "wrong password"


async def _record_failure(
    runtime: Runtime,
    digest: bytes,
    user: User | None,
    origin: Origin,
    now: datetime,
    *,
    reason: str,
) -> None:
    # In transactions of their own: the request's is rolled back by the refusal.
    lockout = runtime.settings.auth.lockout_after_failures
    async with runtime.session_factory.begin() as session:
        throttle = await LoginThrottleRepository(session).record_failure(
            digest, now, lock_at_failures=lockout
        )
        just_locked = throttle.locked_at == now and throttle.failures == lockout
    organization_id = user.default_organization_id if user else None
    await audit.record_detached(
        runtime.session_factory,
        action="auth.login.failed",
        outcome="failure",
        organization_id=organization_id,
        actor_type="user" if user else "anonymous",
        actor_id=str(user.id) if user else None,
        origin=origin,
        details={"reason": reason, "consecutive_failures": throttle.failures},
    )
    if just_locked and user is not None:
        log.warning("auth.account_locked", user_id=str(user.id))
        await audit.record_detached(
            runtime.session_factory,
            action="auth.account.locked",
            outcome="success",
            organization_id=organization_id,
            actor_type="system",
            target_type="user",
            target_id=str(user.id),
            origin=origin,
            details={"consecutive_failures": throttle.failures},
        )
        # Sent by a job: a slow mail server must not hold the refusal, nor time it.
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=None)  # a platform job
            await emails.queue(
                session, emails.ACCOUNT_LOCKED, to=user.email, failures=throttle.failures
            )


async def _starting_organization(session: AsyncSession, user: User) -> Organization | None:
    await act_for(session, organization_id=None, user_id=user.id)
    memberships = await MembershipRepository(session).of_user(user.id)
    for _, organization in memberships:
        if organization.id == user.default_organization_id:
            return organization
    return memberships[0][1] if memberships else None


async def open_session(
    session: AsyncSession,
    runtime: Runtime,
    *,
    user: User,
    organization: Organization | None,
    methods: list[str],
    origin: Origin,
) -> TokenPair:
    """A new session for a user whose identity is established; its first pair of tokens."""
    now = runtime.clock()
    hours = (
        organization.session_lifetime_hours
        if organization and organization.session_lifetime_hours
        else runtime.settings.auth.session_lifetime_hours
    )
    auth_session = await SessionRepository(session).add(
        AuthSession(
            user_id=user.id,
            organization_id=organization.id if organization else None,
            methods=methods,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(hours=hours),
            client_address=origin.client_address,
            user_agent=(origin.user_agent or "")[:400] or None,
        )
    )
    organization_id = organization.id if organization else None
    await act_for(session, organization_id=organization_id, user_id=user.id)
    await audit.record(
        session,
        action="auth.login.succeeded",
        organization_id=organization_id,
        actor_type="user",
        actor_id=str(user.id),
        origin=origin,
        details={"methods": methods, "session_id": str(auth_session.id)},
    )
    return await _issue(session, runtime, auth_session, user_id=user.id)


async def _issue(
    session: AsyncSession,
    runtime: Runtime,
    auth_session: AuthSession,
    *,
    user_id: uuid.UUID,
    with_refresh: bool = True,
) -> TokenPair:
    now = runtime.clock()
    refresh: str | None = None
    if with_refresh:
        refresh = REFRESH_TOKEN_PREFIX + random_token(32)
        expires = min(
            now + timedelta(days=runtime.settings.auth.refresh_token_days), auth_session.expires_at
        )
        await SessionRepository(session).add_refresh_token(
            RefreshToken(
                session_id=auth_session.id,
                token_digest=token_digest(refresh),
                created_at=now,
                expires_at=expires,
            )
        )
    lifetime = timedelta(minutes=runtime.settings.auth.access_token_minutes)
    # Never past the session's own end.
    expires_at = min(now + lifetime, auth_session.expires_at)
    settings = runtime.settings.auth
    claims: dict[str, object] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": str(user_id),
        "sid": str(auth_session.id),
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": new_jti(),
        "amr": list(auth_session.methods),
    }
    if auth_session.organization_id is not None:
        claims["org"] = str(auth_session.organization_id)
    return TokenPair(
        access_token=runtime.token_keys.sign(claims, typ=ACCESS_TOKEN_TYPE),
        refresh_token=refresh,
        expires_in=max(0, int((expires_at - now).total_seconds())),
        organization_id=auth_session.organization_id,
    )


async def refresh(
    session: AsyncSession, runtime: Runtime, *, refresh_token: str, origin: Origin
) -> TokenPair:
    """Exchange a refresh token for a new pair; a token used before revokes its family."""
    now = runtime.clock()
    sessions = SessionRepository(session)
    if not refresh_token.startswith(REFRESH_TOKEN_PREFIX):
        raise InvalidRefreshToken()
    token = await sessions.refresh_token(token_digest(refresh_token))
    if token is None:
        raise InvalidRefreshToken()
    auth_session = await sessions.get(token.session_id)
    if auth_session is None:
        raise InvalidRefreshToken()
    if token.used_at is not None:
        await _revoke_family(runtime, auth_session, origin)
        raise InvalidRefreshToken(
            "This refresh token was used before: every token of its session is revoked."
        )
    if auth_session.revoked_at is None and auth_session.expires_at <= now:
        raise InvalidRefreshToken("The session reached its maximum lifetime: log in again.")
    if auth_session.revoked_at is not None or token.expires_at <= now:
        raise InvalidRefreshToken("The session has ended: log in again.")
    user = await UserRepository(session).get(auth_session.user_id)
    if (
        user is None
        or user.disabled
        or (user.sessions_valid_after and auth_session.created_at < user.sessions_valid_after)
    ):
        raise InvalidRefreshToken("The session has ended: log in again.")
    token.used_at = now
    auth_session.last_used_at = now
    await session.flush()
    return await _issue(session, runtime, auth_session, user_id=user.id)


async def _revoke_family(runtime: Runtime, auth_session: AuthSession, origin: Origin) -> None:
    log.warning("auth.refresh_token_reused", session_id=str(auth_session.id))
    async with runtime.session_factory.begin() as detached:
        await SessionRepository(detached).revoke(auth_session.id, "refresh token reused")
    await audit.record_detached(
        runtime.session_factory,
        action="auth.refresh_token.reused",
        outcome="failure",
        organization_id=auth_session.organization_id,
        actor_type="user",
        actor_id=str(auth_session.user_id),
        target_type="session",
        target_id=str(auth_session.id),
        origin=origin,
        details={"revoked": "session"},
    )


async def logout(session: AsyncSession, *, actor: Actor) -> None:
    if actor.session_id is None:
        return
    await SessionRepository(session).revoke(actor.session_id, "logout")
    await audit.record(
        session,
        action="auth.logout",
        organization_id=actor.organization_id,
        actor=actor,
        target_type="session",
        target_id=str(actor.session_id),
    )


async def logout_everywhere(session: AsyncSession, runtime: Runtime, *, actor: Actor) -> int:
    assert actor.user_id is not None
    await UserRepository(session).update(actor.user_id, sessions_valid_after=runtime.clock())
    revoked = await SessionRepository(session).revoke_all(actor.user_id, "logout everywhere")
    await audit.record(
        session,
        action="auth.logout_everywhere",
        organization_id=actor.organization_id,
        actor=actor,
        details={"sessions_revoked": revoked},
    )
    return revoked


async def switch_organization(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, organization_id: uuid.UUID
) -> TokenPair:
    """Make the session act for another organization the user belongs to."""
    assert actor.user_id is not None
    assert actor.session_id is not None
    await act_for(session, organization_id=organization_id, user_id=actor.user_id)
    membership = await MembershipRepository(session).get(organization_id, actor.user_id)
    organization = await OrganizationRepository(session).get(organization_id)
    if membership is None or organization is None:
        raise MemberNotFound(f"You are not a member of organization {organization_id}.")
    auth_session = await SessionRepository(session).get(actor.session_id, for_update=True)
    if auth_session is None:
        raise InvalidCredentials()
    if "pwd" not in auth_session.methods:
        # An organization's identity provider vouches for its own organization only: else an
        # admin running that provider could act as the person in their other organizations.
        raise PermissionDenied(
            "A single sign-on session stays in its organization: log in with your password "
            "to switch."
        )
    auth_session.organization_id = organization_id
    await UserRepository(session).update(actor.user_id, default_organization_id=organization_id)
    await session.flush()
    await audit.record(
        session,
        action="auth.organization_switched",
        organization_id=organization_id,
        actor=actor,
        details={"from": str(actor.organization_id) if actor.organization_id else None},
    )
    return await _issue(session, runtime, auth_session, user_id=actor.user_id, with_refresh=False)
