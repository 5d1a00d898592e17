"""Who a provider's ID token stands for, and how someone new comes in through it.

An organization's provider can assert any subject and any address, with `email_verified`
or not: its word proves who someone is in that organization, never that they own a mailbox.
So a subject the provider has not linked yet is linked only by the address's owner: KAI
emails the address a link, and following it creates the account (or links the existing
one) and the membership. Until then nothing changes that the organization could see, and
the browser is told the same whether or not the address has an account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, emails, organizations
from kai.identity.actor import Origin
from kai.identity.errors import InvalidToken, RoleNotFound
from kai.identity.models import (
    Membership,
    Organization,
    SsoLinkRequest,
    SsoProvider,
    User,
    UserIdentity,
)
from kai.identity.permissions import Permission
from kai.identity.repository import (
    MembershipRepository,
    OrganizationRepository,
    SsoLinkRepository,
    UserRepository,
)
from kai.identity.sso.errors import (
    SsoAccountDisabled,
    SsoEmailDomainNotAllowed,
    SsoEmailNotVerified,
    SsoMisconfigured,
    SsoNotConfigured,
)
from kai.identity.sso.repository import SsoRepository
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.runtime import Runtime

# How long the emailed link finishes the sign-in.
LINK_LIFETIME = timedelta(hours=1)
# One email per address and organization in this time, however often its provider signs in.
LINK_RESEND_INTERVAL = timedelta(minutes=2)


@dataclass(frozen=True)
class Person:
    """What the ID token says about the person."""

    subject: str
    email: str | None
    email_verified: bool
    name: str


def person_from_claims(claims: dict[str, Any]) -> Person:
    email = claims.get("email")
    if isinstance(email, str):
        email = email.strip().lower()
    usable = isinstance(email, str) and len(email) <= 320 and email.count("@") == 1
    verified = claims.get("email_verified")
    name = claims.get("name")
    return Person(
        subject=claims["sub"],
        email=email if usable else None,
        # Some providers send the string "true".
        email_verified=usable and (verified is True or verified == "true"),
        name=name.strip()[:200] if isinstance(name, str) else "",
    )


def check_domain(person: Person, organization: Organization, provider: SsoProvider) -> None:
    restrictions = [provider.allowed_email_domains]
    if organization.signup_policy == "email_domain":
        restrictions.append(organization.allowed_email_domains)
    restrictions = [domains for domains in restrictions if domains]
    if not restrictions:
        return
    if person.email is None or not person.email_verified:
        raise SsoEmailNotVerified("This organization takes only addresses of certain domains.")
    domain = person.email.rsplit("@", 1)[1]
    if any(domain not in {allowed.lower() for allowed in domains} for domains in restrictions):
        raise SsoEmailDomainNotAllowed(f"Addresses at {domain} cannot log in here.")


# --- the role newcomers get -------------------------------------------------------------------


async def _held_by(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID | None
) -> frozenset[Permission]:
    """What `user_id` may do in the organization now (nothing once gone or disabled)."""
    if user_id is None:
        return frozenset()
    someone = await UserRepository(session).get(user_id)
    membership = await MembershipRepository(session).get(organization_id, user_id)
    if someone is None or someone.disabled or membership is None:
        return frozenset()
    try:
        return await organizations.role_permissions(session, organization_id, membership.role)
    except RoleNotFound:
        return frozenset()


async def check_newcomers_welcome(
    session: AsyncSession, organization: Organization, provider: SsoProvider
) -> None:
    """Refuse bringing anyone new in while the provider's role for them cannot be granted.

    The role was checked against whoever chose it, when they chose it; it is granted only
    while that person could still grant it, so demoting or removing them stops it.
    """
    try:
        granted = await organizations.role_permissions(
            session, organization.id, provider.default_role
        )
    except RoleNotFound as error:
        raise SsoMisconfigured(
            f"The default role {provider.default_role!r} no longer exists: ask an administrator."
        ) from error
    if not granted <= await _held_by(session, organization.id, provider.configured_by):
        raise SsoMisconfigured(
            f"The role {provider.default_role!r} for newcomers was chosen by someone who can no "
            "longer grant it: ask an administrator to save the single sign-on settings again."
        )


async def join(
    session: AsyncSession, organization: Organization, provider: SsoProvider, user: User
) -> bool:
    """Make the user a member with the provider's default role; False when one already."""
    await act_for(session, organization_id=organization.id, user_id=user.id)
    memberships = MembershipRepository(session)
    if await memberships.get(organization.id, user.id) is not None:
        return False
    await check_newcomers_welcome(session, organization, provider)
    await memberships.add(
        Membership(organization_id=organization.id, user_id=user.id, role=provider.default_role)
    )
    return True


# --- a first sign-in, proven by mailbox -------------------------------------------------------


@dataclass(frozen=True)
class LinkSent:
    """A first sign-in through the provider: the address was sent a link to finish it."""

    email: str


async def request_link(
    session: AsyncSession,
    runtime: Runtime,
    *,
    organization: Organization,
    provider: SsoProvider,
    person: Person,
) -> LinkSent:
    """Record the sign-in and queue the email that finishes it; nothing else changes.

    The same work whether or not the address has an account (the email's job looks that
    up), so neither the answer, its timing, nor anything the organization sees tells which.
    """
    if person.email is None or not person.email_verified:
        raise SsoEmailNotVerified("KAI needs an address the provider has verified.")
    # Refused now for everyone alike, rather than after the mailbox answered.
    await check_newcomers_welcome(session, organization, provider)
    now = runtime.clock()
    links = SsoLinkRepository(session)
    await links.delete_expired(organization.id, now)
    if await links.requested_since(organization.id, person.email, now - LINK_RESEND_INTERVAL):
        # The email sent moments ago finishes this sign-in too: a provider signing in again
        # and again must not flood someone's mailbox.
        return LinkSent(email=person.email)
    link = await links.add(
        SsoLinkRequest(
            organization_id=organization.id,
            issuer=provider.issuer,
            subject=person.subject,
            email=person.email,
            name=person.name,
            # The job that sends the link mints its token; until then none opens it.
            token_digest=token_digest(random_token(32)),
            expires_at=now + LINK_LIFETIME,
            created_at=now,
        )
    )
    # A platform job: it names the address, and the organization's job list must not show
    # what became of it.
    await act_for(session, organization_id=None)
    await emails.queue(session, emails.SSO_LINK, link_id=str(link.id))
    return LinkSent(email=person.email)


async def confirm_link(
    session: AsyncSession, runtime: Runtime, *, token: str, origin: Origin
) -> Organization:
    """Finish a first sign-in from the emailed link: create or link the account, join.

    Answers the organization, whose provider now signs this person in directly.
    """
    links = SsoLinkRepository(session)
    link = await links.by_token(token_digest(token))
    now = runtime.clock()
    if link is None or link.expires_at <= now:
        raise InvalidToken()
    await act_for(session, organization_id=link.organization_id)
    organization = await OrganizationRepository(session).get(link.organization_id)
    provider = await SsoRepository(session).provider(link.organization_id)
    if (
        organization is None
        or provider is None
        or not provider.enabled
        or provider.issuer != link.issuer
    ):
        # Turned off or pointed at another provider since: the link speaks for neither.
        raise SsoNotConfigured()
    check_domain(
        Person(subject=link.subject, email=link.email, email_verified=True, name=link.name),
        organization,
        provider,
    )
    user, created = await _account(session, runtime, link)
    if user.disabled:
        raise SsoAccountDisabled()
    repository = SsoRepository(session)
    identity = await repository.identity(organization.id, link.issuer, link.subject)
    if identity is not None and identity.user_id != user.id:
        raise InvalidToken("This sign-in was linked to another account meanwhile.")
    linked = identity is None
    if linked:
        await repository.add_identity(
            UserIdentity(
                user_id=user.id,
                organization_id=organization.id,
                issuer=link.issuer,
                subject=link.subject,
            )
        )
    joined = await join(session, organization, provider, user)
    if user.default_organization_id is None:
        await UserRepository(session).update(user.id, default_organization_id=organization.id)
    await links.delete(link)
    events: list[tuple[str, dict[str, Any]]] = []
    if linked:
        events.append(("sso.identity_linked", {"issuer": link.issuer}))
    if joined:
        details = {"issuer": link.issuer, "account_created": created, "role": provider.default_role}
        events.append(("sso.user_provisioned", details))
    for action, event_details in events:
        await audit.record(
            session,
            action=action,
            organization_id=organization.id,
            actor_type="user",
            actor_id=str(user.id),
            target_type="user",
            target_id=str(user.id),
            origin=origin,
            details=event_details,
        )
    return organization


async def _account(
    session: AsyncSession, runtime: Runtime, link: SsoLinkRequest
) -> tuple[User, bool]:
    """The account of the link's address, made now if there is none; True when made."""
    users = UserRepository(session)
    now = runtime.clock()
    user = await users.by_email(link.email, for_update=True)
    if user is None:
        user = await users.add(
            User(email=link.email, name=link.name, email_verified_at=now, password_hash=None)
        )
        return user, True
    if user.email_verified_at is None:
        # The mailbox is proven now; whoever set this unconfirmed account's password may not
        # be its owner, so that password goes (the owner sets one by a reset email).
        await users.update(
            user.id, email_verified_at=now, password_hash=None, sessions_valid_after=now
        )
        await session.refresh(user)
    return user, False
