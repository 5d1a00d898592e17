"""Logging in and staying logged in: sessions, access tokens, rotating refresh tokens.

A login opens a session: the family of every refresh token that descends from it. Each
refresh token works once; presenting one a second time means it was copied, and the whole
family is revoked. A session ends at its absolute lifetime whatever the refreshes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, lockout
from kai.identity.actor import Actor, Origin
from kai.identity.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    MemberNotFound,
    MfaRequired,
    SessionNotFound,
)
from kai.identity.lockout import email_digest
from kai.identity.mfa import check_second_factor, has_confirmed_totp
from kai.identity.models import AuthSession, Organization, RefreshToken, User
from kai.identity.repository import (
    MembershipRepository,
    OrganizationRepository,
    SessionRepository,
    UserRepository,
)
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.kit.jws import new_jti
from kai.kit.pagination import PageParams
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
    # Counted (or refused while the address must wait) before the password is checked.
    attempt = await lockout.begin(runtime, email_digest(email))
    user = await UserRepository(session).by_email(email)
    # The same argon2 work whether or not the account exists.
    check = await runtime.passwords.verify_async(user.password_hash if user else None, password)
    if user is None or not check.verified or user.disabled:
        await lockout.failed(runtime, attempt, user=user, origin=origin, reason=_reason(user))
        raise InvalidCredentials()

    methods = ["pwd"]
    if await has_confirmed_totp(session, user.id):
        if not totp_code and not recovery_code:
            await lockout.incomplete(runtime, attempt, user=user, origin=origin)
            raise MfaRequired("Send `totp_code` (or a `recovery_code`) with the password.")
        checked = await check_second_factor(
            session, runtime, user_id=user.id, totp_code=totp_code, recovery_code=recovery_code
        )
        if not checked:
            await lockout.failed(
                runtime, attempt, user=user, origin=origin, reason="wrong one-time code"
            )
            raise checked.refusal()
        methods.append("otp")
    if user.email_verified_at is None:
        raise EmailNotVerified("Follow the link in the email we sent, or ask for a new one.")

    await lockout.succeeded(session, attempt)
    if check.needs_rehash:
        await UserRepository(session).update(
            user.id, password_hash=await runtime.passwords.hash_async(password)
        )
    await UserRepository(session).update(user.id, last_login_at=now)
    organization = await _starting_organization(session, user)
    return await open_session(
        session, runtime, user=user, organization=organization, methods=methods, origin=origin
    )


def _reason(user: User | None) -> str:
    if user is None:
        return "unknown email"
    if user.disabled:
        return "account disabled"
    return "wrong password"


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
            password_verified_at=now if "pwd" in methods else None,
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


async def access_token(
    session: AsyncSession, runtime: Runtime, auth_session: AuthSession, *, user_id: uuid.UUID
) -> TokenPair:
    """A new access token for a session whose proofs changed (no new refresh token)."""
    return await _issue(session, runtime, auth_session, user_id=user_id, with_refresh=False)


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


async def live_sessions(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, params: PageParams
) -> tuple[list[AuthSession], str | None]:
    """The caller's sessions that still work, in every organization."""
    assert actor.user_id is not None
    return await SessionRepository(session).live_page(
        actor.user_id, now=runtime.clock(), params=params
    )


async def end_session(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, session_id: uuid.UUID
) -> None:
    """End one of the caller's sessions; its tokens stop working at once. Ending the caller's
    own is a logout. The caller has checked the password proof that ending another needs."""
    assert actor.user_id is not None
    if session_id == actor.session_id:
        await logout(session, actor=actor)
        return
    ended = await SessionRepository(session).live(actor.user_id, session_id, now=runtime.clock())
    # Another person's session is as unknown as one that never was.
    if ended is None:
        raise SessionNotFound(f"None of your active sessions has the id {session_id}.")
    await SessionRepository(session).revoke(ended.id, "ended from another session")
    await audit.record(
        session,
        action="auth.session.ended",
        organization_id=actor.organization_id,
        actor=actor,
        target_type="session",
        target_id=str(ended.id),
        details={"from_session": str(actor.session_id)},
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
    """Make the session act for another organization the user belongs to.

    The caller has checked that the session may reach beyond its organization
    (`step_up.require_reach_beyond`) before this looks at any membership: an organization's
    identity provider vouches for its own organization only, and a 404 here would tell its
    admins where else the person belongs.
    """
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
