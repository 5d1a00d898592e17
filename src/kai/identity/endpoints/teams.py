"""HTTP routes of teams."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from kai.deps import DbSession
from kai.identity import teams
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.identity.schemas import TeamCreate, TeamMemberRead, TeamRead, TeamUpdate
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter

router = IndexedRouter(prefix="/teams", tags=["teams"], responses=AUTH_RESPONSES)

MembersRead = Annotated[Actor, Depends(require(Permission.MEMBERS_READ))]
TeamsManage = Annotated[Actor, Depends(require(Permission.TEAMS_MANAGE))]


@router.get("", summary="Teams of the organization")
async def list_teams(
    actor: MembersRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[TeamRead]:
    rows, cursor = await teams.list_teams(session, actor=actor, params=page)
    return Page[TeamRead](items=[TeamRead.model_validate(t) for t in rows], next_cursor=cursor)


@router.post(
    "",
    summary="Create a team",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def create_team(body: TeamCreate, actor: TeamsManage, session: DbSession) -> TeamRead:
    team = await teams.create_team(
        session, actor=actor, name=body.name, description=body.description
    )
    return TeamRead.model_validate(team)


@router.get("/{team_id}", summary="One team", responses=problem_responses(404))
async def get_team(team_id: uuid.UUID, actor: MembersRead, session: DbSession) -> TeamRead:
    return TeamRead.model_validate(await teams.get_team(session, actor=actor, team_id=team_id))


@router.patch(
    "/{team_id}", summary="Rename or describe a team", responses=problem_responses(404, 409)
)
async def update_team(
    team_id: uuid.UUID, body: TeamUpdate, actor: TeamsManage, session: DbSession
) -> TeamRead:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    team = await teams.update_team(session, actor=actor, team_id=team_id, changes=changes)
    return TeamRead.model_validate(team)


@router.delete(
    "/{team_id}",
    summary="Delete a team",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def delete_team(team_id: uuid.UUID, actor: TeamsManage, session: DbSession) -> None:
    await teams.delete_team(session, actor=actor, team_id=team_id)


@router.get(
    "/{team_id}/members",
    summary="Members of a team, in the order they joined it",
    responses=problem_responses(404),
)
async def team_members(
    team_id: uuid.UUID,
    actor: MembersRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[TeamMemberRead]:
    users, cursor = await teams.team_members(session, actor=actor, team_id=team_id, params=page)
    return Page[TeamMemberRead](
        items=[TeamMemberRead(user_id=u.id, email=u.email, name=u.name) for u in users],
        next_cursor=cursor,
    )


@router.put(
    "/{team_id}/members/{user_id}",
    summary="Add a member of the organization to a team",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def add_team_member(
    team_id: uuid.UUID, user_id: uuid.UUID, actor: TeamsManage, session: DbSession
) -> None:
    await teams.add_team_member(session, actor=actor, team_id=team_id, user_id=user_id)


@router.delete(
    "/{team_id}/members/{user_id}",
    summary="Take someone out of a team",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def remove_team_member(
    team_id: uuid.UUID, user_id: uuid.UUID, actor: TeamsManage, session: DbSession
) -> None:
    await teams.remove_team_member(session, actor=actor, team_id=team_id, user_id=user_id)
