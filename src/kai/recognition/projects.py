"""Projects: a client job grouping the photos recognized for it and the materials chosen.

A project shared with some teams is seen by their members and by owners and admins; one
shared with none by everyone who may read recognitions (identity's team condition). What is
filed in a project is seen as the project is: its recognitions and batches are hidden, like
the project, from whoever may not see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.materials import get_material
from kai.catalog.models import Material
from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.errors import PermissionDenied
from kai.identity.permissions import Permission
from kai.identity.teams import teams_of, unknown_teams, visible_clause
from kai.kit.errors import Conflict, NotFound, Unprocessable
from kai.kit.pagination import PageParams
from kai.recognition.models import Project, ProjectMaterial
from kai.recognition.repository import ProjectRepository, RecognitionRepository


class ProjectNotFound(NotFound):
    type, title = "project-not-found", "No such project"


class ProjectArchived(Conflict):
    type, title = "project-archived", "The project is archived"


class InvalidSharing(Unprocessable):
    type, title = "invalid-sharing", "The project cannot be shared so"


class ProjectNotEmpty(Conflict):
    type, title = "project-not-empty", "The project still has recognitions filed in it"


class NotInProject(NotFound):
    type, title = "not-in-project", "Not in this project"


@dataclass
class ProjectSummary:
    project: Project
    recognitions: int
    materials: int


async def visibility(session: AsyncSession, actor: Actor) -> ColumnElement[bool]:
    """A WHERE clause on projects: those `actor` may see (all, for owners, admins and the
    operator, whose teams need no query)."""
    teams = set() if actor.unrestricted else await teams_of(session, actor)
    return visible_clause(actor, teams, Project.shared_with)


async def _checked_sharing(
    session: AsyncSession, actor: Actor, team_ids: Collection[uuid.UUID]
) -> list[uuid.UUID]:
    """The teams, each of the organization; and the actor among those who will see it."""
    wanted = sorted(set(team_ids))
    if not wanted:
        return []
    unknown = await unknown_teams(session, actor.tenant_id, wanted)
    if unknown:
        raise InvalidSharing(
            f"No such team in this organization: {', '.join(sorted(map(str, unknown)))}.",
            errors=[{"loc": ["body", "team_ids"], "msg": "unknown team", "type": "value"}],
        )
    if not actor.unrestricted and not await teams_of(session, actor) & set(wanted):
        raise InvalidSharing(
            "You would no longer see the project: share it with a team of yours too.",
            errors=[{"loc": ["body", "team_ids"], "msg": "none of your teams", "type": "value"}],
        )
    return wanted


async def create_project(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    client: str,
    description: str,
    team_ids: Collection[uuid.UUID],
) -> Project:
    project = await ProjectRepository(session).add(
        Project(
            organization_id=actor.tenant_id,
            name=name,
            client=client,
            description=description,
            shared_with=await _checked_sharing(session, actor, team_ids),
            created_by=actor.author,
        )
    )
    await audit.record(
        session,
        action="project.created",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project.id),
        details={"name": name, "team_ids": [str(team) for team in project.shared_with]},
    )
    return project


async def get_project(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, lock: bool = False
) -> Project:
    found = await ProjectRepository(session).get(
        actor.tenant_id, project_id, visible=await visibility(session, actor), lock=lock
    )
    if found is None:
        raise ProjectNotFound(f"No project {project_id} that you can see.")
    return found


async def summarize(
    session: AsyncSession, *, actor: Actor, projects: list[Project]
) -> list[ProjectSummary]:
    counts = await ProjectRepository(session).counts(
        actor.tenant_id, [project.id for project in projects]
    )
    return [ProjectSummary(project, *counts[project.id]) for project in projects]


async def list_projects(
    session: AsyncSession,
    *,
    actor: Actor,
    status: str | None,
    text: str | None,
    team_id: uuid.UUID | None,
    params: PageParams,
) -> tuple[list[Project], str | None]:
    return await ProjectRepository(session).list_page(
        actor.tenant_id,
        visible=await visibility(session, actor),
        status=status,
        text=text,
        team_id=team_id,
        params=params,
    )


async def update_project(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, changes: dict[str, Any]
) -> Project:
    """Change what is given in `changes` (name, client, description, status, team_ids)."""
    project = await get_project(session, actor=actor, project_id=project_id)
    details: dict[str, Any] = {"changed": sorted(changes)}
    if "team_ids" in changes:
        project.shared_with = await _checked_sharing(session, actor, changes.pop("team_ids"))
        details["team_ids"] = [str(team) for team in project.shared_with]
    for field, value in changes.items():
        setattr(project, field, value)
    await ProjectRepository(session).touch(project)
    await audit.record(
        session,
        action="project.updated",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project.id),
        details=details,
    )
    return project


async def delete_project(session: AsyncSession, *, actor: Actor, project_id: uuid.UUID) -> None:
    """The project and its list of chosen materials; its recognitions stay, filed nowhere.

    A project shared with some teams only is refused while anything is filed in it: its
    recognitions would become everyone's to see by a delete, not by a decision."""
    project = await get_project(session, actor=actor, project_id=project_id)
    repository = ProjectRepository(session)
    if project.shared_with and await repository.has_filed(actor.tenant_id, project.id):
        raise ProjectNotEmpty(
            f"Project {project.name!r} is shared with some teams only, and recognitions are "
            "filed in it: take them out, or share the project with everyone, first."
        )
    await repository.delete(project)
    await audit.record(
        session,
        action="project.deleted",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project_id),
        details={"name": project.name},
    )


async def open_project(session: AsyncSession, *, actor: Actor, project_id: uuid.UUID) -> Project:
    """A project that work may still be filed in: seen by the actor, and not archived; kept
    from deletion until the transaction that files the work ends."""
    project = await get_project(session, actor=actor, project_id=project_id, lock=True)
    if project.status == "archived":
        raise ProjectArchived(f"Project {project.name!r} is archived: reopen it first.")
    return project


async def file_recognition(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, recognition_id: uuid.UUID
) -> None:
    """File a recognition in the project (taking it out of any other the actor sees)."""
    from kai.recognition.service import get_recognition

    project = await open_project(session, actor=actor, project_id=project_id)
    recognition = await get_recognition(session, actor=actor, recognition_id=recognition_id)
    moving = recognition.project_id is not None and recognition.project_id != project.id
    if moving and not actor.can(Permission.PROJECTS_MANAGE):
        # Taking it out of its project needs this permission; moving it does as well.
        raise PermissionDenied("Moving a recognition to another project needs projects:manage.")
    await ProjectRepository(session).file_recognition(actor.tenant_id, recognition.id, project.id)


async def unfile_recognition(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, recognition_id: uuid.UUID
) -> None:
    from kai.recognition.service import get_recognition

    project = await get_project(session, actor=actor, project_id=project_id)
    recognition = await get_recognition(session, actor=actor, recognition_id=recognition_id)
    if recognition.project_id != project.id:
        raise NotInProject(f"Recognition {recognition_id} is not filed in this project.")
    await ProjectRepository(session).file_recognition(actor.tenant_id, recognition.id, None)


async def choose_material(
    session: AsyncSession,
    *,
    actor: Actor,
    project_id: uuid.UUID,
    material_id: uuid.UUID,
    quantity: Decimal | None,
    unit: str | None,
    note: str,
    recognition_id: uuid.UUID | None,
) -> tuple[ProjectMaterial, Material]:
    """Choose a catalog material for the project, or change its quantity and note there."""
    project = await open_project(session, actor=actor, project_id=project_id)
    material = await get_material(session, actor=actor, material_id=material_id)
    if recognition_id is not None:
        found = await RecognitionRepository(session).get(
            actor.tenant_id, recognition_id, visible=await visibility(session, actor)
        )
        if found is None:
            raise NotInProject(
                f"No recognition {recognition_id} that you can see.",
                errors=[{"loc": ["body", "recognition_id"], "msg": "not found", "type": "value"}],
            )
    chosen = await ProjectRepository(session).choose(
        actor.tenant_id,
        project.id,
        material.id,
        quantity=quantity,
        unit=unit,
        note=note,
        recognition_id=recognition_id,
        added_by=actor.author,
    )
    return chosen, material


async def change_material(
    session: AsyncSession,
    *,
    actor: Actor,
    project_id: uuid.UUID,
    material_id: uuid.UUID,
    changes: dict[str, Any],
) -> tuple[ProjectMaterial, Material]:
    """Change what is said of a material chosen for the project: only the fields given."""
    project = await open_project(session, actor=actor, project_id=project_id)
    chosen = await ProjectRepository(session).chosen(actor.tenant_id, project.id, material_id)
    if chosen is None:
        raise NotInProject(f"Material {material_id} is not chosen for this project.")
    current = {
        "quantity": chosen.quantity,
        "unit": chosen.unit,
        "note": chosen.note,
        "recognition_id": chosen.recognition_id,
    }
    merged = {**current, **changes}
    if merged["note"] is None:
        merged["note"] = ""
    return await choose_material(
        session, actor=actor, project_id=project_id, material_id=material_id, **merged
    )


async def remove_material(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, material_id: uuid.UUID
) -> None:
    project = await get_project(session, actor=actor, project_id=project_id)
    repository = ProjectRepository(session)
    chosen = await repository.chosen(actor.tenant_id, project.id, material_id)
    if chosen is None:
        raise NotInProject(f"Material {material_id} is not chosen for this project.")
    await repository.unchoose(chosen)


async def project_materials(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, params: PageParams
) -> tuple[list[tuple[ProjectMaterial, Material]], str | None]:
    project = await get_project(session, actor=actor, project_id=project_id)
    return await ProjectRepository(session).chosen_page(actor.tenant_id, project.id, params)
