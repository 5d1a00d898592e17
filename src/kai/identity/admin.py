"""What an operator does from the command line: make people, reset them, unlock them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import accounts, audit, organizations
from kai.identity.actor import Actor, Origin
from kai.identity.errors import EmailTaken, MemberNotFound, OrganizationNotFound
from kai.identity.models import Membership, User
from kai.identity.permissions import Permission
from kai.identity.repository import (
    MembershipRepository,
    OrganizationRepository,
    SessionRepository,
    UserRepository,
)
from kai.kit.db import act_for
from kai.runtime import Runtime

CLI = Origin(user_agent="kai admin")


async def operator_actor(
    session: AsyncSession, organization_slug: str, permissions: frozenset[Permission]
) -> Actor:
    """The command line's actor in an organization found by its slug, holding `permissions`."""
    organization = await OrganizationRepository(session).by_slug(organization_slug)
    if organization is None:
        raise OrganizationNotFound(f"No organization {organization_slug!r}.")
    return Actor(kind="operator", organization_id=organization.id, permissions=permissions)


@dataclass(frozen=True)
class Created:
    user_id: uuid.UUID
    organization_id: uuid.UUID


async def create_user(
    runtime: Runtime, *, email: str, organization_slug: str, role: str, name: str, password: str
) -> Created:
    """A verified person, member of the organization `organization_slug` (made if missing)."""
    address = email.strip().lower()
    accounts.check_password(runtime, password, email=address, name=name)
    async with runtime.session_factory.begin() as session:
        users = UserRepository(session)
        if await users.by_email(address) is not None:
            raise EmailTaken(f"{address} has an account already.")
        user = await users.add(
            User(
                email=address,
                name=name,
                password_hash=await runtime.passwords.hash_async(password),
                email_verified_at=datetime.now(UTC),
            )
        )
        organization = await OrganizationRepository(session).by_slug(organization_slug)
        if organization is None:
            organization = await accounts.create_organization(
                session, owner=user, name=organization_slug, slug=organization_slug, origin=CLI
            )
            if role != "owner":
                raise ValueError("a new organization's first member must be its owner")
        else:
            await act_for(session, organization_id=organization.id, user_id=user.id)
            await organizations.role_permissions(session, organization.id, role)
            await MembershipRepository(session).add(
                Membership(organization_id=organization.id, user_id=user.id, role=role)
            )
            await users.update(user.id, default_organization_id=organization.id)
            await audit.record(
                session,
                action="member.added_by_operator",
                organization_id=organization.id,
                actor_type="system",
                target_type="user",
                target_id=str(user.id),
                origin=CLI,
                details={"role": role},
            )
        return Created(user_id=user.id, organization_id=organization.id)


async def reset_password(runtime: Runtime, *, email: str, password: str) -> None:
    async with runtime.session_factory.begin() as session:
        users = UserRepository(session)
        user = await users.by_email(email)
        if user is None:
            raise MemberNotFound(f"No account has the address {email}.")
        accounts.check_password(runtime, password, email=user.email, name=user.name)
        now = runtime.clock()
        await users.update(
            user.id,
            password_hash=await runtime.passwords.hash_async(password),
            sessions_valid_after=now,
        )
        await SessionRepository(session).revoke_all(user.id, "password reset by operator")
        await accounts.unlock(session, email=user.email)
        await act_for(session, organization_id=user.default_organization_id, user_id=user.id)
        await audit.record(
            session,
            action="user.password_reset_by_operator",
            organization_id=user.default_organization_id,
            actor_type="system",
            target_type="user",
            target_id=str(user.id),
            origin=CLI,
        )


async def unlock(runtime: Runtime, *, email: str) -> bool:
    async with runtime.session_factory.begin() as session:
        unlocked = await accounts.unlock(session, email=email)
        user = await UserRepository(session).by_email(email)
        if unlocked and user is not None:
            await act_for(session, organization_id=user.default_organization_id, user_id=user.id)
            await audit.record(
                session,
                action="auth.account.unlocked",
                organization_id=user.default_organization_id,
                actor_type="system",
                target_type="user",
                target_id=str(user.id),
                origin=CLI,
            )
        return unlocked
