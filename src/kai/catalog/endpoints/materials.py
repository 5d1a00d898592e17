"""HTTP routes of materials: CRUD, versions (and restoring one), soft delete and restore, with
ETag / If-Match."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Response, status
from pydantic import BaseModel, Field

from kai.catalog import materials, purge, transfers, version_restore
from kai.catalog.endpoints.transfers import ImportReportRead
from kai.catalog.imports import ImportMode
from kai.catalog.models import Material, MaterialStatus
from kai.catalog.schemas import (
    MaterialCreate,
    MaterialRead,
    MaterialRestore,
    MaterialUpdate,
    MaterialVersionRead,
    UnitSystem,
)
from kai.deps import DbSession, ReadSession
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import RequestModel

router = IndexedRouter(prefix="/materials", tags=["materials"], responses=AUTH_RESPONSES)

# Records per bulk request: one transaction, answered while the client waits.
BULK_LIMIT = 1000

MaterialsRead = Annotated[Actor, Depends(require(Permission.MATERIALS_READ))]
MaterialsWrite = Annotated[Actor, Depends(require(Permission.MATERIALS_WRITE))]
# Up to BULK_LIMIT records in one request: an import by another name.
MaterialsBulkWrite = Annotated[
    Actor, Depends(require(Permission.MATERIALS_WRITE, rate_class="expensive"))
]
Paging = Annotated[PageParams, Depends(page_params)]
Units = Annotated[
    UnitSystem | None,
    Query(description="Units of the properties; the person's preference when omitted."),
]
IfMatch = Annotated[
    str | None,
    Header(
        max_length=200,
        description="The `ETag` (version) you last read: the change applies only to it (412 "
        "otherwise).",
    ),
]


async def _one(
    session: DbSession,
    actor: Actor,
    material: Material,
    units: UnitSystem | None,
    response: Response,
) -> MaterialRead:
    system = await materials.unit_system(session, actor, units)
    response.headers["ETag"] = materials.etag(material)
    (read,) = await materials.present(session, actor=actor, materials=[material], units=system)
    return read


@router.get("", summary="Materials, newest first")
async def list_materials(
    actor: MaterialsRead,
    session: ReadSession,
    page: Paging,
    units: Units = None,
    category_id: Annotated[
        uuid.UUID | None, Query(description="This category and its subcategories.")
    ] = None,
    material_status: Annotated[MaterialStatus | None, Query(alias="status")] = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    include_deleted: bool = False,
    deleted_only: Annotated[
        bool, Query(description="The deleted materials alone (the trash), to restore or purge.")
    ] = False,
) -> Page[MaterialRead]:
    rows, cursor = await materials.list_materials(
        session,
        actor=actor,
        category_id=category_id,
        status=material_status.value if material_status else None,
        tag=tag.strip().lower() if tag else None,
        include_deleted=include_deleted,
        deleted_only=deleted_only,
        params=page,
    )
    system = await materials.unit_system(session, actor, units)
    items = await materials.present(session, actor=actor, materials=rows, units=system)
    return Page[MaterialRead](items=items, next_cursor=cursor)


@router.post(
    "",
    summary="Create a material",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def create_material(
    body: MaterialCreate,
    actor: MaterialsWrite,
    session: DbSession,
    response: Response,
    units: Units = None,
) -> MaterialRead:
    material = await materials.create_material(session, actor=actor, data=body)
    response.headers["Location"] = f"/api/v1/materials/{material.id}"
    return await _one(session, actor, material, units, response)


class MaterialsBulk(RequestModel):
    materials: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=BULK_LIMIT,
        description="Records with the fields of an import (`code`, `name`, `category` as a "
        "path such as `Stone > Marble` or `category_id`, `description`, `price`, `currency`, "
        "`tags`, `status`, `properties` or `properties.<key>`...). A code already in the "
        "catalog updates that material, changing only the fields given: an empty value "
        '(null, `""`, `[]`) leaves its field as it is. A field KAI does not have is a problem.',
    )
    mode: ImportMode = Field(
        default="all_or_nothing",
        description="`all_or_nothing`: one bad record refuses the lot (422 naming every "
        "problem); `skip_invalid`: the good ones are written and the bad ones reported.",
    )
    dry_run: bool = Field(default=False, description="Check and report; write nothing.")


class MaterialIds(RequestModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=BULK_LIMIT)


class Deleted(BaseModel):
    deleted: int


@router.post(
    "/bulk",
    summary="Create or update many materials at once, by code",
    description=f"Up to {BULK_LIMIT} records in one transaction; larger catalogs go through "
    "`/api/v1/catalog/imports`. Records are counted from 0, in the report's `index` as in "
    'the 422\'s `loc` (`["body", "materials", 8, "price"]`).',
    responses=problem_responses(409, 422),
)
async def bulk_upsert(
    body: MaterialsBulk, actor: MaterialsBulkWrite, session: DbSession
) -> ImportReportRead:
    report = await transfers.bulk_upsert(
        session, actor=actor, items=body.materials, mode=body.mode, dry_run=body.dry_run
    )
    return ImportReportRead.model_validate(report.summary())


@router.post(
    "/bulk/delete",
    summary="Delete many materials at once (they can be restored)",
    description="All or none: an id that is not a live material of the organization refuses "
    "the lot (404 naming it).",
    responses=problem_responses(404, 422),
)
async def bulk_delete(body: MaterialIds, actor: MaterialsBulkWrite, session: DbSession) -> Deleted:
    count = await materials.delete_materials(session, actor=actor, material_ids=body.ids)
    return Deleted(deleted=count)


@router.get("/{material_id}", summary="One material", responses=problem_responses(404))
async def get_material(
    material_id: uuid.UUID,
    actor: MaterialsRead,
    session: DbSession,
    response: Response,
    units: Units = None,
    include_deleted: bool = False,
) -> MaterialRead:
    material = await materials.get_material(
        session, actor=actor, material_id=material_id, include_deleted=include_deleted
    )
    return await _one(session, actor, material, units, response)


@router.patch(
    "/{material_id}",
    summary="Change a material",
    responses=problem_responses(404, 409, 412),
)
async def update_material(
    material_id: uuid.UUID,
    body: MaterialUpdate,
    actor: MaterialsWrite,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
    units: Units = None,
    include_deleted: Annotated[
        bool, Query(description="Change a deleted material too (to move or fix it).")
    ] = False,
) -> MaterialRead:
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    material = await materials.update_material(
        session,
        actor=actor,
        material_id=material_id,
        changes=changes,
        if_match=if_match,
        include_deleted=include_deleted,
    )
    return await _one(session, actor, material, units, response)


@router.delete(
    "/{material_id}",
    summary="Delete a material (it can be restored)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 412),
)
async def delete_material(
    material_id: uuid.UUID, actor: MaterialsWrite, session: DbSession, if_match: IfMatch = None
) -> None:
    await materials.delete_material(
        session, actor=actor, material_id=material_id, if_match=if_match
    )


@router.post(
    "/{material_id}/restore",
    summary="Restore a deleted material",
    responses=problem_responses(404, 409, 412, 422),
)
async def restore_material(
    material_id: uuid.UUID,
    actor: MaterialsWrite,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
    units: Units = None,
    body: MaterialRestore | None = None,
) -> MaterialRead:
    material = await materials.restore_material(
        session,
        actor=actor,
        material_id=material_id,
        if_match=if_match,
        code=body.code if body else None,
    )
    return await _one(session, actor, material, units, response)


@router.post(
    "/{material_id}/purge",
    summary="Remove a deleted material for good",
    description="Its versions and images go with it; it cannot be restored after.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def purge_material(material_id: uuid.UUID, actor: MaterialsWrite, session: DbSession) -> None:
    await purge.purge_material(session, actor=actor, material_id=material_id)


@router.get(
    "/{material_id}/versions",
    summary="Every change of a material, newest first",
    responses=problem_responses(404),
)
async def list_versions(
    material_id: uuid.UUID, actor: MaterialsRead, session: DbSession, page: Paging
) -> Page[MaterialVersionRead]:
    rows, cursor = await materials.list_versions(
        session, actor=actor, material_id=material_id, params=page
    )
    items = await materials.present_versions(
        session, actor=actor, material_id=material_id, versions=rows
    )
    return Page[MaterialVersionRead](items=items, next_cursor=cursor)


@router.post(
    "/{material_id}/versions/{version}/restore",
    summary="Restore the values of an earlier version",
    description="The material takes the fields it had at `version` again (name, code, "
    "category, description, properties, manufacturer, supplier, price, tags, status), "
    "recorded as a new version whose `restored_from` names it: history is never rewritten. "
    "The values must pass an edit's checks against the category and its schema as they are "
    "now: 422 naming each field otherwise, 409 when another material holds its code now, "
    "and nothing written. When they are the current ones "
    "already, the material is answered unchanged and no version is made. A deleted material "
    "is restored from the trash first (`POST /api/v1/materials/{material_id}/restore`).",
    responses=problem_responses(404, 409, 412, 422),
)
async def restore_version(
    material_id: uuid.UUID,
    version: Annotated[
        int, Path(ge=1, le=2**31 - 1, description="Its number, as the versions list gives it.")
    ],
    actor: MaterialsWrite,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
    units: Units = None,
) -> MaterialRead:
    material = await version_restore.restore_version(
        session, actor=actor, material_id=material_id, version=version, if_match=if_match
    )
    return await _one(session, actor, material, units, response)
