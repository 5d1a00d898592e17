"""Organizations and who belongs to them: settings, members, roles given, invitations.

Nobody can give what they do not have: a role is granted, or an invitation sent, only by a
member holding every permission of that role; only owners make or unmake owners. An
invitation is that grant made later, so it is checked again when accepted: its sender must
still be a member holding the role's permissions (an owner, for an owner's invitation), and
a member's pending invitations are withdrawn when they leave or are removed. Nobody can
take from someone who has more: a member holding a permission the actor lacks cannot be
demoted, given another role or removed by them. Changes that may take an owner away wait
for each other (the organization's row is locked first), so concurrent ones cannot leave the
organization without an owner.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, emails
from kai.identity.actor import Actor, Origin
from kai.identity.errors import (
    InvalidToken,
    InvitationForAnotherAccount,
    InvitationNotFound,
    InvitationVoid,
    LastOwner,
    MemberNotFound,
    MfaEnrolmentRequired,
    OrganizationNotFound,
    PermissionDenied,
    RoleNotFound,
)
from kai.identity.models import Invitation, Membership, Organization, User
from kai.identity.permissions import BUILT_IN_ROLES, Permission, parse_permissions
from kai.identity.repository import (
    ApiKeyRepository,
    InvitationRepository,
    MembershipRepository,
    OrganizationRepository,
    RoleRepository,
    UserRepository,
)
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.kit.driver import Driver
from kai.kit.errors import Conflict
from kai.kit.pagination import PageParams
from kai.runtime import Runtime

OWNER = "owner"


class AlreadyMember(Conflict):
    type, title = "already-member", "This person is already a member"
    constraints = ("uq_memberships_org_user",)


async def get_organization(session: AsyncSession, *, actor: Actor) -> Organization:
    organization = await OrganizationRepository(session).get(actor.tenant_id)
    if organization is None:
        raise OrganizationNotFound()
    return organization


_ORGANIZATION_COLUMNS = (
    "id",
    "name",
    "slug",
    "signup_policy",
    "allowed_email_domains",
    "mfa_required",
    "session_lifetime_hours",
    "default_role",
    "created_at",
)
_ORGANIZATION_SQL = (
    "SELECT id, name, slug, signup_policy, allowed_email_domains, mfa_required,"
    " session_lifetime_hours, default_role, created_at FROM organizations WHERE id = %s"
)


async def read_organization(driver: Driver, *, actor: Actor) -> dict[str, Any]:
    """The organization acted for, as its settings page and the app's every screen read it:
    on the driver (`kai.kit.driver`), in one statement."""
    organization_id = actor.tenant_id
    rows = await driver.scoped_rows(
        _ORGANIZATION_SQL,
        (organization_id,),
        organization_id=organization_id,
        user_id=actor.user_id,
    )
    if not rows:
        raise OrganizationNotFound()
    return dict(zip(_ORGANIZATION_COLUMNS, rows[0], strict=True))


async def update_organization(
    session: AsyncSession, *, actor: Actor, changes: dict[str, Any]
) -> Organization:
    organization = await get_organization(session, actor=actor)
    if "default_role" in changes:
        # Whoever joins without an invitation gets it: granting it is the actor's grant.
        if changes["default_role"] == OWNER:
            raise PermissionDenied("Newcomers cannot be made owners: choose another role.")
        await _check_may_grant(session, actor, changes["default_role"])
    for name, value in changes.items():
        setattr(organization, name, value)
    await session.flush()
    await session.refresh(organization)
    await audit.record(
        session,
        action="organization.settings_changed",
        organization_id=organization.id,
        actor=actor,
        target_type="organization",
        target_id=str(organization.id),
        details={"changed": sorted(changes)},
    )
    return organization


async def role_permissions(
    session: AsyncSession, organization_id: uuid.UUID, role: str
) -> frozenset[Permission]:
    """The permissions of a built-in or custom role; RoleNotFound if the org has no such role."""
    built_in = BUILT_IN_ROLES.get(role)
    if built_in is not None:
        return built_in
    custom = await RoleRepository(session).by_key(organization_id, role)
    if custom is None:
        raise RoleNotFound(f"There is no role {role!r} in this organization.")
    return parse_permissions(custom.permissions)


async def _check_may_grant(session: AsyncSession, actor: Actor, role: str) -> None:
    organization_id = actor.tenant_id
    granted = await role_permissions(session, organization_id, role)
    if role == OWNER and actor.role != OWNER:
        raise PermissionDenied("Only an owner can make someone an owner.")
    actor.refuse_beyond_own(granted, what="You cannot grant")


async def _check_may_change(session: AsyncSession, actor: Actor, membership: Membership) -> None:
    """Refuse touching a member who holds more than the actor: only owners touch owners, and
    nobody touches a member holding a permission they lack (oneself aside)."""
    if membership.user_id == actor.user_id:
        return
    if membership.role == OWNER and actor.role != OWNER:
        raise PermissionDenied("Only an owner can change or remove an owner.")
    held = await _held_permissions(session, membership)
    actor.refuse_beyond_own(held, what="You cannot change a member who holds")


async def _held_permissions(session: AsyncSession, membership: Membership) -> frozenset[Permission]:
    try:
        return await role_permissions(session, membership.organization_id, membership.role)
    except RoleNotFound:
        # A role that no longer exists grants nothing (the access check reads it the same way).
        return frozenset()


async def _lock_for_member_change(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID
) -> Membership:
    """The member's row, locked after the organization's: member changes of one organization
    run one at a time, so each counts the owners the one before it left, and sees the actor
    as the one before it left them."""
    organization_id = actor.tenant_id
    if not await OrganizationRepository(session).lock(organization_id):
        raise OrganizationNotFound()
    repository = MembershipRepository(session)
    if actor.kind == "user" and actor.user_id is not None:
        mine = await repository.get(organization_id, actor.user_id)
        # Removed or given another role by a change that committed while this one waited.
        if mine is None or mine.role != actor.role:
            raise PermissionDenied("Your role in this organization has just changed.")
    membership = await repository.get(organization_id, user_id, for_update=True)
    if membership is None:
        raise MemberNotFound(f"No member {user_id} in this organization.")
    return membership


async def list_members(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[tuple[Membership, User]], str | None]:
    repository = MembershipRepository(session)
    memberships, cursor = await repository.list_page(actor.tenant_id, params)
    users = await repository.users([membership.user_id for membership in memberships])
    return [(m, users[m.user_id]) for m in memberships if m.user_id in users], cursor


async def get_member(
    session: AsyncSession, *, actor: Actor, user_id: uuid.UUID
) -> tuple[Membership, User]:
    membership = await MembershipRepository(session).get(actor.tenant_id, user_id)
    user = await UserRepository(session).get(user_id) if membership else None
    if membership is None or user is None:
        raise MemberNotFound(f"No member {user_id} in this organization.")
    return membership, user


async def change_role(
    session: AsyncSession, *, actor: Actor, user_id: uuid.UUID, role: str
) -> tuple[Membership, User]:
    organization_id = actor.tenant_id
    repository = MembershipRepository(session)
    membership = await _lock_for_member_change(session, actor, user_id)
    await _check_may_change(session, actor, membership)
    await _check_may_grant(session, actor, role)
    if (
        membership.role == OWNER
        and role != OWNER
        and await repository.count_role(organization_id, OWNER) <= 1
    ):
        raise LastOwner("Make someone else an owner first.")
    previous = membership.role
    membership.role = role
    await session.flush()
    await audit.record(
        session,
        action="member.role_changed",
        organization_id=organization_id,
        actor=actor,
        target_type="user",
        target_id=str(user_id),
        details={"from": previous, "to": role},
    )
    return await get_member(session, actor=actor, user_id=user_id)


async def remove_member(session: AsyncSession, *, actor: Actor, user_id: uuid.UUID) -> None:
    """Remove a member (or leave, for oneself: being a member is enough); the last owner
    cannot go."""
    organization_id = actor.tenant_id
    leaving = actor.kind == "user" and actor.user_id == user_id
    if not leaving:
        if actor.needs_mfa_enrolment:
            raise MfaEnrolmentRequired()
        if not actor.can(Permission.MEMBERS_MANAGE):
            raise PermissionDenied("This needs the permission `members:manage`.")
    repository = MembershipRepository(session)
    membership = await _lock_for_member_change(session, actor, user_id)
    await _check_may_change(session, actor, membership)
    if membership.role == OWNER and await repository.count_role(organization_id, OWNER) <= 1:
        raise LastOwner("Transfer ownership before the last owner leaves.")
    await repository.delete(membership)
    # What they offered in the organization's name goes with them.
    withdrawn = await InvitationRepository(session).revoke_pending_from(organization_id, user_id)
    await audit.record(
        session,
        action="member.left" if leaving else "member.removed",
        organization_id=organization_id,
        actor=actor,
        target_type="user",
        target_id=str(user_id),
        details={"role": membership.role, "invitations_withdrawn": withdrawn},
    )


async def transfer_ownership(
    session: AsyncSession, *, actor: Actor, user_id: uuid.UUID
) -> tuple[Membership, User]:
    """Make another member an owner and step down to admin."""
    organization_id = actor.tenant_id
    if actor.role != OWNER or actor.user_id is None:
        raise PermissionDenied("Only an owner can transfer ownership.")
    repository = MembershipRepository(session)
    target = await _lock_for_member_change(session, actor, user_id)
    if user_id == actor.user_id:
        raise Conflict("You are the owner already.")
    mine = await repository.get(organization_id, actor.user_id, for_update=True)
    assert mine is not None  # checked under the lock
    target.role = OWNER
    mine.role = "admin"
    await session.flush()
    await audit.record(
        session,
        action="organization.ownership_transferred",
        organization_id=organization_id,
        actor=actor,
        target_type="user",
        target_id=str(user_id),
    )
    return await get_member(session, actor=actor, user_id=user_id)


# --- invitations ----------------------------------------------------------------------------


async def invite(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, email: str, role: str
) -> Invitation:
    organization_id = actor.tenant_id
    await _check_may_grant(session, actor, role)
    inviter = await _accountable_person(session, actor)
    existing = await UserRepository(session).by_email(email)
    if existing is not None and await MembershipRepository(session).get(
        organization_id, existing.id
    ):
        raise AlreadyMember(f"{email} is already a member.")
    invitation = await InvitationRepository(session).add(
        Invitation(
            organization_id=organization_id,
            email=email,
            role=role,
            # The job that sends the invitation mints its link: until then no token opens it,
            # and none is ever kept in clear.
            token_digest=token_digest(random_token(32)),
            invited_by=inviter,
            expires_at=runtime.clock() + timedelta(days=runtime.settings.auth.invitation_days),
        )
    )
    await audit.record(
        session,
        action="invitation.created",
        organization_id=organization_id,
        actor=actor,
        target_type="invitation",
        target_id=str(invitation.id),
        details={"email": email, "role": role},
    )
    await emails.queue(
        session,
        emails.INVITATION,
        organization_id=organization_id,
        invitation_id=str(invitation.id),
    )
    return invitation


async def _accountable_person(session: AsyncSession, actor: Actor) -> uuid.UUID | None:
    """Whose grant an invitation is: the person, or the person who made the API key (a key
    holds no more than its maker does now, so neither may its invitations)."""
    if actor.kind == "user":
        return actor.user_id
    if actor.kind == "api_key" and actor.api_key_id is not None:
        key = await ApiKeyRepository(session).get(actor.tenant_id, actor.api_key_id)
        return key.created_by if key is not None else None
    return None


async def _check_inviter_still_grants(session: AsyncSession, invitation: Invitation) -> None:
    """Refuse an invitation whose sender could not send it now: no longer a member, or no
    longer holding every permission of its role (an owner's, for an owner's invitation)."""
    organization_id = invitation.organization_id
    inviter = (
        await MembershipRepository(session).get(organization_id, invitation.invited_by)
        if invitation.invited_by is not None
        else None
    )
    if inviter is None:
        raise InvitationVoid(
            "Whoever invited you is no longer a member of the organization: ask it for a new "
            "invitation."
        )
    try:
        granted = await role_permissions(session, organization_id, invitation.role)
    except RoleNotFound:
        raise InvitationVoid(
            f"The role {invitation.role!r} no longer exists in the organization: ask it for a "
            "new invitation."
        ) from None
    held = await _held_permissions(session, inviter)
    if (invitation.role == OWNER and inviter.role != OWNER) or not granted <= held:
        raise InvitationVoid(
            f"Whoever invited you can no longer make anyone {invitation.role}: ask the "
            "organization for a new invitation."
        )


async def list_invitations(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[Invitation], str | None]:
    return await InvitationRepository(session).pending(actor.tenant_id, params)


async def revoke_invitation(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, invitation_id: uuid.UUID
) -> None:
    organization_id = actor.tenant_id
    invitation = await InvitationRepository(session).get(organization_id, invitation_id)
    if invitation is None or invitation.accepted_at is not None:
        raise InvitationNotFound(f"No pending invitation {invitation_id}.")
    if invitation.revoked_at is None:
        invitation.revoked_at = runtime.clock()
        await session.flush()
        await audit.record(
            session,
            action="invitation.revoked",
            organization_id=organization_id,
            actor=actor,
            target_type="invitation",
            target_id=str(invitation.id),
        )


def _masked(email: str) -> str:
    """An address as a hint to whoever holds its link: `j•••@example.com`."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


async def accept_invitation(
    session: AsyncSession, runtime: Runtime, *, user: User, token: str, origin: Origin
) -> Membership:
    """Join the inviting organization; the invitation must be for this user's address, and
    its sender must still be able to grant its role (InvitationVoid, 410, if not)."""
    invitations = InvitationRepository(session)
    digest = token_digest(token)
    organization_id = await invitations.organization_of_token(digest)
    if organization_id is None:
        raise InvalidToken()
    await act_for(session, organization_id=organization_id, user_id=user.id)
    invitation = await invitations.by_token(organization_id, digest)
    now = runtime.clock()
    if (
        invitation is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= now
    ):
        raise InvalidToken()
    if invitation.email.lower() != user.email.lower():
        raise InvitationForAnotherAccount(
            f"This invitation was sent to {_masked(invitation.email)}: sign in as that "
            "account to accept it (or ask for an invitation to this one)."
        )
    await _check_inviter_still_grants(session, invitation)
    invitation.accepted_at = now
    invitation.accepted_by = user.id
    memberships = MembershipRepository(session)
    membership = await memberships.get(organization_id, user.id)
    if membership is None:
        membership = await memberships.add(
            Membership(organization_id=organization_id, user_id=user.id, role=invitation.role)
        )
    if user.email_verified_at is None:
        # Following the emailed link proves the address.
        await UserRepository(session).update(user.id, email_verified_at=now)
    if user.default_organization_id is None:
        await UserRepository(session).update(user.id, default_organization_id=organization_id)
    await session.flush()
    await audit.record(
        session,
        action="invitation.accepted",
        organization_id=organization_id,
        actor_type="user",
        actor_id=str(user.id),
        target_type="invitation",
        target_id=str(invitation.id),
        origin=origin,
        details={"role": invitation.role},
    )
    return membership
