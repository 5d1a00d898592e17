"""Category trees with inherited property schemas, as an editor builds them."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category, create_material
from tests.identity.factories import member
from tests.pages import every_page

pytestmark = pytest.mark.database


async def test_a_subcategory_inherits_and_extends_its_ancestors_schema(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    marble = await create_category(
        client,
        owner,
        "Marble",
        parent_id=stone["id"],
        properties=[{"key": "origin", "label": "Quarry region", "type": "text"}],
    )
    carrara = await create_category(client, owner, "Carrara", parent_id=marble["id"])

    assert carrara["path"] == [stone["id"], marble["id"]]
    assert [p["key"] for p in carrara["effective_properties"]] == [
        "thickness", "finish", "frost_resistant", "size", "origin",
    ]  # fmt: skip
    assert carrara["properties"] == []

    listed = (await client.get("/api/v1/categories", headers=owner.headers)).json()
    assert [c["name"] for c in listed["items"]] == ["Stone", "Marble", "Carrara"]


async def test_a_subcategory_may_narrow_but_not_retype_an_inherited_property(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    narrowed = await create_category(
        client,
        owner,
        "Slabs",
        parent_id=stone["id"],
        properties=[{"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm",
                     "minimum": 20, "maximum": 30, "required": True}],
    )  # fmt: skip
    thickness = next(p for p in narrowed["effective_properties"] if p["key"] == "thickness")
    assert (thickness["minimum"], thickness["maximum"]) == (20, 30)

    retyped = await client.post(
        "/api/v1/categories",
        json={"name": "Mosaic", "parent_id": stone["id"],
              "properties": [{"key": "thickness", "label": "Thickness", "type": "text"}]},
        headers=owner.headers,
    )  # fmt: skip
    assert retyped.status_code == 422
    assert retyped.json()["type"].endswith("/property-schema-conflict")

    # Nor may the ancestor change under its descendants' feet.
    clash = await client.patch(
        f"/api/v1/categories/{stone['id']}",
        json={"properties": [{"key": "thickness", "label": "Thickness", "type": "integer"}]},
        headers=owner.headers,
    )
    assert clash.status_code == 422
    kept = (await client.get(f"/api/v1/categories/{stone['id']}", headers=owner.headers)).json()
    assert kept["properties"][0]["type"] == "number"


async def test_invalid_property_definitions_are_refused_with_their_field(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    for definition in (
        {"key": "note", "label": "Note", "type": "text", "unit": "mm"},
        {"key": "finish", "label": "Finish", "type": "enum"},
        {"key": "weight", "label": "Weight", "type": "number", "minimum": 5, "maximum": 1},
        {"key": "Bad Key", "label": "Bad", "type": "text"},
        {"key": "weight", "label": "Weight", "type": "number", "unit": "furlong"},
    ):
        response = await client.post(
            "/api/v1/categories",
            json={"name": "Wood", "properties": [definition]},
            headers=owner.headers,
        )
        assert response.status_code == 422, definition
        assert response.headers["content-type"] == "application/problem+json"
    listed = (await client.get("/api/v1/categories", headers=owner.headers)).json()
    assert listed == {"items": [], "next_cursor": None}


async def test_siblings_have_distinct_names_cousins_need_not(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    wood = await create_category(client, owner, "Wood")
    await create_category(client, owner, "Natural", parent_id=stone["id"])
    await create_category(client, owner, "Natural", parent_id=wood["id"])
    again = await client.post(
        "/api/v1/categories",
        json={"name": "natural", "parent_id": stone["id"]},
        headers=owner.headers,
    )
    assert again.status_code == 409
    top = await client.post("/api/v1/categories", json={"name": "STONE"}, headers=owner.headers)
    assert top.status_code == 409


async def test_moving_a_category_carries_its_subtree_and_refuses_cycles(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    carrara = await create_category(client, owner, "Carrara", parent_id=marble["id"])
    ceramics = await create_category(client, owner, "Ceramics")

    cycle = await client.patch(
        f"/api/v1/categories/{stone['id']}",
        json={"parent_id": carrara["id"]},
        headers=owner.headers,
    )
    assert cycle.status_code == 422

    moved = await client.patch(
        f"/api/v1/categories/{marble['id']}",
        json={"parent_id": ceramics["id"]},
        headers=owner.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["path"] == [ceramics["id"]]
    below = (await client.get(f"/api/v1/categories/{carrara['id']}", headers=owner.headers)).json()
    assert below["path"] == [ceramics["id"], marble["id"]]
    # It no longer inherits Stone's schema.
    assert below["effective_properties"] == []

    to_top = await client.patch(
        f"/api/v1/categories/{marble['id']}", json={"parent_id": None}, headers=owner.headers
    )
    assert to_top.json()["path"] == []
    assert to_top.json()["parent_id"] is None


async def test_a_category_is_deleted_only_when_empty(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    material = await create_material(client, owner, category_id=marble["id"])

    assert (
        await client.delete(f"/api/v1/categories/{stone['id']}", headers=owner.headers)
    ).status_code == 409
    in_use = await client.delete(f"/api/v1/categories/{marble['id']}", headers=owner.headers)
    assert in_use.status_code == 409
    assert "material" in in_use.json()["detail"]

    # A deleted material may come back, so it still holds its category.
    await client.delete(f"/api/v1/materials/{material['id']}", headers=owner.headers)
    assert (
        await client.delete(f"/api/v1/categories/{marble['id']}", headers=owner.headers)
    ).status_code == 409
    empty = await create_category(client, owner, "Granite", parent_id=stone["id"])
    assert (
        await client.delete(f"/api/v1/categories/{empty['id']}", headers=owner.headers)
    ).status_code == 204


async def test_reading_needs_materials_read_and_changing_needs_materials_write(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    viewer = await member(runtime, client, role="member", organization=owner.organization)
    assert (await client.get("/api/v1/categories", headers=viewer.headers)).status_code == 200
    refused = await client.patch(
        f"/api/v1/categories/{stone['id']}", json={"name": "Rock"}, headers=viewer.headers
    )
    assert refused.status_code == 403


async def test_a_subcategory_may_not_loosen_what_its_parent_promises(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await create_category(client, owner, "Tiles", properties=TILE_PROPERTIES)

    async def child(properties: list[dict[str, object]]) -> dict[str, object]:
        response = await client.post(
            "/api/v1/categories",
            json={"name": "Porcelain", "parent_id": tiles["id"], "properties": properties},
            headers=owner.headers,
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/property-schema-conflict")
        detail: dict[str, object] = response.json()
        return detail

    wider = await child(
        [{"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm",
          "minimum": 1, "maximum": 100, "required": True}]
    )  # fmt: skip
    assert "minimum is 3 mm in a parent category (1 here)" in str(wider["detail"])
    assert "maximum is 40 mm in a parent category (100 here)" in str(wider["detail"])
    sparkly = await child(
        [{"key": "finish", "label": "Finish", "type": "enum", "options": ["glossy", "sparkly"]}]
    )
    assert "glossy and sparkly are not among" in str(sparkly["detail"])
    optional = await child(
        [{"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm"}]
    )
    assert "required in a parent category" in str(optional["detail"])

    listed = (await client.get("/api/v1/categories", headers=owner.headers)).json()
    assert [category["name"] for category in listed["items"]] == ["Tiles"]


async def test_taking_away_what_materials_use_is_refused_with_their_count(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await create_category(client, owner, "Tiles", properties=TILE_PROPERTIES)
    porcelain = await create_category(client, owner, "Porcelain", parent_id=tiles["id"])
    for finish, thickness in (("honed", 10), ("honed", 12), ("polished", 30)):
        await create_material(
            client,
            owner,
            category_id=porcelain["id"],
            properties={"thickness": thickness, "finish": finish},
        )
    thickness, finish, frost, size = (dict(p) for p in TILE_PROPERTIES)

    async def redefine(*properties: dict[str, object]) -> dict[str, object]:
        response = await client.patch(
            f"/api/v1/categories/{tiles['id']}",
            json={"properties": list(properties)},
            headers=owner.headers,
        )
        body: dict[str, object] = response.json()
        body["status"] = response.status_code
        return body

    no_honed = await redefine(
        thickness, {**finish, "options": ["polished", "brushed"]}, frost, size
    )
    assert no_honed["status"] == 409
    assert str(no_honed["type"]).endswith("/property-in-use")
    assert str(no_honed["detail"]).startswith("2 material(s)")
    assert "finish of 2" in str(no_honed["detail"])

    no_finish = await redefine(thickness, frost, size)
    assert no_finish["status"] == 409
    assert str(no_finish["detail"]).startswith("3 material(s)")

    thinner = await redefine({**thickness, "maximum": 20}, finish, frost, size)
    assert thinner["status"] == 409
    assert str(thinner["detail"]).startswith("1 material(s)")
    assert "must be between 3 and 20 mm (it is 30 mm)" in str(thinner["detail"])

    # Nothing changed: the materials still fit, and what nobody uses may go.
    unused = await redefine(
        {**thickness, "maximum": 30}, {**finish, "options": ["polished", "honed"]}, frost
    )
    assert unused["status"] == 200, unused
    schema = {p["key"]: p for p in unused["effective_properties"]}
    assert schema["finish"]["options"] == ["polished", "honed"]
    assert "size" not in schema


async def test_the_tree_comes_in_pages_parents_first_siblings_by_position(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)

    async def add(name: str, position: int, parent: dict[str, Any] | None = None) -> dict[str, Any]:
        created = await client.post(
            "/api/v1/categories",
            json={"name": name, "position": position, "parent_id": parent and parent["id"],
                  "properties": TILE_PROPERTIES if name == "Stone" else []},
            headers=owner.headers,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        return created.json()  # type: ignore[no-any-return]

    stone = await add("Stone", 1)
    tiles = await add("Tiles", 0)
    await add("Porcelain", 1, tiles)
    await add("Ceramic", 0, tiles)
    marble = await add("Marble", 0, stone)
    await add("Granite", 1, stone)
    await add("Other", 2, stone)
    await add("Other", 2, tiles)
    await add("Carrara", 0, marble)

    whole = (await client.get("/api/v1/categories", headers=owner.headers)).json()
    assert whole["next_cursor"] is None
    assert [c["name"] for c in whole["items"]] == [
        "Tiles", "Stone", "Ceramic", "Marble", "Granite", "Porcelain", "Other", "Other",
        "Carrara",
    ]  # fmt: skip
    for limit in (1, 2, 4):
        pages = await every_page(client, "/api/v1/categories", headers=owner.headers, limit=limit)
        assert [c for page in pages for c in page] == whole["items"]
        seen: set[str] = set()
        for page in pages:
            for category in page:
                assert category["parent_id"] is None or category["parent_id"] in seen
                seen.add(category["id"])
    # A category on a later page still carries what it inherits.
    carrara = whole["items"][-1]
    assert "thickness" in [p["key"] for p in carrara["effective_properties"]]
