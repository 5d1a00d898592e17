"""Suggestions as someone typing into the search box sees them: each name once, typos
forgiven, current after every change, and never another organization's."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


async def _suggested(client: AsyncClient, owner: Member, typed: str) -> list[tuple[str, str]]:
    response = await client.get(f"/api/v1/search/suggest?q={typed}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return [(s["kind"], s["text"]) for s in response.json()["suggestions"]]


async def test_a_shared_name_is_suggested_once_and_typos_are_forgiven(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    for _ in range(3):
        await create_material(client, owner, name="Travertine Classico")
    await create_material(client, owner, name="Terrazzo Veneziano", code="TV-001")
    assert await _suggested(client, owner, "travertin") == [("material", "Travertine Classico")]
    assert ("material", "Terrazzo Veneziano") in await _suggested(client, owner, "terazzo")
    # Codes by their beginning, whatever the case.
    assert ("material", "Terrazzo Veneziano") in await _suggested(client, owner, "tv-0")
    # Spaces alone name nothing (every code starts with nothing).
    assert await _suggested(client, owner, "%20%20") == []


async def test_suggestions_follow_renames_and_deletions(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    first = await create_material(client, owner, name="Basalt Nero")
    second = await create_material(client, owner, name="Basalt Nero")
    assert await _suggested(client, owner, "basalt") == [("material", "Basalt Nero")]

    # One of two deleted: the name stays, borne by the other.
    await client.delete(f"/api/v1/materials/{first['id']}", headers=owner.headers)
    response = await client.get("/api/v1/search/suggest?q=basalt", headers=owner.headers)
    assert [s["id"] for s in response.json()["suggestions"]] == [second["id"]]

    renamed = await client.patch(
        f"/api/v1/materials/{second['id']}",
        json={"name": "Granite Rosa"},
        headers={**owner.headers, "If-Match": f'"{second["version"]}"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert await _suggested(client, owner, "basalt") == []
    assert await _suggested(client, owner, "granit") == [("material", "Granite Rosa")]

    # Restored, the deleted one's name comes back.
    restored = await client.post(f"/api/v1/materials/{first['id']}/restore", headers=owner.headers)
    assert restored.status_code == 200, restored.text
    assert await _suggested(client, owner, "basalt") == [("material", "Basalt Nero")]


async def test_the_same_letters_typed_again_see_what_changed_meanwhile(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    await create_material(client, owner, name="Quartzite Bianca", category_id=stone["id"])
    # A search reads the catalog into this process: suggestions are kept with it from then on.
    searched = await client.get("/api/v1/search?q=quartzite", headers=owner.headers)
    assert searched.json()["total"] == 1
    assert await _suggested(client, owner, "slate") == []
    assert await _suggested(client, owner, "slate") == []

    riven = await create_material(client, owner, name="Slate Riven", category_id=stone["id"])
    assert await _suggested(client, owner, "slate") == [("material", "Slate Riven")]
    renamed = await client.patch(
        f"/api/v1/materials/{riven['id']}",
        json={"name": "Slate Honed"},
        headers={**owner.headers, "If-Match": f'"{riven["version"]}"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert await _suggested(client, owner, "slate") == [("material", "Slate Honed")]

    category = await create_category(client, owner, "Slate roofing")
    assert ("category", "Slate roofing") in await _suggested(client, owner, "slate")
    moved = await client.patch(
        f"/api/v1/categories/{category['id']}", json={"name": "Roof tiles"}, headers=owner.headers
    )
    assert moved.status_code == 200, moved.text
    assert await _suggested(client, owner, "slate") == [("material", "Slate Honed")]
    assert ("category", "Roof tiles") in await _suggested(client, owner, "roof")


async def test_another_organizations_names_never_appear(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    other = await member(runtime, client)
    await create_material(client, other, name="Onyx Miele", code="ONX-1")
    assert await _suggested(client, owner, "onyx") == []
    assert await _suggested(client, owner, "ONX") == []
    assert await _suggested(client, other, "onyx") == [("material", "Onyx Miele")]

    # Kept answers too: both catalogs read into the process, the same letters from each.
    for each in (owner, other):
        await create_category(client, each, "Stone")
        searched = await client.get("/api/v1/search?q=onyx", headers=each.headers)
        assert searched.status_code == 200, searched.text
    for _ in range(2):
        assert await _suggested(client, other, "onyx") == [("material", "Onyx Miele")]
        assert await _suggested(client, owner, "onyx") == []
