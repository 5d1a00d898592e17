"""All SQL of identity. Tenant queries name the organization even though row-level security
would hide other organizations' rows anyway: the policies are the second wall, not the first."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity.models import (
    ApiKey,
    AuthSession,
    Invitation,
    LoginThrottle,
    Membership,
    Organization,
    RecoveryCode,
    RefreshToken,
    Role,
    SsoLinkRequest,
    SsoProvider,
    Team,
    TeamMember,
    TotpCredential,
    User,
    UserIdentity,
    UserToken,
)
from kai.kit.pagination import PageParams, paginate


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def units(self, user_id: uuid.UUID) -> str | None:
        """The person's unit system alone (read on every search that shows measures)."""
        found = await self.session.scalar(select(User.units).where(User.id == user_id))
        return str(found) if found is not None else None

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        statement = select(User).where(User.id == user_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def by_email(self, email: str, *, for_update: bool = False) -> User | None:
        statement = select(User).where(func.lower(User.email) == email.lower())
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def remove_identities(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(UserIdentity).where(UserIdentity.user_id == user_id))

    async def update(self, user_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(updated_at=func.now(), **values)
            .execution_options(synchronize_session="fetch")
        )


class OrganizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, organization: Organization) -> Organization:
        self.session.add(organization)
        await self.session.flush()
        return organization

    async def get(self, organization_id: uuid.UUID) -> Organization | None:
        return await self.session.get(Organization, organization_id)

    async def lock(self, organization_id: uuid.UUID) -> bool:
        """Lock the organization's row until the transaction ends; False if there is none.

        FOR NO KEY UPDATE: rows that merely refer to the organization (every tenant table's
        inserts take a key-share lock) are not held up, only other lockers of this row.
        """
        statement = (
            select(Organization.id)
            .where(Organization.id == organization_id)
            .with_for_update(key_share=True)
        )
        return (await self.session.scalar(statement)) is not None

    async def by_slug(self, slug: str) -> Organization | None:
        statement = select(Organization).where(Organization.slug == slug)
        return (await self.session.scalars(statement)).one_or_none()

    async def slug_taken(self, slug: str) -> bool:
        statement = select(func.count()).where(Organization.slug == slug)
        return bool((await self.session.execute(statement)).scalar_one())


@dataclass(frozen=True)
class MembershipView:
    membership: Membership
    user: User


class MembershipRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, membership: Membership) -> Membership:
        self.session.add(membership)
        await self.session.flush()
        return membership

    async def get(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
    ) -> Membership | None:
        statement = select(Membership).where(
            Membership.organization_id == organization_id, Membership.user_id == user_id
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def of_user(self, user_id: uuid.UUID) -> list[tuple[Membership, Organization]]:
        statement = (
            select(Membership, Organization)
            .join(Organization, Organization.id == Membership.organization_id)
            .where(Membership.user_id == user_id)
            .order_by(Organization.name, Organization.id)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(statement)).all()]

    async def organizations_page(
        self, user_id: uuid.UUID, params: PageParams, *, only: uuid.UUID | None = None
    ) -> tuple[list[tuple[Membership, Organization]], str | None]:
        """A page of the person's memberships (just the one in `only`, if given), by the
        organization's name."""
        statement = select(Organization).join(
            Membership,
            and_(Membership.organization_id == Organization.id, Membership.user_id == user_id),
        )
        if only is not None:
            statement = statement.where(Organization.id == only)
        organizations, cursor = await paginate(
            self.session,
            statement,
            order_by=(Organization.name, Organization.id),
            params=params,
            descending=False,
        )
        memberships = await self.session.scalars(
            select(Membership).where(
                Membership.user_id == user_id,
                Membership.organization_id.in_([o.id for o in organizations]),
            )
        )
        held = {membership.organization_id: membership for membership in memberships}
        return [(held[o.id], o) for o in organizations if o.id in held], cursor

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Membership], str | None]:
        statement = select(Membership).where(Membership.organization_id == organization_id)
        return await paginate(
            self.session,
            statement,
            order_by=(Membership.created_at, Membership.id),
            params=params,
            descending=False,
        )

    async def users(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        if not user_ids:
            return {}
        rows = await self.session.scalars(select(User).where(User.id.in_(user_ids)))
        return {user.id: user for user in rows}

    async def count_role(self, organization_id: uuid.UUID, role: str) -> int:
        statement = select(func.count()).where(
            Membership.organization_id == organization_id, Membership.role == role
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def delete(self, membership: Membership) -> None:
        await self.session.delete(membership)
        await self.session.execute(
            delete(TeamMember).where(
                TeamMember.organization_id == membership.organization_id,
                TeamMember.user_id == membership.user_id,
            )
        )
        await self.session.flush()


@dataclass(frozen=True)
class AccessRow:
    """What an access token's holder may do now: one query on every authenticated request."""

    role: str | None
    custom_permissions: list[str] | None
    session_revoked: bool
    session_expires_at: datetime
    session_organization_id: uuid.UUID | None
    user_disabled: bool
    sessions_valid_after: datetime | None
    session_created_at: datetime
    mfa_enrolled: bool
    mfa_required: bool
    last_write_at: datetime | None
    # The person's unit system ('metric' or 'imperial').
    units: str | None


# What an access token's session may do now (see the function in the migrations), in one
# unscoped statement on the driver: the function scopes its own query to the caller.
# The columns come in AccessRow's order.
ACCESS_SQL = (
    "SELECT member_role, custom_permissions, session_revoked, session_expires_at,"
    " session_organization_id, user_disabled, user_sessions_valid_after, session_created_at,"
    " mfa_enrolled, mfa_required, session_last_write_at, user_units"
    " FROM kai_authenticate(%s, %s, %s)"
)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, auth_session: AuthSession) -> AuthSession:
        self.session.add(auth_session)
        await self.session.flush()
        return auth_session

    async def get(self, session_id: uuid.UUID, *, for_update: bool = False) -> AuthSession | None:
        statement = select(AuthSession).where(AuthSession.id == session_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def refresh_token(self, digest: bytes) -> RefreshToken | None:
        statement = (
            select(RefreshToken).where(RefreshToken.token_digest == digest).with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def revoke(self, session_id: uuid.UUID, reason: str) -> None:
        await self.session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )

    async def live_page(
        self, user_id: uuid.UUID, *, now: datetime, params: PageParams
    ) -> tuple[list[AuthSession], str | None]:
        """The user's sessions that still work, the most recently used first."""
        return await paginate(
            self.session,
            _live_sessions(user_id, now),
            order_by=(AuthSession.last_used_at, AuthSession.id),
            params=params,
        )

    async def live(
        self, user_id: uuid.UUID, session_id: uuid.UUID, *, now: datetime
    ) -> AuthSession | None:
        statement = _live_sessions(user_id, now).where(AuthSession.id == session_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def active_of_user(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        statement = select(AuthSession.id).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        return list((await self.session.scalars(statement)).all())

    async def revoke_all(self, user_id: uuid.UUID, reason: str) -> int:
        result = await self.session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))


def _live_sessions(user_id: uuid.UUID, now: datetime) -> Select[AuthSession]:
    # What authentication checks of a session, in SQL: not revoked, not past its end, and not
    # begun before the user's sessions were last all ended (`sessions_valid_after`).
    return (
        select(AuthSession)
        .join(User, User.id == AuthSession.user_id)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            or_(
                User.sessions_valid_after.is_(None),
                AuthSession.created_at >= User.sessions_valid_after,
            ),
        )
    )


class RoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, role: Role) -> Role:
        self.session.add(role)
        await self.session.flush()
        return role

    async def get(self, organization_id: uuid.UUID, role_id: uuid.UUID) -> Role | None:
        statement = select(Role).where(Role.organization_id == organization_id, Role.id == role_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def by_key(self, organization_id: uuid.UUID, key: str) -> Role | None:
        statement = select(Role).where(Role.organization_id == organization_id, Role.key == key)
        return (await self.session.scalars(statement)).one_or_none()

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Role], str | None]:
        statement = select(Role).where(Role.organization_id == organization_id)
        return await paginate(
            self.session, statement, order_by=(Role.key,), params=params, descending=False
        )

    async def usage(self, role: Role) -> tuple[int, int, bool]:
        """Members holding `role`, pending invitations to it, and whether SSO gives it."""

        async def count(statement: Any) -> int:
            return int((await self.session.execute(statement)).scalar_one())

        scope = (role.organization_id, role.key)
        members = await count(
            select(func.count()).where(
                Membership.organization_id == scope[0], Membership.role == scope[1]
            )
        )
        invitations = await count(
            select(func.count()).where(
                Invitation.organization_id == scope[0],
                Invitation.role == scope[1],
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
        )
        sso = await count(
            select(func.count()).where(
                SsoProvider.organization_id == scope[0], SsoProvider.default_role == scope[1]
            )
        )
        return members, invitations, bool(sso)

    async def delete(self, role: Role) -> None:
        await self.session.delete(role)
        await self.session.flush()


class TeamRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, team: Team) -> Team:
        self.session.add(team)
        await self.session.flush()
        return team

    async def get(self, organization_id: uuid.UUID, team_id: uuid.UUID) -> Team | None:
        statement = select(Team).where(Team.organization_id == organization_id, Team.id == team_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Team], str | None]:
        statement = select(Team).where(Team.organization_id == organization_id)
        return await paginate(
            self.session, statement, order_by=(Team.created_at, Team.id), params=params
        )

    async def members_page(
        self, team_id: uuid.UUID, params: PageParams
    ) -> tuple[list[TeamMember], str | None]:
        """The team's members in the order they joined it."""
        statement = select(TeamMember).where(TeamMember.team_id == team_id)
        return await paginate(
            self.session,
            statement,
            order_by=(TeamMember.created_at, TeamMember.user_id),
            params=params,
            descending=False,
        )

    async def existing_ids(
        self, organization_id: uuid.UUID, team_ids: Collection[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of `team_ids` are teams of the organization."""
        statement = select(Team.id).where(
            Team.organization_id == organization_id, Team.id.in_(list(team_ids))
        )
        return set((await self.session.scalars(statement)).all())

    async def team_ids_of(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> set[uuid.UUID]:
        statement = select(TeamMember.team_id).where(
            TeamMember.organization_id == organization_id, TeamMember.user_id == user_id
        )
        return set((await self.session.scalars(statement)).all())

    async def add_member(
        self, organization_id: uuid.UUID, team_id: uuid.UUID, user_id: uuid.UUID
    ) -> bool:
        """Whether the person joined now (False: they were in the team already)."""
        statement = (
            insert(TeamMember)
            .values(organization_id=organization_id, team_id=team_id, user_id=user_id)
            .on_conflict_do_nothing()
            .returning(TeamMember.user_id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def member(self, team_id: uuid.UUID, user_id: uuid.UUID) -> TeamMember | None:
        return await self.session.get(TeamMember, (team_id, user_id))

    async def delete(self, instance: Team | TeamMember) -> None:
        await self.session.delete(instance)
        await self.session.flush()


class InvitationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, invitation: Invitation) -> Invitation:
        self.session.add(invitation)
        await self.session.flush()
        return invitation

    async def get(
        self, organization_id: uuid.UUID, invitation_id: uuid.UUID, *, for_update: bool = False
    ) -> Invitation | None:
        statement = select(Invitation).where(
            Invitation.organization_id == organization_id, Invitation.id == invitation_id
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def organization_of_token(self, digest: bytes) -> uuid.UUID | None:
        result = await self.session.execute(
            text("SELECT kai_invitation_organization(:digest)"), {"digest": digest}
        )
        return result.scalar_one_or_none()

    async def by_token(self, organization_id: uuid.UUID, digest: bytes) -> Invitation | None:
        statement = (
            select(Invitation)
            .where(Invitation.organization_id == organization_id, Invitation.token_digest == digest)
            .with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def revoke_pending_from(self, organization_id: uuid.UUID, inviter_id: uuid.UUID) -> int:
        """Withdraw every pending invitation `inviter_id` sent; how many there were."""
        result = await self.session.execute(
            update(Invitation)
            .where(
                Invitation.organization_id == organization_id,
                Invitation.invited_by == inviter_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(revoked_at=func.now())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def pending(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Invitation], str | None]:
        statement = select(Invitation).where(
            Invitation.organization_id == organization_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        return await paginate(
            self.session, statement, order_by=(Invitation.created_at, Invitation.id), params=params
        )


class UserTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: UserToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def by_digest(self, digest: bytes, purpose: str) -> UserToken | None:
        statement = (
            select(UserToken)
            .where(UserToken.token_digest == digest, UserToken.purpose == purpose)
            .with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def minted_after(
        self, user_id: uuid.UUID, purpose: str, after: datetime, *, except_job: uuid.UUID | None
    ) -> bool:
        """Whether a token of `purpose` was made for the user later than `after`, by another
        job than `except_job`."""
        statement = select(UserToken.id).where(
            UserToken.user_id == user_id,
            UserToken.purpose == purpose,
            UserToken.created_at > after,
        )
        if except_job is not None:
            statement = statement.where(UserToken.job_id.is_distinct_from(except_job))
        return (await self.session.scalars(statement.limit(1))).first() is not None

    async def void_unused(
        self,
        user_id: uuid.UUID,
        purpose: str,
        *,
        keep_newest: int = 0,
        made_by_job: uuid.UUID | None = None,
    ) -> None:
        """Void the user's unused tokens of `purpose`: every one `made_by_job` made, and of the
        others all but the `keep_newest` newest."""
        unused = (
            UserToken.user_id == user_id,
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
        )
        others = UserToken.job_id.is_distinct_from(made_by_job) if made_by_job else true()
        kept = (
            select(UserToken.id)
            .where(*unused, others)
            .order_by(UserToken.created_at.desc(), UserToken.id.desc())
            .limit(keep_newest)
        )
        voided: ColumnElement[bool] = UserToken.id.not_in(kept) | ~others
        await self.session.execute(
            update(UserToken)
            .where(*unused, voided)
            .values(used_at=func.now())
            .execution_options(synchronize_session=False)
        )


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def get(self, organization_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        statement = select(ApiKey).where(
            ApiKey.organization_id == organization_id, ApiKey.id == key_id
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ApiKey], str | None]:
        statement = select(ApiKey).where(ApiKey.organization_id == organization_id)
        return await paginate(
            self.session, statement, order_by=(ApiKey.created_at, ApiKey.id), params=params
        )


class MfaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def totp(self, user_id: uuid.UUID, *, for_update: bool = False) -> TotpCredential | None:
        statement = select(TotpCredential).where(TotpCredential.user_id == user_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def save_totp(self, credential: TotpCredential) -> None:
        self.session.add(credential)
        await self.session.flush()

    async def delete_totp(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
        await self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    async def replace_recovery_codes(self, user_id: uuid.UUID, digests: list[bytes]) -> None:
        await self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        self.session.add_all(RecoveryCode(user_id=user_id, code_digest=d) for d in digests)
        await self.session.flush()

    async def use_recovery_code(self, user_id: uuid.UUID, digest: bytes) -> bool:
        result = await self.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_digest == digest,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=func.now())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def recovery_codes_left(self, user_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
        return int((await self.session.execute(statement)).scalar_one())


class LoginThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, email_digest: bytes) -> LoginThrottle | None:
        statement = select(LoginThrottle).where(LoginThrottle.email_digest == email_digest)
        return (await self.session.scalars(statement)).one_or_none()

    async def locked_row(self, email_digest: bytes, at: datetime) -> LoginThrottle:
        """The address's row (made, with no failures, if missing), locked until the
        transaction ends: tries at one address are judged one at a time."""
        for _ in range(5):
            await self.session.execute(
                insert(LoginThrottle)
                .values(email_digest=email_digest, failures=0, last_failure_at=at)
                .on_conflict_do_nothing(index_elements=[LoginThrottle.email_digest])
            )
            statement = (
                select(LoginThrottle)
                .where(LoginThrottle.email_digest == email_digest)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            throttle = (await self.session.scalars(statement)).one_or_none()
            # None only when a right password cleared the row between the two statements.
            if throttle is not None:
                return throttle
        raise RuntimeError("the login throttle row keeps disappearing")

    async def clear(self, email_digest: bytes) -> bool:
        result = await self.session.execute(
            delete(LoginThrottle).where(LoginThrottle.email_digest == email_digest)
        )
        return bool(getattr(result, "rowcount", 0))


class SsoLinkRepository:
    """First sign-ins through an organization's provider that wait for their mailbox's owner
    (here rather than with the rest of single sign-on: the email jobs read them too)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, link: SsoLinkRequest) -> SsoLinkRequest:
        self.session.add(link)
        await self.session.flush()
        return link

    async def get(self, link_id: uuid.UUID, *, for_update: bool = False) -> SsoLinkRequest | None:
        statement = select(SsoLinkRequest).where(SsoLinkRequest.id == link_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def by_token(self, digest: bytes) -> SsoLinkRequest | None:
        statement = (
            select(SsoLinkRequest).where(SsoLinkRequest.token_digest == digest).with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def requested_since(
        self, organization_id: uuid.UUID, email: str, since: datetime
    ) -> bool:
        statement = (
            select(SsoLinkRequest.id)
            .where(
                SsoLinkRequest.organization_id == organization_id,
                SsoLinkRequest.email == email,
                SsoLinkRequest.created_at > since,
            )
            .limit(1)
        )
        return (await self.session.scalar(statement)) is not None

    async def delete_expired(self, organization_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            delete(SsoLinkRequest).where(
                SsoLinkRequest.organization_id == organization_id,
                SsoLinkRequest.expires_at <= now,
            )
        )

    async def delete(self, link: SsoLinkRequest) -> None:
        await self.session.delete(link)
        await self.session.flush()
