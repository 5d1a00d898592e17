"""HTTP routes of the organization acted for: settings, members, invitations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from kai.deps import DbSession, RuntimeDep
from kai.identity import organizations
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, authenticated, require
from kai.identity.models import Membership, User
from kai.identity.permissions import Permission
from kai.identity.schemas import (
    InvitationCreate,
    InvitationRead,
    MemberRead,
    MemberUpdate,
    OrganizationRead,
    OrganizationUpdate,
    OwnershipTransfer,
)
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter

router = IndexedRouter(tags=["organization"], responses=AUTH_RESPONSES)

MembersRead = Annotated[Actor, Depends(require(Permission.MEMBERS_READ))]
MembersManage = Annotated[Actor, Depends(require(Permission.MEMBERS_MANAGE))]
OrganizationManage = Annotated[Actor, Depends(require(Permission.ORGANIZATION_MANAGE))]
Caller = Annotated[Actor, Depends(authenticated())]
Paging = Annotated[PageParams, Depends(page_params)]


def _member(membership: Membership, user: User) -> MemberRead:
    return MemberRead(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        joined_at=membership.created_at,
    )


@router.get("/organization", summary="The organization you act for")
async def get_organization(actor: MembersRead, runtime: RuntimeDep) -> OrganizationRead:
    organization = await organizations.read_organization(runtime.driver, actor=actor)
    return OrganizationRead.model_validate(organization)


@router.patch(
    "/organization",
    summary="Change the organization's name and settings",
    responses=problem_responses(404),
)
async def update_organization(
    body: OrganizationUpdate, actor: OrganizationManage, session: DbSession
) -> OrganizationRead:
    # null leaves a setting as it is (it was a 500, from a NOT NULL column), except the
    # session lifetime, where it means the platform's default.
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "session_lifetime_hours"
    }
    organization = await organizations.update_organization(session, actor=actor, changes=changes)
    return OrganizationRead.model_validate(organization)


@router.post(
    "/organization/transfer-ownership",
    summary="Make another member the owner; you become an admin",
    responses=problem_responses(404, 409),
)
async def transfer_ownership(
    body: OwnershipTransfer, actor: OrganizationManage, session: DbSession
) -> MemberRead:
    membership, user = await organizations.transfer_ownership(
        session, actor=actor, user_id=body.user_id
    )
    return _member(membership, user)


@router.get("/members", summary="Members of the organization")
async def list_members(actor: MembersRead, session: DbSession, page: Paging) -> Page[MemberRead]:
    rows, cursor = await organizations.list_members(session, actor=actor, params=page)
    return Page[MemberRead](items=[_member(m, u) for m, u in rows], next_cursor=cursor)


@router.get("/members/{user_id}", summary="One member", responses=problem_responses(404))
async def get_member(user_id: uuid.UUID, actor: MembersRead, session: DbSession) -> MemberRead:
    membership, user = await organizations.get_member(session, actor=actor, user_id=user_id)
    return _member(membership, user)


@router.patch(
    "/members/{user_id}",
    summary="Change a member's role",
    responses=problem_responses(404, 409),
)
async def change_role(
    user_id: uuid.UUID, body: MemberUpdate, actor: MembersManage, session: DbSession
) -> MemberRead:
    membership, user = await organizations.change_role(
        session, actor=actor, user_id=user_id, role=body.role
    )
    return _member(membership, user)


@router.delete(
    "/members/{user_id}",
    summary="Remove a member, or leave (your own id)",
    description=(
        "Removing others needs `members:manage`; any member may leave, whatever their role."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def remove_member(user_id: uuid.UUID, actor: Caller, session: DbSession) -> None:
    await organizations.remove_member(session, actor=actor, user_id=user_id)


@router.get("/invitations", summary="Pending invitations")
async def list_invitations(
    actor: MembersRead, session: DbSession, page: Paging
) -> Page[InvitationRead]:
    invitations, cursor = await organizations.list_invitations(session, actor=actor, params=page)
    return Page[InvitationRead](
        items=[InvitationRead.model_validate(i) for i in invitations], next_cursor=cursor
    )


@router.post(
    "/invitations",
    summary="Invite someone by email",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409, 503),
)
async def invite(
    body: InvitationCreate, actor: MembersManage, session: DbSession, runtime: RuntimeDep
) -> InvitationRead:
    invitation = await organizations.invite(
        session, runtime, actor=actor, email=body.email, role=body.role
    )
    return InvitationRead.model_validate(invitation)


@router.delete(
    "/invitations/{invitation_id}",
    summary="Withdraw an invitation",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def revoke_invitation(
    invitation_id: uuid.UUID, actor: MembersManage, session: DbSession, runtime: RuntimeDep
) -> None:
    await organizations.revoke_invitation(
        session, runtime, actor=actor, invitation_id=invitation_id
    )
