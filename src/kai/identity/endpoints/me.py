"""HTTP routes of the caller: who they are, their profile, their organizations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from kai.deps import DbSession, RuntimeDep
from kai.identity import accounts, organizations
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, authenticated, origin_of, user_only
from kai.identity.repository import MembershipRepository, OrganizationRepository, UserRepository
from kai.identity.schemas import (
    MembershipRead,
    MeRead,
    OrganizationCreate,
    OrganizationRead,
    PasswordChange,
    ProfileUpdate,
    TokenRequest,
    UserRead,
)
from kai.kit.db import act_for
from kai.kit.errors import problem_responses

router = APIRouter(tags=["me"], responses=AUTH_RESPONSES)

Caller = Annotated[Actor, Depends(authenticated())]


@router.get("/me", summary="Who is calling: the person or key, its organization, its permissions")
async def me(actor: Caller, session: DbSession) -> MeRead:
    user = await UserRepository(session).get(actor.user_id) if actor.user_id else None
    organization = (
        await OrganizationRepository(session).get(actor.organization_id)
        if actor.organization_id
        else None
    )
    return MeRead(
        kind=actor.kind,
        user=UserRead.of(user) if user else None,
        api_key_id=actor.api_key_id,
        organization=OrganizationRead.model_validate(organization) if organization else None,
        role=actor.role,
        permissions=sorted(permission.value for permission in actor.permissions),
        authentication_methods=list(actor.methods),
        mfa_enrolment_required=actor.needs_mfa_enrolment,
    )


@router.patch("/me", summary="Change your name, locale, units or notification settings")
async def update_profile(body: ProfileUpdate, actor: Caller, session: DbSession) -> UserRead:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    user = await accounts.update_profile(session, actor=user_only(actor), changes=changes)
    return UserRead.of(user)


@router.post(
    "/me/password",
    summary="Change your password; your other sessions end",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def change_password(
    body: PasswordChange, actor: Caller, session: DbSession, runtime: RuntimeDep
) -> None:
    await accounts.change_password(
        session,
        runtime,
        actor=user_only(actor),
        current_password=body.current_password,
        new_password=body.new_password,
    )


@router.get("/me/organizations", summary="The organizations you belong to")
async def my_organizations(actor: Caller, session: DbSession) -> list[MembershipRead]:
    person = user_only(actor)
    assert person.user_id is not None
    await act_for(session, organization_id=person.organization_id, user_id=person.user_id)
    rows = await MembershipRepository(session).of_user(person.user_id)
    return [
        MembershipRead(
            organization=OrganizationRead.model_validate(organization),
            role=membership.role,
            joined_at=membership.created_at,
        )
        for membership, organization in rows
    ]


@router.post(
    "/organizations",
    summary="Create an organization, with you as its owner",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def create_organization(
    body: OrganizationCreate, request: Request, actor: Caller, session: DbSession
) -> OrganizationRead:
    person = user_only(actor)
    assert person.user_id is not None
    user = await UserRepository(session).get(person.user_id)
    assert user is not None
    organization = await accounts.create_organization(
        session, owner=user, name=body.name, slug=body.slug, origin=origin_of(request)
    )
    return OrganizationRead.model_validate(organization)


@router.post(
    "/invitations/accept",
    summary="Join an organization with an invitation sent to your address",
    responses=problem_responses(400),
)
async def accept_invitation(
    body: TokenRequest, request: Request, actor: Caller, session: DbSession, runtime: RuntimeDep
) -> MembershipRead:
    person = user_only(actor)
    assert person.user_id is not None
    user = await UserRepository(session).get(person.user_id)
    assert user is not None
    membership = await organizations.accept_invitation(
        session, runtime, user=user, token=body.token, origin=origin_of(request)
    )
    organization = await OrganizationRepository(session).get(membership.organization_id)
    return MembershipRead(
        organization=OrganizationRead.model_validate(organization),
        role=membership.role,
        joined_at=membership.created_at,
    )
