"""HTTP routes of categories and their property schemas."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, status

from kai.catalog import categories, purge
from kai.catalog.categories import CategoryView
from kai.catalog.schemas import CategoryCreate, CategoryRead, CategoryUpdate
from kai.deps import DbSession
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter

router = IndexedRouter(prefix="/categories", tags=["categories"], responses=AUTH_RESPONSES)

MaterialsRead = Annotated[Actor, Depends(require(Permission.MATERIALS_READ))]
MaterialsWrite = Annotated[Actor, Depends(require(Permission.MATERIALS_WRITE))]
# A rename or a move queues the rewrite of the subtree's materials (a heavy job).
CategoriesReshape = Annotated[
    Actor, Depends(require(Permission.MATERIALS_WRITE, rate_class="expensive"))
]


def _read(view: CategoryView) -> CategoryRead:
    category = view.category
    return CategoryRead(
        id=category.id,
        parent_id=category.parent_id,
        name=category.name,
        description=category.description,
        position=category.position,
        path=list(category.path),
        properties=categories.definitions_of(category),
        effective_properties=view.effective,
        created_at=category.created_at,
        updated_at=category.updated_at,
    )


@router.get(
    "",
    summary="The category tree, parents before children",
    description="Level by level, siblings by `position`: a category's parent comes on the same "
    "page or an earlier one.",
)
async def list_categories(
    actor: MaterialsRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[CategoryRead]:
    views, cursor = await categories.page_of_categories(session, actor=actor, params=page)
    return Page[CategoryRead](items=[_read(view) for view in views], next_cursor=cursor)


@router.post(
    "",
    summary="Create a category",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def create_category(
    body: CategoryCreate, actor: MaterialsWrite, session: DbSession
) -> CategoryRead:
    view = await categories.create_category(
        session,
        actor=actor,
        name=body.name,
        parent_id=body.parent_id,
        description=body.description,
        position=body.position,
        properties=body.properties,
    )
    return _read(view)


@router.get("/{category_id}", summary="One category", responses=problem_responses(404))
async def get_category(
    category_id: uuid.UUID, actor: MaterialsRead, session: DbSession
) -> CategoryRead:
    category = await categories.get_category(session, actor=actor, category_id=category_id)
    return _read(await categories.view(session, actor=actor, category=category))


@router.patch(
    "/{category_id}",
    summary="Rename, move, reorder or redefine the properties of a category",
    description="Renaming or moving a category rewrites the search documents of every material "
    "in its subtree in a `catalog.reindex_documents` job (see `/api/v1/jobs`): until it has "
    "run, full-text search matches them by the old category names.",
    responses=problem_responses(404, 409),
)
async def update_category(
    category_id: uuid.UUID, body: CategoryUpdate, actor: CategoriesReshape, session: DbSession
) -> CategoryRead:
    # `parent_id: null` means "to the top"; an absent `parent_id` means "where it is".
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    view = await categories.update_category(
        session, actor=actor, category_id=category_id, changes=changes
    )
    return _read(view)


@router.delete(
    "/{category_id}",
    summary="Delete an empty category",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def delete_category(
    category_id: uuid.UUID,
    actor: MaterialsWrite,
    session: DbSession,
    purge_deleted_materials: Annotated[
        bool,
        Query(
            description="Purge the deleted materials filed under it first (for good: they "
            "cannot be restored after). Live materials still have to be moved."
        ),
    ] = False,
) -> None:
    await categories.get_category(session, actor=actor, category_id=category_id, for_update=True)
    if purge_deleted_materials:
        await purge.purge_deleted_in_category(session, actor=actor, category_id=category_id)
    await categories.delete_category(session, actor=actor, category_id=category_id)
