"""Visual similarity as a user meets it: reverse image search with no model trained, "more
like this material", and near-duplicates across the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import pytest
from httpx import AsyncClient

from kai.kit.db import scoped_transaction
from kai.kit.images import ImageLimits
from kai.runtime import Runtime
from kai.search import visual
from kai.search.visual_repository import VisualRepository
from kai.vision.backbones import Backbone, get_backbone
from kai.vision.backbones.efficientnet import NAME as DEFAULT_BACKBONE
from tests.catalog.factories import create_material
from tests.identity.factories import member
from tests.pages import every_page
from tests.recognition.test_recognitions import _catalog, _finished
from tests.vision.textures import checks, jpeg, stripes

pytestmark = pytest.mark.database


async def test_a_photo_finds_the_materials_that_look_like_it_without_a_model(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    materials = await _catalog(client, owner)
    await _finished(client, owner, "search.embed_images")
    photo = jpeg(checks(300, cell=15, colour=(60, 90, 190), seed=11))

    found = await client.post(
        "/api/v1/search/images",
        files={"file": ("tile.jpg", photo, "image/jpeg")},
        data={"k": "2"},
        headers=owner.headers,
    )

    assert found.status_code == 200, found.text
    items = found.json()["items"]
    mosaic = {materials["blue_mosaic0"]["id"], materials["blue_mosaic1"]["id"]}
    assert {item["material_id"] for item in items} == mosaic
    assert items[0]["score"] >= items[1]["score"]
    assert {"decode", "embed", "similar"} <= set(found.json()["timings"])
    within = await client.post(
        "/api/v1/search/images",
        files={"file": ("tile.jpg", photo, "image/jpeg")},
        data={"k": "3", "category_id": materials["brushed_brass0"]["category"]["id"]},
        headers=owner.headers,
    )
    assert {item["name"] for item in within.json()["items"]} == {
        "Brushed brass 1",
        "Brushed brass 2",
    }
    refused = await client.post(
        "/api/v1/search/images",
        files={"file": ("tile.jpg", b"%PDF-1.4 not a photo", "image/jpeg")},
        headers=owner.headers,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"

    # More like this: the other brass material first, never the material itself.
    brass = materials["brushed_brass0"]
    alike = await client.get(
        f"/api/v1/materials/{brass['id']}/similar", params={"k": 3}, headers=owner.headers
    )
    assert alike.status_code == 200, alike.text
    ids = [item["material_id"] for item in alike.json()["items"]]
    assert brass["id"] not in ids
    assert ids[0] == materials["brushed_brass1"]["id"]
    # Many photos searched in one query (a batch's) find what each finds alone.
    async with scoped_transaction(
        committed_runtime.session_factory, organization_id=owner.organization_id
    ) as session:
        repository = VisualRepository(session)
        vectors = [
            await repository.embedding_of_material(owner.organization_id, uuid.UUID(material["id"]))
            for material in materials.values()
        ]
        assert all(vector is not None for vector in vectors)
        one_by_one = [
            await visual.similar_materials(session, vector=vector or [], how_many=3)
            for vector in vectors
        ]
        together = await visual.similar_materials_each(
            session, vectors=[vector or [] for vector in vectors], how_many=3
        )
        assert together == one_by_one
        brass_category = uuid.UUID(brass["category"]["id"])
        within = await visual.similar_materials_each(
            session, vectors=vectors[:2], how_many=5, category_ids=[brass_category]
        )
        assert [len(found) for found in within] == [2, 2]
    bare = await create_material(client, owner, name="No photo yet")
    waiting = await client.get(f"/api/v1/materials/{bare['id']}/similar", headers=owner.headers)
    assert waiting.status_code == 409
    assert waiting.json()["type"].endswith("material-has-no-image")


async def test_the_same_product_entered_twice_is_reported_as_a_near_duplicate(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    texture = stripes(400, period=9, angle=0.4, colour=(170, 120, 80), seed=5)
    first = await create_material(client, owner, name="Walnut plank")
    second = await create_material(client, owner, name="Walnut plank (old entry)")
    other = await create_material(client, owner, name="Blue tile")
    uploads = [
        (first, jpeg(texture, quality=92)),
        (second, jpeg(texture, quality=60)),  # the same photo, saved again: not the same bytes
        (other, jpeg(checks(400, cell=20, colour=(50, 80, 200), seed=5))),
    ]
    for material, data in uploads:
        uploaded = await client.post(
            f"/api/v1/materials/{material['id']}/images",
            files={"file": ("photo.jpg", data, "image/jpeg")},
            headers=owner.headers,
        )
        assert uploaded.status_code == 201, uploaded.text
    await _finished(client, owner, "catalog.image_derivatives", 3)
    await _finished(client, owner, "search.embed_images")

    found = await client.get("/api/v1/catalog/near-duplicates", headers=owner.headers)

    assert found.status_code == 200, found.text
    pairs = found.json()["items"]
    assert len(pairs) == 1
    assert {pairs[0]["material_id"], pairs[0]["other_material_id"]} == {first["id"], second["id"]}
    assert pairs[0]["similarity"] >= 0.95
    # Each side says what a reviewer reads: the material's name and code, and its image.
    pair = pairs[0]
    sides = {
        pair["material_id"]: (pair["name"], pair["code"], pair["image_url"]),
        pair["other_material_id"]: (
            pair["other_name"],
            pair["other_code"],
            pair["other_image_url"],
        ),
    }
    for material in (first, second):
        name, code, image_url = sides[material["id"]]
        assert (name, code) == (material["name"], material["code"])
        thumbnail = await client.get(image_url, headers=owner.headers)
        assert thumbnail.status_code == 200, thumbnail.text
        assert thumbnail.headers["content-type"] == "image/webp"
    loose = await client.get(
        "/api/v1/catalog/near-duplicates", params={"threshold": 0.5}, headers=owner.headers
    )
    assert len(loose.json()["items"]) >= 1
    # Page by page, the same pairs in the same order.
    pages = await every_page(
        client,
        "/api/v1/catalog/near-duplicates",
        headers=owner.headers,
        limit=1,
        params={"threshold": 0.5},
    )
    assert [pair for page in pages for pair in page] == loose.json()["items"]


class _NextModel:
    """The default backbone as a later release might ship it: the same interface, another
    fingerprint (new weights, say)."""

    def __init__(self, current: Backbone) -> None:
        self.current = current
        self.name = current.name
        self.input_side = current.input_side
        self.dimension = current.dimension
        self.standardize = current.standardize
        self.fingerprint = current.fingerprint + ":next"

    def embed(self, photos: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        return self.current.embed(photos)


async def test_the_catalog_is_embedded_again_when_the_image_model_changes(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    material = await create_material(client, owner, name="Carrara")
    for seed in (1, 2):
        uploaded = await client.post(
            f"/api/v1/materials/{material['id']}/images",
            files={
                "file": (
                    "slab.jpg",
                    jpeg(stripes(256, period=9, angle=0.3, colour=(230, 230, 225), seed=seed)),
                    "image/jpeg",
                )
            },
            headers=owner.headers,
        )
        assert uploaded.status_code == 201, uploaded.text
    # Each photo is made ready by a job of its own, which then queues its embedding: until
    # both are ready, the embeddings finished so far may not cover the second.
    await _finished(client, owner, "catalog.image_derivatives", 2)
    before = await _finished(client, owner, "search.embed_images")
    settings = committed_runtime.settings
    current = get_backbone(DEFAULT_BACKBONE, model_dir=settings.model_dir, threads=1)
    factory = committed_runtime.session_factory

    # Everything is embedded by today's model: the quarter-hourly check queues nothing.
    assert owner.organization_id not in await visual.queue_stale_refreshes(
        factory, backbone=current
    )
    # An upgrade ships another model: the check finds the catalog stale and queues a refresh.
    upgraded = _NextModel(current)
    assert owner.organization_id in await visual.queue_stale_refreshes(factory, backbone=upgraded)
    queued = await client.get(
        "/api/v1/jobs", params={"kind": "search.embed_images"}, headers=owner.headers
    )
    assert len(queued.json()["items"]) == len(before) + 1
    async with scoped_transaction(factory, organization_id=owner.organization_id) as session:
        refreshed = await visual.refresh_image_embeddings(
            session,
            committed_runtime.storage,
            organization_id=owner.organization_id,
            backbone=upgraded,
            batch=100,
            limits=ImageLimits(),
        )
    assert refreshed["embedded"] == 2
    assert owner.organization_id not in await visual.queue_stale_refreshes(
        factory, backbone=upgraded
    )
