"""Facet counts as a shopper reads them: every count agrees with the materials the search
returns, whatever the words, filters and property shapes."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

PROPERTIES: list[dict[str, Any]] = [
    {"key": "finish", "label": "Finish", "type": "enum", "options": ["honed", "polished"]},
    {"key": "rooms", "label": "Rooms", "type": "multi_enum",
     "options": ["bathroom", "kitchen", "terrace"]},
    {"key": "outdoor", "label": "Outdoor", "type": "boolean"},
    {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm"},
]  # fmt: skip


async def _facets(client: AsyncClient, owner: Member, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/search?mode=fulltext&{query}", headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _values(results: dict[str, Any], key: str) -> dict[str, int]:
    facet = next((p for p in results["facets"]["properties"] if p["key"] == key), None)
    return {v["value"]: v["count"] for v in facet["values"]} if facet else {}


async def test_facets_count_scalar_and_multi_valued_properties(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=PROPERTIES)
    rows = [
        ("Slate honed", {"finish": "honed", "rooms": ["bathroom", "kitchen"], "outdoor": True,
                         "thickness": 10}),
        ("Slate polished", {"finish": "polished", "rooms": ["kitchen"], "outdoor": False,
                            "thickness": 20}),
        ("Slate plain", {"rooms": ["terrace"], "thickness": 30}),
    ]  # fmt: skip
    for name, properties in rows:
        await create_material(
            client, owner, category_id=stone["id"], name=name, properties=properties
        )
    # One without a category: counted in the total, not under any category.
    await create_material(client, owner, name="Slate offcut")

    results = await _facets(client, owner, "q=slate")
    assert results["total"] == 4
    assert _values(results, "finish") == {"honed": 1, "polished": 1}
    assert _values(results, "rooms") == {"bathroom": 1, "kitchen": 2, "terrace": 1}
    assert _values(results, "outdoor") == {"true": 1, "false": 1}
    assert [(c["name"], c["count"]) for c in results["facets"]["categories"]] == [("Stone", 3)]
    thickness = next(r for r in results["facets"]["ranges"] if r["key"] == "properties.thickness")
    assert (thickness["minimum"], thickness["maximum"]) == (10, 30)
    assert [b["count"] for b in thickness["buckets"]] == [1, 1, 1]

    # Filters narrow the counts to exactly what the search returns.
    kitchen = await _facets(client, owner, "q=slate&filter=rooms:kitchen")
    assert kitchen["total"] == len(kitchen["items"]) == 2
    assert _values(kitchen, "finish") == {"honed": 1, "polished": 1}
    assert _values(kitchen, "outdoor") == {"true": 1, "false": 1}
    # No numbers among the matches: no range for them, and no price range at all.
    offcut = await _facets(client, owner, "q=offcut")
    assert offcut["total"] == 1
    assert offcut["facets"]["ranges"] == []
    assert offcut["facets"]["categories"] == []


async def test_facets_follow_changes_to_the_catalog(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=PROPERTIES)
    honed = await create_material(
        client, owner, category_id=stone["id"], name="Basalt", properties={"finish": "honed"},
        price="10.00", currency="EUR", status="active",
    )  # fmt: skip
    await create_material(
        client, owner, category_id=stone["id"], name="Basalt", properties={"finish": "honed"},
        price="30.00", currency="EUR", status="draft",
    )  # fmt: skip
    before = await _facets(client, owner, "")
    assert _values(before, "finish") == {"honed": 2}
    assert {s["value"]: s["count"] for s in before["facets"]["statuses"]} == {
        "active": 1, "draft": 1,
    }  # fmt: skip

    response = await client.patch(
        f"/api/v1/materials/{honed['id']}",
        json={"properties": {"finish": "polished"}, "status": "discontinued"},
        headers={**owner.headers, "If-Match": f'"{honed["version"]}"'},
    )
    assert response.status_code == 200, response.text
    after = await _facets(client, owner, "")
    assert _values(after, "finish") == {"honed": 1, "polished": 1}
    assert {s["value"]: s["count"] for s in after["facets"]["statuses"]} == {
        "discontinued": 1, "draft": 1,
    }  # fmt: skip
    price = next(r for r in after["facets"]["ranges"] if r["key"] == "price")
    assert (price["minimum"], price["maximum"]) == (10, 30)
    assert [b["count"] for b in price["buckets"]] == [1, 1]


async def test_facets_of_a_catalog_without_property_schemas(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await create_category(client, owner, "Tiles")
    rows = [
        ("Slate", tiles["id"], ["grey", "outdoor"], "active"),
        ("Slate", tiles["id"], ["outdoor", "grey"], "draft"),
        ("Slate", None, ["outdoor"], "active"),
        ("Slate", None, [], "discontinued"),
    ]
    for name, category_id, tags, status in rows:
        await create_material(
            client, owner, category_id=category_id, name=name, tags=tags, status=status
        )

    for query in ("q=slate", ""):
        results = await _facets(client, owner, query)
        assert results["total"] == 4
        facets = results["facets"]
        assert [(c["name"], c["count"]) for c in facets["categories"]] == [("Tiles", 2)]
        # Most used first, then by name; a tag counts once per material whatever its place.
        assert [(t["value"], t["count"]) for t in facets["tags"]] == [("outdoor", 3), ("grey", 2)]
        assert {s["value"]: s["count"] for s in facets["statuses"]} == {
            "active": 2, "draft": 1, "discontinued": 1,
        }  # fmt: skip
        assert facets["properties"] == []
        assert facets["ranges"] == []


async def test_counting_alone_agrees_with_the_search_and_keeps_to_the_organization(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=PROPERTIES)
    rows = [
        ("Slate honed", {"finish": "honed", "rooms": ["bathroom"], "thickness": 10}),
        ("Slate polished", {"finish": "polished", "rooms": ["kitchen"], "thickness": 20}),
        ("Basalt honed", {"finish": "honed", "rooms": ["kitchen"], "thickness": 30}),
    ]
    for name, properties in rows:
        await create_material(
            client, owner, category_id=stone["id"], name=name, properties=properties
        )
    # Another organization's slate is counted nowhere here.
    stranger = await member(runtime, client)
    await create_material(client, stranger, name="Slate honed")

    for query in ("q=slate", "q=honed&filter=rooms:kitchen", "", f"category_id={stone['id']}"):
        searched = await _facets(client, owner, query)
        response = await client.get(
            f"/api/v1/search/facets?mode=fulltext&{query}", headers=owner.headers
        )
        assert response.status_code == 200, response.text
        counted = response.json()
        assert counted["total"] == searched["total"] == len(searched["items"])
        assert counted["facets"] == searched["facets"]
        assert "items" not in counted

    # A page asking for results without counts gets the page's size, not the match count.
    plain = await client.get(
        "/api/v1/search?mode=fulltext&q=slate&facets=false&limit=1", headers=owner.headers
    )
    assert plain.json()["facets"] is None
    assert len(plain.json()["items"]) == 1

    # The same checks as the search's: a filter on a key no category keeps is the caller's error.
    wrong = await client.get("/api/v1/search/facets?filter=colour:red", headers=owner.headers)
    assert wrong.status_code == 422
    assert wrong.headers["content-type"] == "application/problem+json"
