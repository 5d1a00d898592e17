"""HTTP routes of the catalog's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kai.catalog import settings
from kai.catalog.schemas import CatalogSettingsChange, CatalogSettingsRead, CatalogSettingsUpdate
from kai.deps import DbSession
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.routing import IndexedRouter

router = IndexedRouter(prefix="/catalog/settings", tags=["catalog"], responses=AUTH_RESPONSES)

MaterialsRead = Annotated[Actor, Depends(require(Permission.MATERIALS_READ))]
# A new search language rewrites every material's search document, in a job.
CatalogReindex = Annotated[
    Actor, Depends(require(Permission.ORGANIZATION_MANAGE, rate_class="expensive"))
]


@router.get("", summary="The catalog's settings")
async def get_settings(actor: MaterialsRead, session: DbSession) -> CatalogSettingsRead:
    return await settings.get_settings(session, actor=actor)


@router.put(
    "",
    summary="Change the catalog's settings",
    description="A new search language takes effect as a job rewrites every material's "
    "search document (`reindex_job_id`); searches meanwhile mix the two stemmings.",
    responses=problem_responses(422),
)
async def update_settings(
    actor: CatalogReindex, session: DbSession, data: CatalogSettingsUpdate
) -> CatalogSettingsRead:
    return await settings.update_settings(session, actor=actor, data=data)


@router.patch(
    "",
    summary="Change some of the catalog's settings",
    description="Only the settings sent change. A new search language takes effect as a job "
    "rewrites every material's search document (`reindex_job_id`).",
    responses=problem_responses(422),
)
async def change_settings(
    actor: CatalogReindex, session: DbSession, data: CatalogSettingsChange
) -> CatalogSettingsRead:
    if data.search_language is None:
        return await settings.get_settings(session, actor=actor)
    whole = CatalogSettingsUpdate(search_language=data.search_language)
    return await settings.update_settings(session, actor=actor, data=whole)
