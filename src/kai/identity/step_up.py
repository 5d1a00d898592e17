"""Password step-up: what a session may change beyond its organization, and when.

A single sign-on session proves only what an organization's identity provider says, and that
provider is run by the organization's admins: it can open a session as any of its members.
Such a session acts for its organization and no further. Whatever reaches beyond it (the
account's password, two-factor settings and sessions, its name as other organizations see it,
its security alerts, its other organizations) needs the person's own password first, with
their one-time code when two-factor authentication is on: `POST /api/v1/auth/step-up`,
recorded on the session.

Changes to credentials and sessions need that proof to be recent (`step_up_minutes`) in every
session, so that a stolen access token cannot make them either; a password login is such a
proof at its start. Switching to, creating or joining another organization needs it recent in
a single sign-on session (a session begun with the password needs nothing more); seeing the
other organizations, the name, the security alerts and the two-factor status need a step-up
at some time in the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, lockout, sessions
from kai.identity.actor import Actor
from kai.identity.errors import (
    MfaRequired,
    NotAuthenticated,
    PasswordNotSet,
    PermissionDenied,
    StepUpRequired,
)
from kai.identity.lockout import SSO_ONLY_ADVICE
from kai.identity.mfa import check_second_factor, has_confirmed_totp
from kai.identity.models import AuthSession
from kai.identity.repository import SessionRepository, UserRepository
from kai.kit.errors import KaiError
from kai.runtime import Runtime

STEP_UP_ROUTE = "POST /api/v1/auth/step-up"


@dataclass(frozen=True)
class SteppedUp:
    tokens: sessions.TokenPair
    # Until when changes to credentials and sessions are allowed without asking again.
    until: datetime


async def step_up(
    session: AsyncSession,
    runtime: Runtime,
    *,
    actor: Actor,
    password: str,
    totp_code: str | None,
    recovery_code: str | None,
) -> SteppedUp:
    """Prove the password (and second factor) in this session; answers a new access token."""
    assert actor.user_id is not None
    user = await UserRepository(session).get(actor.user_id)
    if user is None:
        raise NotAuthenticated("The session has ended: log in again.")
    attempt = await lockout.check_password_again(
        runtime, actor=actor, user=user, password=password, purpose="step-up"
    )
    proofs = ["pwd"]
    if await has_confirmed_totp(session, user.id):
        if not totp_code and not recovery_code:
            await lockout.incomplete(
                runtime, attempt, user=user, origin=actor.origin, purpose="step-up"
            )
            raise MfaRequired("Send `totp_code` (or a `recovery_code`) with the password.")
        checked = await check_second_factor(
            session, runtime, user_id=user.id, totp_code=totp_code, recovery_code=recovery_code
        )
        if not checked:
            await lockout.failed(
                runtime,
                attempt,
                user=user,
                origin=actor.origin,
                reason="wrong one-time code",
                purpose="step-up",
            )
            raise checked.refusal()
        proofs.append("otp")
    await lockout.succeeded(session, attempt)
    auth_session = await _session_of(session, actor, for_update=True)
    now = runtime.clock()
    auth_session.password_verified_at = now
    # Methods only grow: the session keeps how it began and adds what it proved since.
    auth_session.methods = [
        *auth_session.methods,
        *(proof for proof in proofs if proof not in auth_session.methods),
    ]
    await session.flush()
    await audit.record(
        session,
        action="auth.step_up",
        organization_id=actor.organization_id,
        actor=actor,
        target_type="session",
        target_id=str(auth_session.id),
        details={"methods": proofs},
    )
    tokens = await sessions.access_token(session, runtime, auth_session, user_id=user.id)
    return SteppedUp(tokens=tokens, until=now + _window(runtime))


def _window(runtime: Runtime) -> timedelta:
    return timedelta(minutes=runtime.settings.auth.step_up_minutes)


async def _session_of(
    session: AsyncSession, actor: Actor, *, for_update: bool = False
) -> AuthSession:
    if actor.kind != "user" or actor.session_id is None:
        raise PermissionDenied("Only a person can do this, not an API key.")
    auth_session = await SessionRepository(session).get(actor.session_id, for_update=for_update)
    if auth_session is None:
        raise NotAuthenticated("The session has ended: log in again.")
    return auth_session


async def _refusal(session: AsyncSession, actor: Actor, detail: str) -> KaiError:
    assert actor.user_id is not None
    user = await UserRepository(session).get(actor.user_id)
    if user is None or user.password_hash is None:
        return PasswordNotSet(SSO_ONLY_ADVICE)
    return StepUpRequired(detail)


async def require_recent_password(session: AsyncSession, runtime: Runtime, *, actor: Actor) -> None:
    """Refuse unless this session proved the password within `step_up_minutes`."""
    auth_session = await _session_of(session, actor)
    proved = auth_session.password_verified_at
    if proved is not None and runtime.clock() - proved <= _window(runtime):
        return
    raise await _refusal(
        session,
        actor,
        f"This changes your whole account: confirm your password ({STEP_UP_ROUTE}, with a "
        "one-time code when two-factor authentication is on); it holds for "
        f"{runtime.settings.auth.step_up_minutes} minutes.",
    )


async def reaches_beyond_organization(session: AsyncSession, *, actor: Actor) -> bool:
    """Whether this session may act beyond its organization: it proved the password (at its
    login or since), rather than only what an organization's identity provider says."""
    if actor.kind != "user":
        return False
    return "pwd" in (await _session_of(session, actor)).methods


async def require_reach_beyond(session: AsyncSession, runtime: Runtime, *, actor: Actor) -> None:
    """Refuse switching to, creating or joining another organization unless the session began
    with the password, or (a single sign-on session) proved it within `step_up_minutes`.

    A single sign-on session's step-up is asked again each time its proof has grown old, so
    that one step-up does not open every other organization for the whole session."""
    auth_session = await _session_of(session, actor)
    if "sso" in auth_session.methods:
        proved = auth_session.password_verified_at
        if proved is not None and runtime.clock() - proved <= _window(runtime):
            return
    elif "pwd" in auth_session.methods:
        return
    raise await _refusal(
        session,
        actor,
        "A single sign-on session acts for its organization only: confirm your password "
        f"({STEP_UP_ROUTE}) to switch to, create or join another organization; it holds for "
        f"{runtime.settings.auth.step_up_minutes} minutes.",
    )


async def require_password_session(session: AsyncSession, *, actor: Actor) -> None:
    """Refuse a single sign-on session that has not proved the password (step-up)."""
    if await reaches_beyond_organization(session, actor=actor):
        return
    raise await _refusal(
        session,
        actor,
        "A single sign-on session acts for its organization only: confirm your password "
        f"({STEP_UP_ROUTE}) to change your account or reach your other organizations.",
    )
