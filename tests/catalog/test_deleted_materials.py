"""Deleted materials never leave a catalog manager stuck: they can be moved, restored under a
new code, or purged for good, and a category they are filed under can still go."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.catalog.test_images import _stored_objects, _upload, photo
from tests.identity.factories import Member, member
from tests.kit.deletions import run_queued_deletions

pytestmark = pytest.mark.database


async def _deleted(client: AsyncClient, owner: Member, **fields: object) -> dict[str, object]:
    material = await create_material(client, owner, **fields)
    gone = await client.delete(f"/api/v1/materials/{material['id']}", headers=owner.headers)
    assert gone.status_code == 204
    return material


async def test_a_category_holding_only_deleted_materials_can_be_deleted_by_purging_them(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    old = await create_category(client, owner, "Discontinued")
    material = await _deleted(client, owner, category_id=old["id"], code="OLD-1")

    refused = await client.delete(f"/api/v1/categories/{old['id']}", headers=owner.headers)
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert detail.startswith("1 deleted material(s) are filed under it: purge them")
    assert "purge_deleted_materials=true" in detail

    purged = await client.delete(
        f"/api/v1/categories/{old['id']}?purge_deleted_materials=true", headers=owner.headers
    )
    assert purged.status_code == 204
    gone = await client.get(
        f"/api/v1/materials/{material['id']}?include_deleted=true", headers=owner.headers
    )
    assert gone.status_code == 404
    events = await client.get("/api/v1/audit-events?action=material.purged", headers=owner.headers)
    (event,) = [e for e in events.json()["items"] if e["action"] == "material.purged"]
    assert event["details"]["codes"] == ["OLD-1"]


async def test_purging_keeps_live_materials_and_their_category(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await create_category(client, owner, "Tiles")
    live = await create_material(client, owner, category_id=tiles["id"])
    await _deleted(client, owner, category_id=tiles["id"])

    refused = await client.delete(
        f"/api/v1/categories/{tiles['id']}?purge_deleted_materials=true", headers=owner.headers
    )
    assert refused.status_code == 409
    assert refused.json()["detail"] == "1 material(s) are filed under it: move them first."
    # The refusal rolled the purge back with the rest: the deleted one is still there.
    listed = await client.get(
        f"/api/v1/materials?include_deleted=true&category_id={tiles['id']}",
        headers=owner.headers,
    )
    assert len(listed.json()["items"]) == 2
    assert live["id"] in {item["id"] for item in listed.json()["items"]}


async def test_a_deleted_material_can_be_moved_and_then_its_category_deleted(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    old = await create_category(client, owner, "Old range")
    archive = await create_category(client, owner, "Archive")
    material = await _deleted(client, owner, category_id=old["id"])

    hidden = await client.patch(
        f"/api/v1/materials/{material['id']}",
        json={"category_id": archive["id"]},
        headers=owner.headers,
    )
    assert hidden.status_code == 404
    moved = await client.patch(
        f"/api/v1/materials/{material['id']}?include_deleted=true",
        json={"category_id": archive["id"]},
        headers=owner.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["category_id"] == archive["id"]
    assert moved.json()["deleted_at"] is not None

    deleted = await client.delete(f"/api/v1/categories/{old['id']}", headers=owner.headers)
    assert deleted.status_code == 204


async def test_a_deleted_material_whose_code_was_reused_is_restored_under_a_new_one(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    first = await _deleted(client, owner, code="CARRARA-60")
    await create_material(client, owner, code="CARRARA-60", name="Its replacement")

    taken = await client.post(f"/api/v1/materials/{first['id']}/restore", headers=owner.headers)
    assert taken.status_code == 409
    assert "restore this one under a new code" in taken.json()["detail"]

    restored = await client.post(
        f"/api/v1/materials/{first['id']}/restore",
        json={"code": "CARRARA-60-OLD"},
        headers=owner.headers,
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["code"] == "CARRARA-60-OLD"
    assert restored.json()["deleted_at"] is None
    versions = await client.get(f"/api/v1/materials/{first['id']}/versions", headers=owner.headers)
    latest = versions.json()["items"][0]
    assert latest["changes"]["code"] == {"old": "CARRARA-60", "new": "CARRARA-60-OLD"}


async def test_a_purged_material_takes_its_images_with_it(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    uploaded = await _upload(client, owner, material["id"], photo())
    assert uploaded.status_code == 201

    live = await client.post(f"/api/v1/materials/{material['id']}/purge", headers=owner.headers)
    assert live.status_code == 409
    assert live.json()["type"].endswith("/material-not-deleted")

    await client.delete(f"/api/v1/materials/{material['id']}", headers=owner.headers)
    purged = await client.post(f"/api/v1/materials/{material['id']}/purge", headers=owner.headers)
    assert purged.status_code == 204
    await run_queued_deletions(runtime, owner.organization_id)
    assert await _stored_objects(runtime, owner) == []
    again = await client.post(f"/api/v1/materials/{material['id']}/purge", headers=owner.headers)
    assert again.status_code == 404


async def test_the_trash_lists_the_deleted_materials_alone(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    live = await create_material(client, owner, code="LIVE-1")
    deleted = await _deleted(client, owner, code="GONE-1")

    trash = await client.get("/api/v1/materials?deleted_only=true", headers=owner.headers)
    assert trash.status_code == 200
    assert [item["id"] for item in trash.json()["items"]] == [deleted["id"]]
    assert trash.json()["items"][0]["deleted_at"] is not None
    catalog = await client.get("/api/v1/materials", headers=owner.headers)
    assert [item["id"] for item in catalog.json()["items"]] == [live["id"]]
