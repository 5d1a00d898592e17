"""Accounts: signing up, proving an email address, choosing and resetting passwords, profiles.

Answers to anonymous callers never say whether an address has an account: sign-up and
reset requests are accepted alike, and what happens next arrives by email.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, emails, lockout
from kai.identity.actor import Actor, Origin
from kai.identity.errors import (
    InvalidToken,
    SignupNotAllowed,
    SlugTaken,
    WeakPassword,
)
from kai.identity.lockout import email_digest
from kai.identity.models import Membership, Organization, User
from kai.identity.repository import (
    LoginThrottleRepository,
    MembershipRepository,
    OrganizationRepository,
    SessionRepository,
    UserRepository,
    UserTokenRepository,
)
from kai.kit.crypto import token_digest
from kai.kit.db import act_for
from kai.kit.ratelimit import RateLimit
from kai.runtime import Runtime

log = structlog.get_logger(__name__)


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
    # Hashed whoever has the address: argon2 is most of a sign-up's time, and skipping it for a
    # taken address would tell which addresses have accounts.
    password_hash = await runtime.passwords.hash_async(password)
    users = UserRepository(session)
    existing = await users.by_email(email)
    # A platform job, the same one either way (the job decides what the address's owner
    # hears), queued while the request acts for no organization.
    await act_for(session, organization_id=None)
    await emails.queue(
        session, emails.SIGNUP_REPEATED if existing else emails.VERIFY_EMAIL, to=email
    )
    if existing is not None:
        # Same answer as a new sign-up; the owner of the address hears about it by email.
        # Audited like a new one, event for event, so that both wait for the audit chain's
        # lock alike: a new sign-up with an organization records its creation too, after
        # looking for a free short name.
        if organization_name:
            slug = await unique_slug(session, slugify(organization_name))
            await audit.record(
                session,
                action="organization.not_created",
                organization_id=None,
                outcome="failure",
                target_type="user",
                target_id=str(existing.id),
                origin=origin,
                details={"name": organization_name, "slug": slug, "reason": "address taken"},
            )
        await audit.record(
            session,
            action="user.signup_repeated",
            organization_id=None,
            outcome="failure",
            target_type="user",
            target_id=str(existing.id),
            origin=origin,
        )
        return SignupResult(user_id=None, organization_id=None)
    user = await users.add(User(email=email, password_hash=password_hash, name=name))
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
    return SignupResult(user_id=user.id, organization_id=organization_id)


async def _address_may_get_mail(runtime: Runtime, email: str, message: emails.Message) -> bool:
    """Spend a request from the address's bucket of `message` links; False once it is empty.

    Counted per address asked for, whether or not an account has it, so being refused says
    nothing about which addresses exist. And refused silently: the caller gets the same 202
    as anyone, because a 429 (with its Retry-After) would tell a stranger that someone else
    asked for that address's links just now. The person loses nothing: whoever emptied the
    bucket had their links sent to the person's inbox, where they stay valid (see `emails`).
    One bucket per kind of link, so that asking for links that are never sent (confirmations
    for a confirmed address) cannot empty the bucket of those that are.
    """
    limits = runtime.settings.rate_limits
    if not limits.enabled:
        return True
    policy = limits.email_address
    address = token_digest("email-links:" + email.strip().lower()).hex()
    decision = await runtime.rate_limiter.hit(
        f"email-address:{message}:{address}",
        RateLimit(policy.limit, policy.period_seconds, policy.burst),
    )
    if not decision.allowed:
        log.info("auth.email_links_dropped")
    return decision.allowed


async def resend_verification(session: AsyncSession, runtime: Runtime, *, email: str) -> None:
    """Queue a new confirmation link; the job sends it only if an unconfirmed account has the
    address (the request does the same work whoever has it), and past the address's limit
    nothing is queued (whoever has it)."""
    if not await _address_may_get_mail(runtime, email, emails.VERIFY_EMAIL):
        return
    await act_for(session, organization_id=None)  # a platform job
    await emails.queue(session, emails.VERIFY_EMAIL, to=email)


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
    user = await _use_token(session, runtime, token=token, purpose=emails.VERIFY_EMAIL)
    if user.email_verified_at is None:
        await UserRepository(session).update(user.id, email_verified_at=runtime.clock())
    await act_for(session, organization_id=None, user_id=user.id)
    # The account's own event, not any organization's (see `lockout.failed`).
    await audit.record(
        session,
        action="user.email_verified",
        organization_id=None,
        actor_type="user",
        actor_id=str(user.id),
        origin=origin,
    )
    return user


async def request_password_reset(session: AsyncSession, runtime: Runtime, *, email: str) -> None:
    """Queue a reset link; the job sends it only if an enabled account has the address (the
    request does the same work whoever has it), and past the address's limit nothing is
    queued (whoever has it)."""
    if not await _address_may_get_mail(runtime, email, emails.RESET_PASSWORD):
        return
    await act_for(session, organization_id=None)  # a platform job
    await emails.queue(session, emails.RESET_PASSWORD, to=email)


async def reset_password(
    session: AsyncSession, runtime: Runtime, *, token: str, password: str, origin: Origin
) -> None:
    """Set a new password from an emailed link: unlocks the account, ends every session."""
    user = await _use_token(session, runtime, token=token, purpose=emails.RESET_PASSWORD)
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
    await act_for(session, organization_id=None, user_id=user.id)
    # The account's own event: the organization the person last acted for has no business
    # knowing when, or from where, they reset their password.
    await audit.record(
        session,
        action="user.password_reset",
        organization_id=None,
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
    return await UserRepository(session).units(user_id)


async def unlock(session: AsyncSession, *, email: str) -> bool:
    """Clear the failed-login count and lock of an address (an administrator's action)."""
    return await LoginThrottleRepository(session).clear(email_digest(email))
