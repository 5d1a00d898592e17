"""HTTP routes of roles: the built-in ones, and the organization's own."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from kai.deps import DbSession
from kai.identity import roles
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.models import Role
from kai.identity.permissions import (
    BUILT_IN_ROLE_DESCRIPTIONS,
    BUILT_IN_ROLES,
    Permission,
    parse_permissions,
)
from kai.identity.schemas import RoleCreate, RoleRead, RoleUpdate
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params, paginate_chained
from kai.kit.routing import IndexedRouter

router = IndexedRouter(prefix="/roles", tags=["roles"], responses=AUTH_RESPONSES)

MembersRead = Annotated[Actor, Depends(require(Permission.MEMBERS_READ))]
RolesManage = Annotated[Actor, Depends(require(Permission.ROLES_MANAGE))]


def _custom(role: Role) -> RoleRead:
    return RoleRead(
        id=role.id,
        key=role.key,
        name=role.name,
        description=role.description,
        permissions=sorted(parse_permissions(role.permissions)),
        built_in=False,
    )


_BUILT_IN = tuple(
    RoleRead(
        id=None,
        key=key,
        name=key.capitalize(),
        description=BUILT_IN_ROLE_DESCRIPTIONS[key],
        permissions=sorted(permissions),
        built_in=True,
    )
    for key, permissions in BUILT_IN_ROLES.items()
)


@router.get(
    "",
    summary="Built-in and custom roles, with their permissions",
    description="The built-in roles first, from the most powerful; then the custom ones by key.",
)
async def list_roles(
    actor: MembersRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[RoleRead]:
    async def custom(params: PageParams) -> tuple[list[RoleRead], str | None]:
        rows, cursor = await roles.list_roles(session, actor=actor, params=params)
        return [_custom(role) for role in rows], cursor

    items, cursor = await paginate_chained(
        _BUILT_IN, key=lambda role: role.key, then=custom, params=page
    )
    return Page[RoleRead](items=items, next_cursor=cursor)


@router.post(
    "",
    summary="Create a custom role",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def create_role(body: RoleCreate, actor: RolesManage, session: DbSession) -> RoleRead:
    role = await roles.create_role(
        session,
        actor=actor,
        key=body.key,
        name=body.name,
        description=body.description,
        permissions=set(body.permissions),
    )
    return _custom(role)


@router.get("/{role_id}", summary="One custom role", responses=problem_responses(404))
async def get_role(role_id: uuid.UUID, actor: MembersRead, session: DbSession) -> RoleRead:
    return _custom(await roles.get_role(session, actor=actor, role_id=role_id))


@router.patch("/{role_id}", summary="Change a custom role", responses=problem_responses(404))
async def update_role(
    role_id: uuid.UUID, body: RoleUpdate, actor: RolesManage, session: DbSession
) -> RoleRead:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.permissions is not None:
        changes["permissions"] = set(body.permissions)
    return _custom(await roles.update_role(session, actor=actor, role_id=role_id, changes=changes))


@router.delete(
    "/{role_id}",
    summary="Delete a custom role nobody has",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def delete_role(role_id: uuid.UUID, actor: RolesManage, session: DbSession) -> None:
    await roles.delete_role(session, actor=actor, role_id=role_id)
