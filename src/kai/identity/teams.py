"""Teams inside an organization, and the condition resources use to share with some of them.

A resource shared with chosen teams is visible to their members and to owners and admins;
one shared with no team is visible to everyone who may read that kind of resource.

A team grants no permission, only sight: its members see what is shared with it (within what
their role lets them read). So bringing someone into a team is a grant of that sight, and
follows the rule of every grant: nobody gives what they do not have. Owners and admins see
everything and may add anyone to any team; anyone else holding `teams:manage` (a custom role)
may add people only to teams they belong to themselves, so cannot add themselves (or an
accomplice) to a team to see what it is shared with. Whoever creates a team without seeing
everything joins it: nothing is shared with a new team yet, and they can then fill it. API
keys belong to no team and see only what is shared with everyone, so they add nobody.
Taking people out of a team, renaming or deleting it only narrows what anyone sees, and stays
with `teams:manage`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, Uuid, cast, func, or_, true
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.errors import MemberNotFound, PermissionDenied, TeamNotFound
from kai.identity.models import Team, User
from kai.identity.repository import MembershipRepository, TeamRepository
from kai.kit.errors import Conflict
from kai.kit.pagination import PageParams


class TeamNameTaken(Conflict):
    type, title = "team-name-taken", "A team with this name exists"
    constraints = ("uq_teams_org_name",)


async def teams_of(session: AsyncSession, actor: Actor) -> set[uuid.UUID]:
    if actor.user_id is None or actor.organization_id is None:
        return set()
    return await TeamRepository(session).team_ids_of(actor.organization_id, actor.user_id)


async def can_see(
    session: AsyncSession, actor: Actor, shared_with: Collection[uuid.UUID] | None
) -> bool:
    """Whether `actor` may see a resource shared with the teams `shared_with` (None: all)."""
    if not shared_with or actor.unrestricted:
        return True
    return bool(await teams_of(session, actor) & set(shared_with))


def visible_clause(
    actor: Actor,
    actor_teams: Collection[uuid.UUID],
    shared_with: ColumnElement[Any] | InstrumentedAttribute[Any],
) -> ColumnElement[bool]:
    """A WHERE clause on an array-of-team-ids column: the rows `actor` may see."""
    if actor.unrestricted:
        return true()
    unshared = or_(shared_with.is_(None), func.cardinality(shared_with) == 0)
    if not actor_teams:
        return unshared
    teams = cast(array(sorted(actor_teams), type_=Uuid()), ARRAY(Uuid()))
    return or_(unshared, shared_with.op("&&")(teams))


async def unknown_teams(
    session: AsyncSession, organization_id: uuid.UUID, team_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `team_ids` are not teams of the organization."""
    return set(team_ids) - await TeamRepository(session).existing_ids(organization_id, team_ids)


async def create_team(session: AsyncSession, *, actor: Actor, name: str, description: str) -> Team:
    organization_id = actor.tenant_id
    # No look before the insert: the unique index decides (TeamNameTaken), with the database's
    # own idea of case, and two creates at once cannot both pass a look.
    team = await TeamRepository(session).add(
        Team(organization_id=organization_id, name=name, description=description)
    )
    await audit.record(
        session,
        action="team.created",
        organization_id=organization_id,
        actor=actor,
        target_type="team",
        target_id=str(team.id),
        details={"name": name},
    )
    if not actor.unrestricted and actor.kind == "user" and actor.user_id is not None:
        # Else they could not add anyone to it (see the module's docstring).
        await _add_member(session, actor=actor, team=team, user_id=actor.user_id)
    return team


async def get_team(session: AsyncSession, *, actor: Actor, team_id: uuid.UUID) -> Team:
    team = await TeamRepository(session).get(actor.tenant_id, team_id)
    if team is None:
        raise TeamNotFound(f"No team {team_id} in this organization.")
    return team


async def list_teams(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[Team], str | None]:
    return await TeamRepository(session).list_page(actor.tenant_id, params)


async def update_team(
    session: AsyncSession, *, actor: Actor, team_id: uuid.UUID, changes: dict[str, Any]
) -> Team:
    team = await get_team(session, actor=actor, team_id=team_id)
    for field, value in changes.items():
        setattr(team, field, value)
    await session.flush()
    await session.refresh(team)
    await audit.record(
        session,
        action="team.updated",
        organization_id=team.organization_id,
        actor=actor,
        target_type="team",
        target_id=str(team.id),
        details={"changed": sorted(changes)},
    )
    return team


async def delete_team(session: AsyncSession, *, actor: Actor, team_id: uuid.UUID) -> None:
    team = await get_team(session, actor=actor, team_id=team_id)
    await TeamRepository(session).delete(team)
    await audit.record(
        session,
        action="team.deleted",
        organization_id=team.organization_id,
        actor=actor,
        target_type="team",
        target_id=str(team_id),
        details={"name": team.name},
    )


async def team_members(
    session: AsyncSession, *, actor: Actor, team_id: uuid.UUID, params: PageParams
) -> tuple[list[User], str | None]:
    team = await get_team(session, actor=actor, team_id=team_id)
    members, cursor = await TeamRepository(session).members_page(team.id, params)
    users = await MembershipRepository(session).users([member.user_id for member in members])
    return [users[m.user_id] for m in members if m.user_id in users], cursor


async def add_team_member(
    session: AsyncSession, *, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Bring a member into a team: only someone who sees what it is shared with may."""
    team = await get_team(session, actor=actor, team_id=team_id)
    repository = TeamRepository(session)
    if not actor.unrestricted and (
        actor.user_id is None or await repository.member(team.id, actor.user_id) is None
    ):
        raise PermissionDenied(
            "Only owners, admins and the team's own members may add people to it: its members "
            "see what is shared with it."
        )
    if await MembershipRepository(session).get(team.organization_id, user_id) is None:
        raise MemberNotFound(f"No member {user_id} in this organization.")
    await _add_member(session, actor=actor, team=team, user_id=user_id)


async def _add_member(
    session: AsyncSession, *, actor: Actor, team: Team, user_id: uuid.UUID
) -> None:
    # Adding someone twice (even twice at once) is no conflict: they are in the team.
    if await TeamRepository(session).add_member(team.organization_id, team.id, user_id):
        await audit.record(
            session,
            action="team.member_added",
            organization_id=team.organization_id,
            actor=actor,
            target_type="user",
            target_id=str(user_id),
            details={"team_id": str(team.id)},
        )


async def remove_team_member(
    session: AsyncSession, *, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    team = await get_team(session, actor=actor, team_id=team_id)
    repository = TeamRepository(session)
    member = await repository.member(team.id, user_id)
    if member is None:
        raise MemberNotFound(f"{user_id} is not in this team.")
    await repository.delete(member)
    await audit.record(
        session,
        action="team.member_removed",
        organization_id=team.organization_id,
        actor=actor,
        target_type="user",
        target_id=str(user_id),
        details={"team_id": str(team.id)},
    )
