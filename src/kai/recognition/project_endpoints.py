"""HTTP routes of projects: client jobs grouping recognitions and chosen materials, shared
with teams."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query, status
from fastapi.responses import StreamingResponse

from kai.catalog.models import Material
from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.money import format_amount
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.recognition import projects
from kai.recognition.models import Project, ProjectMaterial
from kai.recognition.schemas import (
    MoneyTotal,
    ProjectCreate,
    ProjectMaterialChange,
    ProjectMaterialPut,
    ProjectMaterialRead,
    ProjectRead,
    ProjectUpdate,
)

router = IndexedRouter(prefix="/projects", tags=["projects"], responses=AUTH_RESPONSES)

ProjectsManage = Annotated[Actor, Depends(require(Permission.PROJECTS_MANAGE))]
ProjectsRead = Annotated[Actor, Depends(require(Permission.RECOGNITIONS_READ))]
RecognitionsCreate = Annotated[Actor, Depends(require(Permission.RECOGNITIONS_CREATE))]
# A whole list in one response, as the catalog export.
ProjectsExport = Annotated[
    Actor, Depends(require(Permission.RECOGNITIONS_READ, rate_class="expensive"))
]


def _read(summary: projects.ProjectSummary) -> ProjectRead:
    project = summary.project
    return ProjectRead(
        id=project.id,
        name=project.name,
        client=project.client,
        description=project.description,
        status=project.status,
        team_ids=list(project.shared_with),
        recognition_count=summary.recognitions,
        material_count=summary.materials,
        totals=[
            MoneyTotal(
                currency=total.currency,
                amount=format_amount(total.amount, total.currency),
                material_count=total.materials,
            )
            for total in summary.totals
        ],
        materials_without_total=summary.without_total,
        created_by=project.created_by,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


async def _one(session: DbSession, actor: Actor, project: Project) -> ProjectRead:
    (summary,) = await projects.summarize(session, actor=actor, projects=[project])
    return _read(summary)


@router.post(
    "",
    summary="Start a project (a client job), optionally shared with some teams only",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(422),
)
async def create_project(
    body: ProjectCreate, actor: ProjectsManage, session: DbSession
) -> ProjectRead:
    project = await projects.create_project(
        session,
        actor=actor,
        name=body.name,
        client=body.client,
        description=body.description,
        team_ids=body.team_ids,
    )
    return await _one(session, actor, project)


@router.get("", summary="Projects you can see, newest first")
async def list_projects(
    actor: ProjectsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    status: Literal["active", "archived"] | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of the name or the client.")
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(description="Shared with this team.")] = None,
) -> Page[ProjectRead]:
    rows, next_cursor = await projects.list_projects(
        session, actor=actor, status=status, text=q, team_id=team_id, params=page
    )
    summaries = await projects.summarize(session, actor=actor, projects=rows)
    return Page[ProjectRead](items=[_read(one) for one in summaries], next_cursor=next_cursor)


@router.get("/{project_id}", summary="A project", responses=problem_responses(404))
async def get_project(
    project_id: uuid.UUID, actor: ProjectsRead, session: DbSession
) -> ProjectRead:
    return await _one(
        session, actor, await projects.get_project(session, actor=actor, project_id=project_id)
    )


@router.patch(
    "/{project_id}",
    summary="Rename, describe, archive or reopen a project, or change who it is shared with",
    responses=problem_responses(404, 422),
)
async def update_project(
    project_id: uuid.UUID, body: ProjectUpdate, actor: ProjectsManage, session: DbSession
) -> ProjectRead:
    project = await projects.update_project(
        session, actor=actor, project_id=project_id, changes=body.model_dump(exclude_unset=True)
    )
    return await _one(session, actor, project)


@router.delete(
    "/{project_id}",
    summary="Delete a project (its recognitions stay, filed in no project)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def delete_project(project_id: uuid.UUID, actor: ProjectsManage, session: DbSession) -> None:
    await projects.delete_project(session, actor=actor, project_id=project_id)


@router.put(
    "/{project_id}/recognitions/{recognition_id}",
    summary="File a recognition in the project",
    description="The recognitions of a project: `GET /api/v1/recognitions?project_id=`. "
    "A recognition is in one project at most; filing it here takes it out of any other.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def file_recognition(
    project_id: uuid.UUID, recognition_id: uuid.UUID, actor: RecognitionsCreate, session: DbSession
) -> None:
    await projects.file_recognition(
        session, actor=actor, project_id=project_id, recognition_id=recognition_id
    )


@router.delete(
    "/{project_id}/recognitions/{recognition_id}",
    summary="Take a recognition out of the project",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def unfile_recognition(
    project_id: uuid.UUID, recognition_id: uuid.UUID, actor: ProjectsManage, session: DbSession
) -> None:
    await projects.unfile_recognition(
        session, actor=actor, project_id=project_id, recognition_id=recognition_id
    )


def _material(chosen: ProjectMaterial, material: Material) -> ProjectMaterialRead:
    price, currency = material.price, material.currency
    total = projects.line_total(chosen.quantity, price, currency)
    return ProjectMaterialRead(
        material_id=material.id,
        name=material.name,
        code=material.code,
        category_id=material.category_id,
        deleted=material.deleted_at is not None,
        quantity=chosen.quantity,
        unit=chosen.unit,
        price=format_amount(price, currency) if price is not None else None,
        currency=currency,
        line_total=format_amount(total, currency) if total is not None else None,
        note=chosen.note,
        recognition_id=chosen.recognition_id,
        added_by=chosen.added_by,
        added_at=chosen.added_at,
    )


@router.get(
    "/{project_id}/materials",
    summary="The materials chosen for the project, latest first",
    responses=problem_responses(404),
)
async def list_materials(
    project_id: uuid.UUID,
    actor: ProjectsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ProjectMaterialRead]:
    rows, next_cursor = await projects.project_materials(
        session, actor=actor, project_id=project_id, params=page
    )
    return Page[ProjectMaterialRead](
        items=[_material(chosen, material) for chosen, material in rows], next_cursor=next_cursor
    )


@router.get(
    "/{project_id}/export",
    summary="Download the materials chosen for a project, as CSV or JSON",
    description="Each chosen material with its code, name, category path, quantity, unit, "
    "catalog price (`unit_price`), currency, line total and note; JSON also gives the totals "
    "per currency. Streamed; audited as `project.exported`.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}, "description": "The file."},
        **problem_responses(404),
    },
)
async def export_project(
    project_id: uuid.UUID,
    actor: ProjectsExport,
    session: DbSession,
    runtime: RuntimeDep,
    format: Literal["csv", "json"] = "csv",
) -> StreamingResponse:
    pieces = await projects.export_materials(
        session, runtime.session_factory, actor=actor, project_id=project_id, fmt=format
    )
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    return StreamingResponse(
        pieces,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="project-{project_id}.{format}"'},
    )


@router.put(
    "/{project_id}/materials/{material_id}",
    summary="Choose a catalog material for the project (the whole entry: fields not sent are "
    "cleared)",
    responses=problem_responses(404, 409, 422),
)
async def choose_material(
    project_id: uuid.UUID,
    material_id: uuid.UUID,
    body: ProjectMaterialPut,
    actor: ProjectsManage,
    session: DbSession,
) -> ProjectMaterialRead:
    chosen, material = await projects.choose_material(
        session,
        actor=actor,
        project_id=project_id,
        material_id=material_id,
        quantity=body.quantity,
        unit=body.unit,
        note=body.note,
        recognition_id=body.recognition_id,
    )
    return _material(chosen, material)


@router.patch(
    "/{project_id}/materials/{material_id}",
    summary="Change the quantity, unit or note of a material chosen for the project",
    description="Only the fields sent change (PUT replaces the whole entry).",
    responses=problem_responses(404, 409, 422),
)
async def change_material(
    project_id: uuid.UUID,
    material_id: uuid.UUID,
    body: ProjectMaterialChange,
    actor: ProjectsManage,
    session: DbSession,
) -> ProjectMaterialRead:
    chosen, material = await projects.change_material(
        session,
        actor=actor,
        project_id=project_id,
        material_id=material_id,
        changes={field: getattr(body, field) for field in body.model_fields_set},
    )
    return _material(chosen, material)


@router.delete(
    "/{project_id}/materials/{material_id}",
    summary="Take a material off the project",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def remove_material(
    project_id: uuid.UUID, material_id: uuid.UUID, actor: ProjectsManage, session: DbSession
) -> None:
    await projects.remove_material(
        session, actor=actor, project_id=project_id, material_id=material_id
    )
