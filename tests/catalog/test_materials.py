"""Materials as editors keep them: typed properties, units, codes, versions, concurrency,
soft delete."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category, create_material, unique_code
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


async def _tiles(client: AsyncClient, owner: Member) -> dict[str, Any]:
    return await create_category(client, owner, "Tiles", properties=TILE_PROPERTIES)


async def test_properties_are_stored_canonically_and_shown_in_the_readers_units(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await _tiles(client, owner)
    created = await create_material(
        client,
        owner,
        category_id=tiles["id"],
        properties={
            "thickness": {"value": 0.5, "unit": "in"},
            "finish": "Honed",
            "size": {"length": 600, "width": 300, "thickness": 10},
        },
        price="45.9",
        currency="eur",
        tags=["Marble", "bathroom", "marble"],
    )
    assert created["properties"]["thickness"] == {"value": 12.7, "unit": "mm"}
    assert created["properties"]["finish"] == "honed"
    assert created["price"] == "45.90"
    assert created["currency"] == "EUR"
    assert created["tags"] == ["marble", "bathroom"]
    assert created["version"] == 1
    assert created["units"] == "metric"

    url = f"/api/v1/materials/{created['id']}"
    imperial = (await client.get(f"{url}?units=imperial", headers=owner.headers)).json()
    assert imperial["properties"]["thickness"] == {"value": 0.5, "unit": "in"}
    assert imperial["properties"]["size"]["unit"] == "in"
    assert imperial["properties"]["size"]["length"] == pytest.approx(23.622)

    # A person who prefers imperial units gets them without asking.
    await client.patch("/api/v1/me", json={"units": "imperial"}, headers=owner.headers)
    preferred = (await client.get(url, headers=owner.headers)).json()
    assert preferred["units"] == "imperial"
    assert preferred["properties"]["thickness"]["unit"] == "in"


async def test_every_invalid_property_is_reported_and_nothing_is_written(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await _tiles(client, owner)
    response = await client.post(
        "/api/v1/materials",
        json={
            "name": "Broken",
            "code": unique_code(),
            "category_id": tiles["id"],
            "properties": {
                "finish": "sandblasted",
                "frost_resistant": "yes",
                "size": {"length": "wide"},
                "colour_code": "#FFF",
            },
        },
        headers=owner.headers,
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/invalid-properties")
    failed = {tuple(error["loc"]) for error in problem["errors"]}
    assert failed == {
        ("body", "properties", "thickness"),  # required, missing
        ("body", "properties", "finish"),
        ("body", "properties", "frost_resistant"),
        ("body", "properties", "size"),
        ("body", "properties", "colour_code"),  # not in the schema
    }
    out_of_range = await client.post(
        "/api/v1/materials",
        json={"name": "Too thick", "code": unique_code(), "category_id": tiles["id"],
              "properties": {"thickness": {"value": 3, "unit": "in"}}},
        headers=owner.headers,
    )  # fmt: skip
    assert out_of_range.status_code == 422
    assert "40" in out_of_range.json()["errors"][0]["msg"]
    listed = (await client.get("/api/v1/materials", headers=owner.headers)).json()
    assert listed["items"] == []


async def test_bad_values_of_the_materials_own_fields_are_refused(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    for payload in (
        {"name": "Priced", "code": unique_code(), "price": "12.00"},
        {"name": "Negative", "code": unique_code(), "price": "-1", "currency": "EUR"},
        {"name": "", "code": unique_code()},
        {"name": "No code", "code": "   "},
        {"name": "Odd currency", "code": unique_code(), "price": "1", "currency": "EURO"},
        {
            "name": "Lost",
            "code": unique_code(),
            "category_id": "0190d7c4-0000-7000-8000-000000000000",
        },
    ):
        response = await client.post("/api/v1/materials", json=payload, headers=owner.headers)
        assert response.status_code == 422, payload
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"] == []


async def test_a_misspelt_field_is_refused_by_name_not_dropped(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await _tiles(client, owner)
    refused = await client.post(
        "/api/v1/materials",
        json={
            "name": "Carrara",
            "code": unique_code(),
            "categroy_id": tiles["id"],
            "prise": "39.90",
            "currency": "EUR",
        },
        headers=owner.headers,
    )

    assert refused.status_code == 422
    assert {(tuple(error["loc"]), error["type"]) for error in refused.json()["errors"]} >= {
        (("body", "categroy_id"), "extra_forbidden"),
        (("body", "prise"), "extra_forbidden"),
    }
    assert (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"] == []


async def test_a_code_names_one_live_material(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    first = await create_material(client, owner, code="CAR-600")
    taken = await client.post(
        "/api/v1/materials", json={"name": "Copy", "code": "car-600"}, headers=owner.headers
    )
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/code-taken")

    # Deleting frees the code; the deleted one cannot come back while another holds it.
    await client.delete(f"/api/v1/materials/{first['id']}", headers=owner.headers)
    await create_material(client, owner, code="CAR-600")
    blocked = await client.post(f"/api/v1/materials/{first['id']}/restore", headers=owner.headers)
    assert blocked.status_code == 409

    # Another organization has codes of its own.
    other = await member(runtime, client)
    await create_material(client, other, code="CAR-600")


async def test_a_stale_write_is_refused_and_a_current_one_is_versioned(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await _tiles(client, owner)
    created = await create_material(
        client, owner, category_id=tiles["id"], properties={"thickness": 10}
    )
    url = f"/api/v1/materials/{created['id']}"
    fetched = await client.get(url, headers=owner.headers)
    etag = fetched.headers["etag"]
    assert etag == '"1"'

    first = await client.patch(
        url,
        json={"name": "Carrara polished", "properties": {"finish": "polished", "thickness": 12}},
        headers={**owner.headers, "If-Match": etag},
    )
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'

    # A second editor still holding version 1 cannot silently overwrite the change.
    second = await client.patch(
        url, json={"name": "Carrara matt"}, headers={**owner.headers, "If-Match": etag}
    )
    assert second.status_code == 412
    assert second.json()["type"].endswith("/precondition-failed")
    current = (await client.get(url, headers=owner.headers)).json()
    assert current["name"] == "Carrara polished"
    assert current["properties"]["finish"] == "polished"

    versions = (await client.get(f"{url}/versions", headers=owner.headers)).json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["action"] == "updated"
    assert versions[0]["changes"]["name"] == {
        "old": "Carrara honed 60x60",
        "new": "Carrara polished",
    }
    assert versions[0]["changes"]["properties.thickness"] == {"old": 10.0, "new": 12.0}
    assert versions[0]["changes"]["properties.finish"] == {"old": None, "new": "polished"}
    assert versions[0]["changed_by"] == f"user:{owner.user.id}"
    assert versions[1]["action"] == "created"

    # Removing a property with null, and a write that changes nothing makes no version.
    removed = await client.patch(url, json={"properties": {"finish": None}}, headers=owner.headers)
    assert "finish" not in removed.json()["properties"]
    same = await client.patch(url, json={"name": "Carrara polished"}, headers=owner.headers)
    assert same.json()["version"] == removed.json()["version"] == 3


async def test_a_deleted_material_disappears_and_can_be_restored(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner)
    url = f"/api/v1/materials/{created['id']}"
    stale = await client.delete(url, headers={**owner.headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    assert (await client.delete(url, headers=owner.headers)).status_code == 204

    assert (await client.get(url, headers=owner.headers)).status_code == 404
    assert (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"] == []
    shown = await client.get(f"{url}?include_deleted=true", headers=owner.headers)
    assert shown.json()["deleted_at"] is not None

    restored = await client.post(f"{url}/restore", headers=owner.headers)
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    actions = [
        v["action"]
        for v in (await client.get(f"{url}/versions", headers=owner.headers)).json()["items"]
    ]
    assert actions == ["restored", "deleted", "created"]


async def test_changing_the_category_checks_the_new_schema(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await _tiles(client, owner)
    plain = await create_category(client, owner, "Accessories")
    loose = await create_material(client, owner, category_id=plain["id"])
    refused = await client.patch(
        f"/api/v1/materials/{loose['id']}",
        json={"category_id": tiles["id"]},
        headers=owner.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "properties", "thickness"]
    moved = await client.patch(
        f"/api/v1/materials/{loose['id']}",
        json={"category_id": tiles["id"], "properties": {"thickness": 9}},
        headers=owner.headers,
    )
    assert moved.status_code == 200, moved.text


async def test_lists_filter_by_category_subtree_status_and_tag(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    wood = await create_category(client, owner, "Wood")
    carrara = await create_material(
        client, owner, category_id=marble["id"], status="active", tags=["white"]
    )
    oak = await create_material(client, owner, category_id=wood["id"], tags=["white"])

    async def codes(query: str) -> list[str]:
        page = await client.get(f"/api/v1/materials?{query}", headers=owner.headers)
        assert page.status_code == 200, page.text
        return [item["code"] for item in page.json()["items"]]

    assert await codes(f"category_id={stone['id']}") == [carrara["code"]]
    assert await codes("status=draft") == [oak["code"]]
    assert await codes("tag=WHITE") == [oak["code"], carrara["code"]]
    assert await codes("limit=1") == [oak["code"]]


async def test_members_read_editors_write(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner)
    reader = await member(runtime, client, role="member", organization=owner.organization)
    editor = await member(runtime, client, role="editor", organization=owner.organization)
    url = f"/api/v1/materials/{created['id']}"
    assert (await client.get(url, headers=reader.headers)).status_code == 200
    assert (
        await client.patch(url, json={"name": "Mine"}, headers=reader.headers)
    ).status_code == 403
    assert (
        await client.patch(url, json={"name": "Ours"}, headers=editor.headers)
    ).status_code == 200
