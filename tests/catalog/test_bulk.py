"""Many materials at once: created or updated by code, or deleted, all or nothing."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


async def _stone(client: AsyncClient, owner: Member) -> dict[str, Any]:
    return await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)


async def _codes(client: AsyncClient, owner: Member) -> set[str]:
    page = await client.get("/api/v1/materials?limit=200", headers=owner.headers)
    return {item["code"] for item in page.json()["items"]}


def _records() -> list[dict[str, Any]]:
    return [
        {"code": "B-1", "name": "Bianco honed", "category": "Stone",
         "properties": {"thickness": 10, "finish": "honed"}, "price": "55.00", "currency": "EUR"},
        {"code": "B-2", "name": "Nero polished", "category": "Stone",
         "properties.thickness": "0.5 in", "properties.finish": "polished",
         "tags": "black; kitchen"},
        {"code": "B-3", "name": "Jura tumbled", "category": "Stone",
         "properties": {"thickness": 12, "finish": "tumbled"}, "status": "active"},
    ]  # fmt: skip


async def test_records_are_created_and_existing_codes_updated_in_one_request(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await _stone(client, owner)
    existing = await create_material(
        client, owner, category_id=stone["id"], code="B-0", name="Old name",
        description="Kept as it is.", properties={"thickness": 20},
    )  # fmt: skip
    records = [*_records(), {"code": "b-0", "name": "New name"}]

    response = await client.post(
        "/api/v1/materials/bulk", json={"materials": records}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["error_count"]) == (3, 1, 0)
    assert report["written"] is True
    assert await _codes(client, owner) == {"B-0", "B-1", "B-2", "B-3"}

    updated = (
        await client.get(f"/api/v1/materials/{existing['id']}", headers=owner.headers)
    ).json()
    assert (updated["name"], updated["description"]) == ("New name", "Kept as it is.")
    versions = await client.get(
        f"/api/v1/materials/{existing['id']}/versions", headers=owner.headers
    )
    assert versions.json()["items"][0]["action"] == "imported"
    search = await client.get(
        "/api/v1/search", params={"q": "nero", "mode": "fulltext"}, headers=owner.headers
    )
    (hit,) = search.json()["items"]
    assert hit["material"]["properties"]["thickness"] == {"value": 12.7, "unit": "mm"}


async def test_one_bad_record_refuses_the_lot_and_names_every_problem(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    records = _records()
    records[1]["properties.thickness"] = "thick"
    records[2]["category"] = "Stone > Nowhere"

    response = await client.post(
        "/api/v1/materials/bulk", json={"materials": records}, headers=owner.headers
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("bulk-rejected")
    assert {tuple(error["loc"][:3]) for error in problem["errors"]} == {
        ("body", "materials", 1),
        ("body", "materials", 2),
    }
    assert await _codes(client, owner) == set()

    skipped = await client.post(
        "/api/v1/materials/bulk",
        json={"materials": records, "mode": "skip_invalid"},
        headers=owner.headers,
    )
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["created"] == 1
    assert {error["index"] for error in skipped.json()["errors"]} == {1, 2}
    assert await _codes(client, owner) == {"B-1"}


async def test_a_dry_run_reports_and_writes_nothing(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    response = await client.post(
        "/api/v1/materials/bulk",
        json={"materials": _records(), "dry_run": True},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["valid"], response.json()["written"]) == (3, False)
    assert await _codes(client, owner) == set()


@pytest.mark.parametrize(
    "body",
    [{"materials": []}, {"materials": [{"code": "X"}] * 1001}, {"materials": "B-1"},
     {"materials": [["B-1"]]}, {"materials": _records(), "mode": "sometimes"},
     {"materials": _records(), "extra": True}, {}],
)  # fmt: skip
async def test_malformed_bulk_requests_are_refused(
    runtime: Runtime, client: AsyncClient, body: dict[str, Any]
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    response = await client.post("/api/v1/materials/bulk", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await _codes(client, owner) == set()


async def test_many_materials_are_deleted_together_or_not_at_all(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    other = await member(runtime, client)
    mine = [await create_material(client, owner) for _ in range(3)]
    theirs = await create_material(client, other)

    refused = await client.post(
        "/api/v1/materials/bulk/delete",
        json={"ids": [mine[0]["id"], theirs["id"]]},
        headers=owner.headers,
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["errors"][0]["loc"] == ["body", "ids", 1]
    assert len(await _codes(client, owner)) == 3

    deleted = await client.post(
        "/api/v1/materials/bulk/delete",
        json={"ids": [mine[0]["id"], mine[1]["id"], mine[0]["id"]]},
        headers=owner.headers,
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": 2}
    assert await _codes(client, owner) == {mine[2]["code"]}
    restored = await client.post(
        f"/api/v1/materials/{mine[0]['id']}/restore", headers=owner.headers
    )
    assert restored.status_code == 200


async def test_bulk_writes_need_the_write_permission(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    analyst = await member(runtime, client, role="analyst", organization=owner.organization)
    material = await create_material(client, owner)
    for path, body in (
        ("/api/v1/materials/bulk", {"materials": _records()}),
        ("/api/v1/materials/bulk/delete", {"ids": [material["id"]]}),
    ):
        response = await client.post(path, json=body, headers=analyst.headers)
        assert response.status_code == 403, path
