"""Accounts: signing up, proving an email address, choosing and resetting passwords, profiles.

Answers to anonymous callers never say whether an address has an account: sign-up and
reset requests are accepted alike, and what happens next arrives by email.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, lockout
from kai.identity.actor import Actor, Origin
from kai.identity.errors import (
    InvalidToken,
    SignupNotAllowed,
    SlugTaken,
    WeakPassword,
)
from kai.identity.lockout import email_digest
from kai.identity.models import Membership, Organization, User, UserToken
from kai.identity.repository import (
    LoginThrottleRepository,
    MembershipRepository,
    OrganizationRepository,
    SessionRepository,
    UserRepository,
    UserTokenRepository,
)
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.kit.email import Email
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a token purpose, not a password


@dataclass(frozen=True)
class SignupResult:
    # None when the address already had an account (the caller is not told).
    user_id: uuid.UUID | None
    organization_id: uuid.UUID | None


def check_password(runtime: Runtime, password: str, *, email: str, name: str = "") -> None:
    local_part = email.split("@", 1)[0]
    problems = runtime.passwords.weaknesses(
        password, user_inputs=[email, local_part, *name.split(), "kai"]
    )
    if problems:
        raise WeakPassword(" ".join(problems))


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (slug or "organization")[:50]


async def unique_slug(session: AsyncSession, wanted: str) -> str:
    organizations = OrganizationRepository(session)
    slug = wanted
    for _ in range(20):
        if not await organizations.slug_taken(slug):
            return slug
        slug = f"{wanted[:50]}-{secrets.token_hex(3)}"
    return f"org-{uuid.uuid4().hex[:12]}"


async def create_organization(
    session: AsyncSession, *, owner: User, name: str, slug: str | None, origin: Origin
) -> Organization:
    organizations = OrganizationRepository(session)
    if slug is not None:
        if await organizations.slug_taken(slug):
            raise SlugTaken(f"The short name {slug!r} is taken.")
    else:
        slug = await unique_slug(session, slugify(name))
    organization = await organizations.add(Organization(name=name, slug=slug))
    await act_for(session, organization_id=organization.id, user_id=owner.id)
    await MembershipRepository(session).add(
        Membership(organization_id=organization.id, user_id=owner.id, role="owner")
    )
    if owner.default_organization_id is None:
        await UserRepository(session).update(owner.id, default_organization_id=organization.id)
    await audit.record(
        session,
        action="organization.created",
        organization_id=organization.id,
        actor_type="user",
        actor_id=str(owner.id),
        target_type="organization",
        target_id=str(organization.id),
        origin=origin,
        details={"name": name, "slug": slug},
    )
    return organization


async def signup(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    name: str,
    organization_name: str | None,
    origin: Origin,
) -> SignupResult:
    if not runtime.settings.auth.allow_signup:
        raise SignupNotAllowed("Sign-up is closed on this platform: ask for an invitation.")
    check_password(runtime, password, email=email, name=name)
    users = UserRepository(session)
    existing = await users.by_email(email)
    if existing is not None:
        # Same answer as a new sign-up; the owner of the address hears about it by email.
        await runtime.email.send(
            Email(
                to=existing.email,
                subject="Someone tried to sign up with your address",
                text=(
                    "Someone (maybe you) tried to create a KAI account with this address, "
                    "which already has one.\n\nIf it was you, log in, or reset your password: "
                    f"{runtime.settings.auth.public_url}/reset-password\n"
                ),
            )
        )
        return SignupResult(user_id=None, organization_id=None)
    user = await users.add(
        User(email=email, password_hash=await runtime.passwords.hash_async(password), name=name)
    )
    organization_id = None
    if organization_name:
        organization = await create_organization(
            session, owner=user, name=organization_name, slug=None, origin=origin
        )
        organization_id = organization.id
    await act_for(session, organization_id=organization_id, user_id=user.id)
    await audit.record(
        session,
        action="user.signed_up",
        organization_id=organization_id,
        actor_type="user",
        actor_id=str(user.id),
        target_type="user",
        target_id=str(user.id),
        origin=origin,
    )
    await send_verification(session, runtime, user=user)
    return SignupResult(user_id=user.id, organization_id=organization_id)


async def _new_token(
    session: AsyncSession, runtime: Runtime, *, user: User, purpose: str, lifetime: timedelta
) -> str:
    token = random_token(32)
    tokens = UserTokenRepository(session)
    # Only the newest link of each kind works.
    await tokens.void_unused(user.id, purpose)
    await tokens.add(
        UserToken(
            user_id=user.id,
            purpose=purpose,
            token_digest=token_digest(token),
            email=user.email,
            expires_at=runtime.clock() + lifetime,
        )
    )
    return token


async def send_verification(session: AsyncSession, runtime: Runtime, *, user: User) -> None:
    token = await _new_token(
        session,
        runtime,
        user=user,
        purpose=VERIFY_EMAIL,
        lifetime=timedelta(hours=runtime.settings.auth.email_token_hours),
    )
    await runtime.email.send(
        Email(
            to=user.email,
            subject="Confirm your email address for KAI",
            text=(
                "Confirm your address to start using KAI:\n\n"
                f"{runtime.settings.auth.public_url}/verify-email?token={token}\n\n"
                f"The link works once, for {runtime.settings.auth.email_token_hours} hours.\n"
            ),
        )
    )


async def resend_verification(session: AsyncSession, runtime: Runtime, *, email: str) -> None:
    user = await UserRepository(session).by_email(email)
    if user is not None and user.email_verified_at is None:
        await send_verification(session, runtime, user=user)


async def _use_token(session: AsyncSession, runtime: Runtime, *, token: str, purpose: str) -> User:
    record = await UserTokenRepository(session).by_digest(token_digest(token), purpose)
    now = runtime.clock()
    if record is None or record.used_at is not None or record.expires_at <= now:
        raise InvalidToken()
    user = await UserRepository(session).get(record.user_id, for_update=True)
    # A link sent to an address the account no longer has proves nothing.
    if user is None or user.email.lower() != record.email.lower():
        raise InvalidToken()
    record.used_at = now
    await session.flush()
    return user


async def verify_email(
    session: AsyncSession, runtime: Runtime, *, token: str, origin: Origin
) -> User:
    user = await _use_token(session, runtime, token=token, purpose=VERIFY_EMAIL)
    if user.email_verified_at is None:
        await UserRepository(session).update(user.id, email_verified_at=runtime.clock())
    await act_for(session, organization_id=user.default_organization_id, user_id=user.id)
    await audit.record(
        session,
        action="user.email_verified",
        organization_id=user.default_organization_id,
        actor_type="user",
        actor_id=str(user.id),
        origin=origin,
    )
    return user


async def request_password_reset(session: AsyncSession, runtime: Runtime, *, email: str) -> None:
    user = await UserRepository(session).by_email(email)
    if user is None or user.disabled:
        return
    minutes = runtime.settings.auth.password_reset_minutes
    token = await _new_token(
        session, runtime, user=user, purpose=RESET_PASSWORD, lifetime=timedelta(minutes=minutes)
    )
    await runtime.email.send(
        Email(
            to=user.email,
            subject="Reset your KAI password",
            text=(
                "Choose a new password here:\n\n"
                f"{runtime.settings.auth.public_url}/reset-password?token={token}\n\n"
                f"The link works once, for {minutes} minutes. If you did not ask for it, "
                "ignore this message: your password stays as it is.\n"
            ),
        )
    )


async def reset_password(
    session: AsyncSession, runtime: Runtime, *, token: str, password: str, origin: Origin
) -> None:
    """Set a new password from an emailed link: unlocks the account, ends every session."""
    user = await _use_token(session, runtime, token=token, purpose=RESET_PASSWORD)
    check_password(runtime, password, email=user.email, name=user.name)
    now = runtime.clock()
    await UserRepository(session).update(
        user.id,
        password_hash=await runtime.passwords.hash_async(password),
        sessions_valid_after=now,
        # The link reached the mailbox: the address is proven.
        email_verified_at=user.email_verified_at or now,
    )
    await SessionRepository(session).revoke_all(user.id, "password reset")
    await LoginThrottleRepository(session).clear(email_digest(user.email))
    # Whoever holds the mailbox owns the account from now on: links to identity providers
    # made before (perhaps by a provider that pre-created the account) are dropped; a member's
    # next single sign-on links again.
    await UserRepository(session).remove_identities(user.id)
    await act_for(session, organization_id=user.default_organization_id, user_id=user.id)
    await audit.record(
        session,
        action="user.password_reset",
        organization_id=user.default_organization_id,
        actor_type="user",
        actor_id=str(user.id),
        origin=origin,
    )


async def change_password(
    session: AsyncSession,
    runtime: Runtime,
    *,
    actor: Actor,
    current_password: str,
    new_password: str,
) -> None:
    """Change one's own password; every other session ends. A wrong current password counts
    with the failed logins of the address."""
    assert actor.user_id is not None
    users = UserRepository(session)
    user = await users.get(actor.user_id, for_update=True)
    assert user is not None
    check_password(runtime, new_password, email=user.email, name=user.name)
    attempt = await lockout.check_password_again(
        runtime, actor=actor, user=user, password=current_password, purpose="password-change"
    )
    await lockout.succeeded(session, attempt)
    await users.update(user.id, password_hash=await runtime.passwords.hash_async(new_password))
    sessions = SessionRepository(session)
    for other in await sessions.active_of_user(user.id):
        if other != actor.session_id:
            await sessions.revoke(other, "password changed")
    await audit.record(
        session, action="user.password_changed", organization_id=actor.organization_id, actor=actor
    )


async def update_profile(session: AsyncSession, *, actor: Actor, changes: dict[str, Any]) -> User:
    assert actor.user_id is not None
    users = UserRepository(session)
    if changes:
        await users.update(actor.user_id, **changes)
    user = await users.get(actor.user_id)
    assert user is not None
    await session.refresh(user)
    return user


async def preferred_units(session: AsyncSession, *, user_id: uuid.UUID) -> str | None:
    """The unit system the person chose for their display (None: never chose)."""
    user = await UserRepository(session).get(user_id)
    return user.units if user is not None else None


async def unlock(session: AsyncSession, *, email: str) -> bool:
    """Clear the failed-login count and lock of an address (an administrator's action)."""
    return await LoginThrottleRepository(session).clear(email_digest(email))
