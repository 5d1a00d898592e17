"""The feature store: a photo is embedded once per backbone and preparation, and training,
recognitions and the catalog's visual index read what is there."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import numpy as np
import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.models import MaterialImage
from kai.kit.db import scoped_transaction
from kai.kit.storage.keys import user_upload_key
from kai.ml.training import Example, embed_examples
from kai.runtime import Runtime
from kai.search import features, visual
from kai.search.models import ImageEmbedding, ImageFeatures
from kai.vision.backbones import DEFAULT_BACKBONES, Backbone, get_backbone
from kai.vision.preprocessing import Enhancement
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import member
from tests.recognition.test_recognitions import _finished
from tests.vision.textures import material_set

pytestmark = pytest.mark.database


def _backbones(runtime: Runtime) -> list[Backbone]:
    return [
        get_backbone(name, model_dir=runtime.settings.model_dir, threads=1)
        for name in DEFAULT_BACKBONES
    ]


def _sessions(
    runtime: Runtime, organization_id: uuid.UUID
) -> Callable[[], AbstractAsyncContextManager[AsyncSession]]:
    def opened() -> AbstractAsyncContextManager[AsyncSession]:
        return scoped_transaction(runtime.session_factory, organization_id=organization_id)

    return opened


async def test_a_photo_is_embedded_once_per_backbone_and_preparation(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization_id = owner.organization_id
    photos = material_set(2)
    examples = []
    for label, shots in photos.items():
        for shot in shots:
            key = user_upload_key(organization_id, f"photos/{uuid.uuid4()}.jpg")
            await runtime.storage.put(key, shot)
            examples.append(Example(key, label, None, "feedback", uuid.uuid4()))
    backbones = _backbones(runtime)
    sessions = _sessions(runtime, organization_id)

    async def embedded(
        preparation: Enhancement,
    ) -> tuple[list[Example], dict[str, np.ndarray], list[dict[str, str]]]:
        return await embed_examples(
            sessions,
            runtime.storage,
            examples,
            backbones,
            organization_id=organization_id,
            limits=runtime.image_limits,
            enhancement=preparation,
        )

    first_kept, first, _ = await embedded(Enhancement())
    for example in examples:
        await runtime.storage.delete(example.key)

    # The photos' files are gone: what the second training learns from is the store's.
    again_kept, again, again_skipped = await embedded(Enhancement())
    assert again_skipped == []
    assert again_kept == first_kept
    for backbone in backbones:
        np.testing.assert_array_equal(again[backbone.name], first[backbone.name])
        assert again[backbone.name].dtype == np.float32
    # Prepared another way (mirrored too), they are other embeddings: computed, so needing
    # the files, which are gone.
    _, _, mirrored_skipped = await embedded(Enhancement(mirrored=True))
    assert len(mirrored_skipped) == len(examples)


async def test_the_catalog_index_keeps_what_it_computes_and_takes_what_the_store_holds(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    runtime, client = committed_runtime, committed_client
    owner = await member(runtime, client)
    category = await create_category(client, owner, "Terrazzo")
    material = await create_material(client, owner, category_id=category["id"], name="Grey")
    for photo in material_set(2)["grey_terrazzo"]:
        uploaded = await client.post(
            f"/api/v1/materials/{material['id']}/images",
            files={"file": ("photo.jpg", photo, "image/jpeg")},
            headers=owner.headers,
        )
        assert uploaded.status_code == 201, uploaded.text
    await _finished(client, owner, "search.embed_images")
    backbone = visual.catalog_backbone(runtime.settings)
    named = features.features_of(backbone.fingerprint, Enhancement().tag)
    sessions = _sessions(runtime, owner.organization_id)
    async with sessions() as session:
        indexed = dict(
            (await session.execute(select(ImageEmbedding.image_id, ImageEmbedding.embedding))).all()
        )
        shown = func.coalesce(MaterialImage.processed_key, MaterialImage.original_key)
        keys: dict[uuid.UUID, str] = dict(
            (await session.execute(select(MaterialImage.id, shown))).all()
        )
        kept = await features.stored(
            session, organization_id=owner.organization_id, features=named, keys=list(keys.values())
        )
    # What the index computed is in the store, the same numbers (to the index's half floats).
    assert len(indexed) == len(kept) == 2
    for image_id, vector in indexed.items():
        np.testing.assert_allclose(kept[keys[image_id]], np.asarray(vector), atol=2e-3)

    # Held in the store (another index's, say) and stale in the index: taken, not computed.
    chosen = np.zeros(backbone.dimension, dtype=np.float32)
    chosen[7] = 1.0
    async with sessions() as session:
        await session.execute(delete(ImageEmbedding))
        await session.execute(delete(ImageFeatures))
        await features.keep(
            session,
            organization_id=owner.organization_id,
            rows=[(named, key, chosen) for key in keys.values()],
        )
        done = await visual.refresh_image_embeddings(
            session,
            runtime.storage,
            organization_id=owner.organization_id,
            backbone=backbone,
            batch=10,
            limits=runtime.image_limits,
        )
        assert done["embedded"] == 2
        taken = (await session.scalars(select(ImageEmbedding.embedding))).all()
    assert [np.asarray(vector).tolist() for vector in taken] == [chosen.tolist()] * 2
