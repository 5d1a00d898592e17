"""Custom roles: an organization's own named sets of permissions, beside the built-in ones."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.errors import RoleNotFound
from kai.identity.models import Role
from kai.identity.permissions import BUILT_IN_ROLES, Permission, parse_permissions
from kai.identity.repository import RoleRepository
from kai.kit.errors import Conflict
from kai.kit.pagination import PageParams


class RoleKeyTaken(Conflict):
    type, title = "role-key-taken", "A role with this key exists"
    constraints = ("uq_roles_org_key",)


class RoleInUse(Conflict):
    type, title = "role-in-use", "Members or invitations still have this role"


async def list_roles(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[Role], str | None]:
    """A page of the organization's custom roles, by key."""
    return await RoleRepository(session).list_page(actor.tenant_id, params)


async def get_role(session: AsyncSession, *, actor: Actor, role_id: uuid.UUID) -> Role:
    role = await RoleRepository(session).get(actor.tenant_id, role_id)
    if role is None:
        raise RoleNotFound(f"No custom role {role_id} in this organization.")
    return role


async def create_role(
    session: AsyncSession,
    *,
    actor: Actor,
    key: str,
    name: str,
    description: str,
    permissions: set[Permission],
) -> Role:
    organization_id = actor.tenant_id
    actor.refuse_beyond_own(permissions, what="A role cannot hold")
    if key in BUILT_IN_ROLES:
        raise RoleKeyTaken(f"The key {key!r} is taken.")
    # Another custom role's key: the unique index says so (RoleKeyTaken), race-free.
    role = await RoleRepository(session).add(
        Role(
            organization_id=organization_id,
            key=key,
            name=name,
            description=description,
            permissions=sorted(permission.value for permission in permissions),
        )
    )
    await audit.record(
        session,
        action="role.created",
        organization_id=organization_id,
        actor=actor,
        target_type="role",
        target_id=str(role.id),
        details={"key": key, "permissions": role.permissions},
    )
    return role


async def update_role(
    session: AsyncSession, *, actor: Actor, role_id: uuid.UUID, changes: dict[str, Any]
) -> Role:
    role = await get_role(session, actor=actor, role_id=role_id)
    if "permissions" in changes:
        # Editing a role's permissions changes every member holding it: nobody may do that to
        # a role holding more than they do.
        actor.refuse_beyond_own(
            parse_permissions(role.permissions), what="You cannot change a role that holds"
        )
        permissions = set(changes["permissions"])
        actor.refuse_beyond_own(permissions, what="A role cannot hold")
        changes["permissions"] = sorted(permission.value for permission in permissions)
    for field, value in changes.items():
        setattr(role, field, value)
    await session.flush()
    await session.refresh(role)
    await audit.record(
        session,
        action="role.updated",
        organization_id=role.organization_id,
        actor=actor,
        target_type="role",
        target_id=str(role.id),
        details={"changed": sorted(changes), "permissions": role.permissions},
    )
    return role


async def delete_role(session: AsyncSession, *, actor: Actor, role_id: uuid.UUID) -> None:
    role = await get_role(session, actor=actor, role_id=role_id)
    in_use, pending, sso_default = await RoleRepository(session).usage(role)
    if sso_default:
        raise RoleInUse(f"Single sign-on gives newcomers the role {role.key!r}: change that first.")
    if in_use or pending:
        raise RoleInUse(f"{in_use} members and {pending} invitations have the role {role.key!r}.")
    await RoleRepository(session).delete(role)
    await audit.record(
        session,
        action="role.deleted",
        organization_id=role.organization_id,
        actor=actor,
        target_type="role",
        target_id=str(role_id),
        details={"key": role.key},
    )
