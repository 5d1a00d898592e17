"""HTTP routes of the caller: who they are, their profile, their sessions, their
organizations."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, status

from kai.deps import DbSession, RuntimeDep
from kai.identity import accounts, devices, organizations, sessions, step_up
from kai.identity.actor import Actor
from kai.identity.dependencies import (
    AUTH_RESPONSES,
    authenticated,
    origin_of,
    other_organizations,
    password_session,
    user_only,
)
from kai.identity.endpoints import browser
from kai.identity.models import AuthSession
from kai.identity.repository import MembershipRepository, OrganizationRepository, UserRepository
from kai.identity.schemas import (
    InvitationAccepted,
    MembershipRead,
    MeRead,
    NotificationSettings,
    OrganizationCreate,
    OrganizationRead,
    PasswordChange,
    ProfileUpdate,
    SessionRead,
    TokenRequest,
    TokenResponse,
    UserRead,
)
from kai.kit.db import act_for
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter

router = IndexedRouter(tags=["me"], responses=AUTH_RESPONSES)

Caller = Annotated[Actor, Depends(authenticated())]
# Beyond the organization a single sign-on session acts for: the password proved in session.
AccountHolder = Annotated[Actor, Depends(password_session())]
# Into another organization: a single sign-on session's password proof must be recent.
BeyondOrganization = Annotated[Actor, Depends(other_organizations())]


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


@router.patch(
    "/me",
    summary="Change your name, locale, units or notification settings",
    description=(
        "Your name shows in all your organizations, and security alerts are about your whole "
        "account: a single sign-on session steps up (`POST /api/v1/auth/step-up`) to change "
        "either. Notification settings not sent stay as they are."
    ),
)
async def update_profile(body: ProfileUpdate, actor: Caller, session: DbSession) -> UserRead:
    person = user_only(actor)
    assert person.user_id is not None
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "notification_settings" in changes:
        user = await UserRepository(session).get(person.user_id)
        assert user is not None
        current = NotificationSettings(**(user.notification_settings or {}))
        wanted = current.model_copy(update=changes["notification_settings"])
        if wanted.security_alerts != current.security_alerts:
            await step_up.require_password_session(session, actor=person)
        changes["notification_settings"] = wanted.model_dump()
    if "name" in changes:
        await step_up.require_password_session(session, actor=person)
    user = await accounts.update_profile(session, actor=person, changes=changes)
    return UserRead.of(user)


@router.post(
    "/me/password",
    summary="Change your password; your other sessions end",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def change_password(
    body: PasswordChange, actor: AccountHolder, session: DbSession, runtime: RuntimeDep
) -> None:
    await accounts.change_password(
        session,
        runtime,
        actor=user_only(actor),
        current_password=body.current_password,
        new_password=body.new_password,
    )


@router.get(
    "/me/sessions",
    summary="Where you are signed in: your sessions that still work",
    description=(
        "In every organization, the most recently used first; `current` is the session of the "
        "calling token. Ended, expired and logged-out sessions are not listed."
    ),
)
async def my_sessions(
    actor: AccountHolder,
    session: DbSession,
    runtime: RuntimeDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[SessionRead]:
    rows, cursor = await sessions.live_sessions(session, runtime, actor=actor, params=page)
    # The rules are regular expressions in Python, and loading them takes a moment.
    seen = await asyncio.to_thread(devices.describe_all, [row.user_agent for row in rows])
    return Page[SessionRead](
        items=[
            _session_read(row, device, current=row.id == actor.session_id)
            for row, device in zip(rows, seen, strict=True)
        ],
        next_cursor=cursor,
    )


def _session_read(row: AuthSession, device: devices.Device, *, current: bool) -> SessionRead:
    return SessionRead(
        id=row.id,
        current=current,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        methods=list(row.methods),
        device=device.description,
        browser=device.browser,
        os=device.os,
        user_agent=row.user_agent,
        # The column is `inet`: the driver answers an address object.
        client_address=str(row.client_address) if row.client_address is not None else None,
    )


@router.delete(
    "/me/sessions/{session_id}",
    summary="End one of your sessions: sign that device out",
    description=(
        "Its access and refresh tokens stop working at once. Ending another session needs a "
        "password proof from the last few minutes in this session: a password login, or "
        "`POST /api/v1/auth/step-up` (else 403 `step-up-required`). Ending this one is a "
        "logout. 404 `session-not-found` for an id that is none of your active sessions."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def end_session(
    session_id: uuid.UUID,
    actor: Caller,
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
) -> None:
    person = user_only(actor)
    this_one = session_id == person.session_id
    # As logging out everywhere: a stolen access token must not end the owner's other
    # sessions (and, from the answers, learn which ids are theirs).
    if not this_one:
        await step_up.require_recent_password(session, runtime, actor=person)
    await sessions.end_session(session, runtime, actor=person, session_id=session_id)
    if this_one:
        browser.clear_refresh_cookie(response, request)


@router.get(
    "/me/organizations",
    summary="The organizations you belong to, by name",
    description=(
        "A single sign-on session lists only its own organization until it steps up: the "
        "organization's identity provider is not told where else the person belongs."
    ),
)
async def my_organizations(
    actor: Caller, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[MembershipRead]:
    person = user_only(actor)
    assert person.user_id is not None
    await act_for(session, organization_id=person.organization_id, user_id=person.user_id)
    beyond = await step_up.reaches_beyond_organization(session, actor=person)
    rows, cursor = await MembershipRepository(session).organizations_page(
        person.user_id, page, only=None if beyond else person.organization_id
    )
    return Page[MembershipRead](
        items=[
            MembershipRead(
                organization=OrganizationRead.model_validate(organization),
                role=membership.role,
                joined_at=membership.created_at,
            )
            for membership, organization in rows
        ],
        next_cursor=cursor,
    )


@router.post(
    "/organizations",
    summary="Create an organization, with you as its owner",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def create_organization(
    body: OrganizationCreate, request: Request, actor: BeyondOrganization, session: DbSession
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
    description=(
        "410 `invitation-void` when whoever sent it can no longer grant its role (they left, "
        "were removed or now hold less); 403 `invitation-for-another-account` when it was "
        "sent to another address than yours. The session then acts for the organization "
        "joined: `tokens` holds its new access token."
    ),
    responses=problem_responses(400, 403, 410),
)
async def accept_invitation(
    body: TokenRequest,
    request: Request,
    actor: BeyondOrganization,
    session: DbSession,
    runtime: RuntimeDep,
) -> InvitationAccepted:
    person = user_only(actor)
    assert person.user_id is not None
    user = await UserRepository(session).get(person.user_id)
    assert user is not None
    membership = await organizations.accept_invitation(
        session, runtime, user=user, token=body.token, origin=origin_of(request)
    )
    # Whoever accepts means to work there next: the session follows.
    pair = await sessions.switch_organization(
        session, runtime, actor=person, organization_id=membership.organization_id
    )
    organization = await OrganizationRepository(session).get(membership.organization_id)
    return InvitationAccepted(
        organization=OrganizationRead.model_validate(organization),
        role=membership.role,
        joined_at=membership.created_at,
        tokens=TokenResponse(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
            organization_id=pair.organization_id,
        ),
    )
