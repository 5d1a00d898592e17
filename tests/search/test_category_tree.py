"""Search reads the category tree from memory between changes: every change to an
organization's categories shows in its very next search, and no other organization's."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from kai.catalog import categories
from kai.identity.actor import Actor
from kai.identity.permissions import Permission
from kai.kit.db import act_for
from kai.runtime import Runtime
from kai.search import service
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

FINISH = {"key": "finish", "label": "Finish", "type": "enum", "options": ["honed", "polished"]}


async def _search(client: AsyncClient, owner: Member, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/search?mode=fulltext&{query}", headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _categories(results: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["count"] for c in results["facets"]["categories"]}


async def test_renamed_moved_and_redefined_categories_show_in_the_next_search(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    await create_material(client, owner, category_id=marble["id"], name="Carrara")
    assert _categories(await _search(client, owner, "q=carrara")) == {"Stone": 1, "Marble": 1}

    await client.patch(
        f"/api/v1/categories/{marble['id']}", json={"name": "Marbles"}, headers=owner.headers
    )
    assert _categories(await _search(client, owner, "q=carrara")) == {"Stone": 1, "Marbles": 1}

    # Moved to the top: no longer under Stone, neither in the facets nor in its subtree.
    moved = await client.patch(
        f"/api/v1/categories/{marble['id']}", json={"parent_id": None}, headers=owner.headers
    )
    assert moved.status_code == 200, moved.text
    assert _categories(await _search(client, owner, "q=carrara")) == {"Marbles": 1}
    assert (await _search(client, owner, f"category_id={stone['id']}"))["total"] == 0
    assert (await _search(client, owner, f"category_id={marble['id']}"))["total"] == 1

    # A property defined a moment ago filters the next search.
    refused = await client.get(
        "/api/v1/search?mode=fulltext&filter=finish:honed", headers=owner.headers
    )
    assert refused.status_code == 422
    await client.patch(
        f"/api/v1/categories/{marble['id']}", json={"properties": [FINISH]}, headers=owner.headers
    )
    assert (await _search(client, owner, "filter=finish:honed"))["total"] == 0

    # A new category, then the same one deleted.
    glass = await create_category(client, owner, "Glass")
    assert (await _search(client, owner, f"category_id={glass['id']}"))["total"] == 0
    deleted = await client.delete(f"/api/v1/categories/{glass['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    await create_material(client, owner, name="Float glass")
    assert _categories(await _search(client, owner, "")) == {"Marbles": 1}


async def test_an_organization_never_sees_anothers_tree(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    other = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=[FINISH])
    await create_material(client, owner, category_id=stone["id"], name="Carrara")
    await create_material(client, other, name="Carrara")
    assert (await _search(client, owner, "filter=finish:honed"))["total"] == 0

    # Their search knows neither the category nor its properties.
    theirs = await _search(client, other, f"category_id={stone['id']}")
    assert theirs["total"] == 0
    refused = await client.get(
        "/api/v1/search?mode=fulltext&filter=finish:honed", headers=other.headers
    )
    assert refused.status_code == 422
    assert _categories(await _search(client, other, "q=carrara")) == {}


async def test_a_category_created_in_a_transaction_that_rolled_back_is_not_searched(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await create_category(client, owner, "Stone")
    actor = Actor(
        kind="user",
        organization_id=owner.organization_id,
        permissions=frozenset({Permission.MATERIALS_READ, Permission.MATERIALS_WRITE}),
        user_id=owner.user.id,
        role="owner",
    )
    request = service.SearchRequest(text=None, mode="fulltext", sort="relevance")
    async with runtime.session_factory() as session:
        await act_for(session, organization_id=owner.organization_id)
        await categories.create_category(
            session, actor=actor, name="Glass", parent_id=None, description="", position=None,
            properties=[],
        )  # fmt: skip
        # Its own transaction sees it...
        seen = await categories.cached_categories(session, actor=actor)
        assert [view.category.name for view in seen] == ["Stone", "Glass"]
        await session.rollback()
    # ...and no later one does.
    async with runtime.session_factory() as session:
        await act_for(session, organization_id=owner.organization_id)
        seen = await categories.cached_categories(session, actor=actor)
        assert [view.category.name for view in seen] == ["Stone"]
        results = await service.search(session, actor=actor, request=request)
        assert results.facets is not None
        assert results.facets.categories == []
