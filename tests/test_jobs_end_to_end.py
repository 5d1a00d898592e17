"""The catalog's background work done by a running worker, as `kai serve` runs it: a photo
uploaded gets its derivatives, and materials written become findable by meaning."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import create_material
from tests.catalog.test_images import photo
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

WAIT_SECONDS = 60.0


async def _until(client: AsyncClient, owner: Member, kind: str) -> dict[str, Any]:
    """The first job of `kind` once it finished; fails the test if none does in time."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        response = await client.get("/api/v1/jobs", params={"kind": kind}, headers=owner.headers)
        assert response.status_code == 200, response.text
        finished = [j for j in response.json()["items"] if j["status"] in ("succeeded", "failed")]
        if finished:
            job: dict[str, Any] = finished[0]
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} job finished within {WAIT_SECONDS} s")


async def test_an_uploaded_photo_is_derived_by_the_worker(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    material = await create_material(client, owner)
    uploaded = await client.post(
        f"/api/v1/materials/{material['id']}/images",
        files={"file": ("IMG_0001.JPG", photo(gps=True), "image/jpeg")},
        headers=owner.headers,
    )
    assert uploaded.status_code == 201, uploaded.text

    job = await _until(client, owner, "catalog.image_derivatives")
    assert job["status"] == "succeeded", job
    thumbnail = await client.get(uploaded.json()["urls"]["thumbnail"], headers=owner.headers)
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/webp"


async def test_written_materials_become_findable_by_meaning(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await create_material(
        client, owner, name="Jura Beige honed 60x60", code="JUR-600",
        description="Sand-coloured limestone with fossil flecks, honed, for wet rooms.",
    )  # fmt: skip
    await create_material(
        client, owner, name="Red velvet", code="VEL-001",
        description="Plush upholstery fabric for sofas and headboards.",
    )  # fmt: skip

    job = await _until(client, owner, "search.embed_materials")
    assert job["status"] == "succeeded", job
    assert job["result"]["embedded"] >= 1
    # The two writes may land in one job or two; either way both end up embedded.
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = await client.get(
            "/api/v1/search",
            params={"q": "warm grey stone for a bathroom floor", "mode": "semantic"},
            headers=owner.headers,
        )
        codes = [hit["material"]["code"] for hit in found.json()["items"]]
        if codes[:1] == ["JUR-600"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert codes[0] == "JUR-600"
