"""The catalog's search language: stemming follows it once the documents are rewritten."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from kai.catalog.repository import SettingsRepository
from kai.kit.db import act_for
from kai.runtime import Runtime
from tests.catalog.factories import create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


async def _codes(client: AsyncClient, owner: Member, words: str) -> list[str]:
    """What the words find by their stems (not by a spelling correction)."""
    response = await client.get(
        "/api/v1/search", params={"q": words, "mode": "fulltext"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    if response.json()["corrected_query"] is not None:
        return []
    return [hit["material"]["code"] for hit in response.json()["items"]]


async def test_a_german_catalog_stems_german_words_once_reindexed(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await create_material(
        client, owner, name="Metro Weiß", code="MW-1",
        description="Glasierte Wandfliesen für Badezimmer und Küchen.",
    )  # fmt: skip
    settings = await client.get("/api/v1/catalog/settings", headers=owner.headers)
    assert settings.status_code == 200
    assert settings.json()["search_language"] == "english"
    assert {"english", "german", "simple"} <= set(settings.json()["available_languages"])
    # English stemming leaves the German plural alone: the singular does not find it (only
    # a spelling correction towards the catalog's own word does, and says so).
    assert await _codes(client, owner, "Wandfliese") == []
    corrected = await client.get(
        "/api/v1/search", params={"q": "Wandfliese"}, headers=owner.headers
    )
    assert corrected.json()["corrected_query"] == "wandfliesen"

    changed = await client.put(
        "/api/v1/catalog/settings", json={"search_language": "german"}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["search_language"] == "german"
    assert changed.json()["reindex_job_id"] is not None
    jobs = await client.get(
        "/api/v1/jobs", params={"kind": "catalog.reindex_documents"}, headers=owner.headers
    )
    assert [job["id"] for job in jobs.json()["items"]] == [changed.json()["reindex_job_id"]]

    # What the reindex job does, called directly.
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        assert await SettingsRepository(session).reindex_materials(owner.organization_id) == 1
    assert await _codes(client, owner, "Wandfliese") == ["MW-1"]
    assert await _codes(client, owner, "Badezimmers") == ["MW-1"]

    # Setting the same language again changes nothing and queues nothing.
    again = await client.put(
        "/api/v1/catalog/settings", json={"search_language": "german"}, headers=owner.headers
    )
    assert again.status_code == 200
    assert again.json()["reindex_job_id"] is None


@pytest.mark.parametrize(
    "body",
    [{"search_language": "klingon"}, {"search_language": "German; DROP"}, {},
     {"search_language": "german", "extra": 1}],
)  # fmt: skip
async def test_a_language_the_server_lacks_is_refused_and_nothing_changes(
    runtime: Runtime, client: AsyncClient, body: dict[str, object]
) -> None:
    owner = await member(runtime, client)
    response = await client.put("/api/v1/catalog/settings", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    settings = await client.get("/api/v1/catalog/settings", headers=owner.headers)
    assert settings.json()["search_language"] == "english"


async def test_only_those_who_manage_the_organization_change_the_language(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    editor = await member(runtime, client, role="editor", organization=owner.organization)
    assert (await client.get("/api/v1/catalog/settings", headers=editor.headers)).status_code == 200
    refused = await client.put(
        "/api/v1/catalog/settings", json={"search_language": "german"}, headers=editor.headers
    )
    assert refused.status_code == 403
