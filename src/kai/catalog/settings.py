"""An organization's catalog settings: the language its words are stemmed in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.errors import UnknownLanguage
from kai.catalog.repository import SettingsRepository
from kai.catalog.schemas import CatalogSettingsRead, CatalogSettingsUpdate
from kai.identity import audit
from kai.identity.actor import Actor

DEFAULT_LANGUAGE = "english"


async def get_settings(session: AsyncSession, *, actor: Actor) -> CatalogSettingsRead:
    repository = SettingsRepository(session)
    found = await repository.get(actor.tenant_id)
    return CatalogSettingsRead(
        search_language=str(found.search_language) if found else DEFAULT_LANGUAGE,
        available_languages=await repository.languages(),
    )


async def update_settings(
    session: AsyncSession, *, actor: Actor, data: CatalogSettingsUpdate
) -> CatalogSettingsRead:
    """Change the search language; every material's document is rewritten by a job."""
    from kai.catalog.tasks import reindex_documents

    organization_id = actor.tenant_id
    repository = SettingsRepository(session)
    current = await get_settings(session, actor=actor)
    if data.search_language not in current.available_languages:
        raise UnknownLanguage(
            f"No text-search configuration {data.search_language!r} on this server.",
            errors=[
                {
                    "loc": ["body", "search_language"],
                    "msg": f"one of {', '.join(current.available_languages)}",
                    "type": "enum",
                }
            ],
        )
    if data.search_language == current.search_language:
        return current
    await repository.set_language(organization_id, data.search_language)
    job = await reindex_documents.enqueue(session, organization_id=organization_id)
    await audit.record(
        session,
        action="catalog.settings_changed",
        organization_id=organization_id,
        actor=actor,
        target_type="catalog",
        target_id=str(organization_id),
        details={"search_language": {"old": current.search_language, "new": data.search_language}},
    )
    return current.model_copy(
        update={"search_language": data.search_language, "reindex_job_id": job.id}
    )
