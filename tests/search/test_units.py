"""One property key kept in different units by different categories (Tiles' thickness in mm,
Stone's in cm): filters, facets and exports compare and say each value in its own unit."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


def _thickness(unit: str, minimum: float, maximum: float) -> dict[str, Any]:
    return {"key": "thickness", "label": "Thickness", "type": "number", "unit": unit,
            "minimum": minimum, "maximum": maximum}  # fmt: skip


async def _catalog(client: AsyncClient, owner: Member) -> dict[str, dict[str, Any]]:
    tiles = await create_category(client, owner, "Tiles", properties=[_thickness("mm", 3, 50)])
    stone = await create_category(client, owner, "Stone", properties=[_thickness("cm", 1, 10)])
    for code, category, thickness in (
        ("TILE-10", tiles, 10),
        ("TILE-20", tiles, 20),
        ("SLAB-2", stone, 2),
        ("SLAB-3", stone, 3),
        ("SLAB-075IN", stone, {"value": 0.75, "unit": "in"}),
    ):
        await create_material(
            client,
            owner,
            code=code,
            name=f"Sample {code}",
            category_id=category["id"],
            properties={"thickness": thickness},
        )
    return {"tiles": tiles, "stone": stone}


async def _search(client: AsyncClient, owner: Member, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/search?mode=fulltext&{query}", headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _codes(client: AsyncClient, owner: Member, query: str) -> list[str]:
    found = await _search(client, owner, f"sort=name&limit=50&{query}")
    return sorted(item["material"]["code"] for item in found["items"])


async def test_filters_compare_each_category_in_its_own_unit(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    catalog = await _catalog(client, owner)
    in_stone = f"category_id={catalog['stone']['id']}"

    # The Stone slabs of 2 and 3 cm, and one of 0.75 in (1.905 cm).
    assert await _codes(client, owner, f"{in_stone}&filter=thickness>=2cm") == [
        "SLAB-2", "SLAB-3",
    ]  # fmt: skip
    assert await _codes(client, owner, f"{in_stone}&filter=thickness>=15mm") == [
        "SLAB-075IN", "SLAB-2", "SLAB-3",
    ]  # fmt: skip
    assert await _codes(client, owner, f"{in_stone}&filter=thickness<=0.5in") == []
    # Within Stone a bare number is in Stone's unit.
    assert await _codes(client, owner, f"{in_stone}&filter=thickness>=3") == ["SLAB-3"]
    assert await _codes(client, owner, f"{in_stone}&filter=thickness:0.75in") == ["SLAB-075IN"]

    # Across the catalog each category compares in its own unit...
    assert await _codes(client, owner, "filter=thickness>=2cm") == [
        "SLAB-2", "SLAB-3", "TILE-20",
    ]  # fmt: skip
    assert await _codes(client, owner, "filter=thickness:20mm") == ["SLAB-2", "TILE-20"]
    assert await _codes(client, owner, "filter=thickness<1cm") == []
    # ...and a bare number, which would mean mm in one and cm in the other, is refused.
    ambiguous = await client.get("/api/v1/search?filter=thickness>=2", headers=owner.headers)
    assert ambiguous.status_code == 422
    detail = ambiguous.json()["detail"]
    assert "in mm in Tiles; in cm in Stone" in detail
    assert "give the unit, as 2mm or 2cm" in detail


async def test_a_range_facet_counts_every_category_in_one_unit(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    catalog = await _catalog(client, owner)

    everything = await _search(client, owner, "facets=true")
    thickness = next(
        r for r in everything["facets"]["ranges"] if r["key"] == "properties.thickness"
    )
    assert thickness["unit"] == "mm"
    assert (thickness["minimum"], thickness["maximum"]) == (10, 30)
    assert sum(bucket["count"] for bucket in thickness["buckets"]) == 5

    stone = await _search(client, owner, f"category_id={catalog['stone']['id']}&units=imperial")
    slab = next(r for r in stone["facets"]["ranges"] if r["key"] == "properties.thickness")
    assert slab["unit"] == "in"
    # 1.905 cm is 0.75 in and 3 cm is 1.181 in (not 0.075 in: cm values read as mm).
    assert (slab["minimum"], slab["maximum"]) == (0.75, 1.181)


async def test_the_export_says_the_unit_of_every_value_and_reads_back(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)

    exported = await client.get("/api/v1/catalog/exports?format=csv", headers=owner.headers)
    assert exported.status_code == 200
    rows = {row["code"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    assert rows["TILE-20"]["properties.thickness"] == "20 mm"
    assert rows["SLAB-2"]["properties.thickness"] == "2 cm"
    assert rows["SLAB-075IN"]["properties.thickness"] == "1.905 cm"

    as_json = await client.get("/api/v1/catalog/exports?format=json", headers=owner.headers)
    by_code = {m["code"]: m for m in as_json.json()["materials"]}
    assert by_code["SLAB-3"]["properties"]["thickness"] == {"value": 3, "unit": "cm"}

    # The file imports back unchanged, each value into its own category's unit.
    reimported = await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.csv", exported.content, "text/csv")},
        data={"dry_run": "true"},
        headers=owner.headers,
    )
    assert reimported.status_code == 200, reimported.text
    report = reimported.json()
    assert report["errors"] == []


async def test_a_key_means_one_thing_across_the_catalog(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    for wrong in (
        {"key": "thickness", "label": "Thickness", "type": "text"},
        {"key": "thickness", "label": "Thickness", "type": "number", "unit": "kg"},
    ):
        refused = await client.post(
            "/api/v1/categories",
            json={"name": "Wood", "properties": [wrong]},
            headers=owner.headers,
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("/property-schema-conflict")
        assert "means one thing across the catalog" in refused.json()["detail"]
    # Another unit of the same dimension is fine.
    await create_category(client, owner, "Wood", properties=[_thickness("in", 0.1, 3)])
