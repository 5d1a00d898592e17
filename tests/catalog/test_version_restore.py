"""Restoring a material to an earlier version: its values come back exactly, as a new version
that says where they came from, through the same checks, permissions and concurrency as an
edit."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient, Response

from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category, create_material, unique_code
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

# What a restore brings back: everything but the bookkeeping of the change itself.
BOOKKEEPING = ("version", "updated_at", "updated_by")


def _values(material: dict[str, Any]) -> dict[str, Any]:
    return {field: value for field, value in material.items() if field not in BOOKKEEPING}


async def _restore(
    client: AsyncClient, who: Member, material_id: str, version: int, **headers: str
) -> Response:
    return await client.post(
        f"/api/v1/materials/{material_id}/versions/{version}/restore",
        headers={**who.headers, **headers},
    )


async def _versions(client: AsyncClient, who: Member, material_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/api/v1/materials/{material_id}/versions", headers=who.headers)
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def _edit(
    client: AsyncClient, who: Member, material_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    response = await client.patch(
        f"/api/v1/materials/{material_id}", json=changes, headers=who.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_earlier_version_comes_back_exactly_as_a_new_version(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await create_category(client, owner, "Tiles", properties=TILE_PROPERTIES)
    first = await create_material(
        client,
        owner,
        category_id=tiles["id"],
        description="Honed white marble.",
        properties={
            "thickness": {"value": 0.5, "unit": "in"},
            "finish": "honed",
            "size": {"length": 600, "width": 300, "thickness": 10},
        },
        price="45.90",
        currency="EUR",
        tags=["marble", "bathroom"],
    )
    material_id = first["id"]
    second = await _edit(
        client,
        owner,
        material_id,
        {
            "name": "Carrara polished",
            "properties": {"thickness": 20, "finish": None, "frost_resistant": True},
            "tags": ["marble"],
            "price": "1200",
            "currency": "JPY",
            "status": "active",
        },
    )
    await _edit(client, owner, material_id, {"description": "", "properties": {"size": None}})

    restored = await _restore(client, owner, material_id, 1, **{"If-Match": '"3"'})

    assert restored.status_code == 200, restored.text
    assert restored.headers["etag"] == '"4"'
    assert restored.json()["version"] == 4
    assert _values(restored.json()) == _values(first)
    shown = await client.get(f"/api/v1/materials/{material_id}", headers=owner.headers)
    assert _values(shown.json()) == _values(first)
    assert shown.json()["properties"]["thickness"] == {"value": 12.7, "unit": "mm"}

    versions = await _versions(client, owner, material_id)
    assert [v["version"] for v in versions] == [4, 3, 2, 1]  # nothing rewritten
    newest = versions[0]
    assert newest["action"] == "updated"
    assert newest["restored_from"] == 1
    assert newest["changed_by"] == f"user:{owner.user.id}"
    assert newest["changes"]["name"] == {"old": "Carrara polished", "new": first["name"]}
    assert newest["changes"]["price"] == {"old": "1200", "new": "45.90"}
    assert newest["changes"]["properties.finish"] == {"old": None, "new": "honed"}
    assert newest["changes"]["properties.frost_resistant"] == {"old": True, "new": None}
    assert [v["restored_from"] for v in versions[1:]] == [None, None, None]

    # Any version, not only the first: the one in between comes back as well.
    again = await _restore(client, owner, material_id, 2)
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 5
    assert _values(again.json()) == _values(second)

    events = await client.get(
        "/api/v1/audit-events?action=material.version_restored", headers=owner.headers
    )
    assert [
        (e["details"]["restored_from"], e["details"]["version"]) for e in events.json()["items"]
    ] == [(2, 5), (1, 4)]


async def test_restoring_the_values_a_material_has_already_makes_no_version(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner, name="Basalt")
    material_id = created["id"]
    await _edit(client, owner, material_id, {"name": "Basalt grey"})
    await _edit(client, owner, material_id, {"name": "Basalt"})

    current = await _restore(client, owner, material_id, 3)
    same = await _restore(client, owner, material_id, 1)

    for answer in (current, same):
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 3
        assert answer.headers["etag"] == '"3"'
    assert len(await _versions(client, owner, material_id)) == 3
    events = await client.get(
        "/api/v1/audit-events?action=material.version_restored", headers=owner.headers
    )
    assert events.json()["items"] == []


async def test_values_todays_schema_refuses_are_named_and_nothing_is_written(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await create_category(client, owner, "Tiles", properties=TILE_PROPERTIES)
    created = await create_material(
        client, owner, category_id=tiles["id"], properties={"thickness": 35}
    )
    material_id = created["id"]
    await _edit(client, owner, material_id, {"properties": {"thickness": 20}})
    # Tiles are thinner now: the 35 mm of version 1 no longer fit.
    thinner = [
        {**definition, "maximum": 30} if definition["key"] == "thickness" else definition
        for definition in TILE_PROPERTIES
    ]
    narrowed = await client.patch(
        f"/api/v1/categories/{tiles['id']}", json={"properties": thinner}, headers=owner.headers
    )
    assert narrowed.status_code == 200, narrowed.text

    refused = await _restore(client, owner, material_id, 1)

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/invalid-properties")
    assert problem["detail"] == (
        "Version 1 no longer fits its category's properties: thickness must be between 3 and "
        "30 mm (it is 35 mm). Change the material by hand instead."
    )
    assert [error["loc"] for error in problem["errors"]] == [["properties", "thickness"]]
    shown = await client.get(f"/api/v1/materials/{material_id}", headers=owner.headers)
    assert shown.json()["version"] == 2
    assert shown.json()["properties"]["thickness"] == {"value": 20.0, "unit": "mm"}
    assert len(await _versions(client, owner, material_id)) == 2


async def test_a_version_filed_under_a_deleted_category_is_refused(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    old = await create_category(client, owner, "Samples")
    new = await create_category(client, owner, "Stone")
    created = await create_material(client, owner, category_id=old["id"])
    await _edit(client, owner, created["id"], {"category_id": new["id"]})
    gone = await client.delete(f"/api/v1/categories/{old['id']}", headers=owner.headers)
    assert gone.status_code == 204, gone.text

    refused = await _restore(client, owner, created["id"], 1)

    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/unknown-category")
    assert refused.json()["detail"] == (
        "Version 1 was filed under a category that no longer exists. "
        "Change the material by hand instead."
    )
    shown = await client.get(f"/api/v1/materials/{created['id']}", headers=owner.headers)
    assert (shown.json()["category_id"], shown.json()["version"]) == (new["id"], 2)


async def test_a_code_another_material_took_meanwhile_is_a_conflict(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner, code="CAR-600")
    await _edit(client, owner, created["id"], {"code": "CAR-601"})
    await create_material(client, owner, code="CAR-600")

    refused = await _restore(client, owner, created["id"], 1)

    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/code-taken")
    assert "'CAR-600'" in refused.json()["detail"]
    shown = await client.get(f"/api/v1/materials/{created['id']}", headers=owner.headers)
    assert (shown.json()["code"], shown.json()["version"]) == ("CAR-601", 2)


async def test_a_restore_based_on_a_stale_version_is_refused(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner, name="Slate")
    await _edit(client, owner, created["id"], {"name": "Slate black"})
    # Someone else changed it after this editor read version 2.
    await _edit(client, owner, created["id"], {"name": "Slate anthracite"})

    stale = await _restore(client, owner, created["id"], 1, **{"If-Match": '"2"'})

    assert stale.status_code == 412
    assert stale.json()["type"].endswith("/precondition-failed")
    assert stale.headers["etag"] == '"3"'
    shown = await client.get(f"/api/v1/materials/{created['id']}", headers=owner.headers)
    assert (shown.json()["name"], shown.json()["version"]) == ("Slate anthracite", 3)


async def test_unknown_versions_deleted_materials_and_other_organizations_are_not_found(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner, code=unique_code())
    await _edit(client, owner, created["id"], {"name": "Renamed"})

    unknown = await _restore(client, owner, created["id"], 9)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/material-version-not-found")
    assert (await _restore(client, owner, created["id"], 0)).status_code == 422

    stranger = await member(runtime, client)
    foreign = await _restore(client, stranger, created["id"], 1)
    assert foreign.status_code == 404
    assert foreign.json()["type"].endswith("/material-not-found")
    shown = await client.get(f"/api/v1/materials/{created['id']}", headers=owner.headers)
    assert (shown.json()["name"], shown.json()["version"]) == ("Renamed", 2)

    # A deleted material comes back from the trash first, as it is edited.
    await client.delete(f"/api/v1/materials/{created['id']}", headers=owner.headers)
    trashed = await _restore(client, owner, created["id"], 1)
    assert trashed.status_code == 404
    assert trashed.json()["type"].endswith("/material-not-found")


async def test_readers_cannot_restore_editors_can(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    created = await create_material(client, owner, name="Oak")
    await _edit(client, owner, created["id"], {"name": "Oak smoked"})
    for role in ("analyst", "member"):
        reader = await member(runtime, client, role=role, organization=owner.organization)
        refused = await _restore(client, reader, created["id"], 1)
        assert refused.status_code == 403, role
    shown = await client.get(f"/api/v1/materials/{created['id']}", headers=owner.headers)
    assert shown.json()["name"] == "Oak smoked"

    editor = await member(runtime, client, role="editor", organization=owner.organization)
    restored = await _restore(client, editor, created["id"], 1)
    assert restored.status_code == 200, restored.text
    assert restored.json()["name"] == "Oak"
    assert restored.json()["updated_by"] == f"user:{editor.user.id}"
