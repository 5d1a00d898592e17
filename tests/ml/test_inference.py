"""The one entry point of prediction: a photo alone is answered as it is in a batch, a bad
photo fails alone, a version's heads are read once, and a version is only used with the very
backbones it was trained on."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from httpx import AsyncClient

from kai.kit.db import act_for
from kai.kit.model_cache import MODELS
from kai.kit.storage import ObjectNotFound
from kai.kit.storage.keys import model_key
from kai.ml import inference
from kai.ml.models import ModelVersion
from kai.ml.recognizer import train_recognizer
from kai.runtime import Runtime
from kai.vision.backbones import DEFAULT_BACKBONES, get_backbone
from kai.vision.preprocessing import prepare_views
from tests.identity.factories import Member, member
from tests.vision.textures import material_set

pytestmark = pytest.mark.database


async def _ready_version(
    runtime: Runtime, owner: Member, photos: dict[str, list[bytes]], *, fingerprint: str = ""
) -> ModelVersion:
    """A version trained on `photos` (by label) with the default backbones, stored, active."""
    settings = runtime.settings
    backbones = [
        get_backbone(name, model_dir=settings.model_dir, threads=1) for name in DEFAULT_BACKBONES
    ]
    labels = [label for label, shots in photos.items() for _ in shots]
    prepared = [
        prepare_views(shot, sides=sorted({backbone.input_side for backbone in backbones}))
        for shots in photos.values()
        for shot in shots
    ]
    embeddings = {
        backbone.name: backbone.embed([views.views[backbone.input_side] for views in prepared])
        for backbone in backbones
    }
    trained = train_recognizer(
        embeddings,
        labels,
        standardize={backbone.name: backbone.standardize for backbone in backbones},
    )
    key = model_key(owner.organization_id, f"{uuid.uuid4()}/recognizer.npz")
    await runtime.storage.put(key, trained.recognizer.to_bytes())
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        version = ModelVersion(
            organization_id=owner.organization_id,
            number=1,
            status="ready",
            active=True,
            labels=[{"label": label, "category_id": None} for label in sorted(photos)],
            backbones=[
                {"name": backbone.name, "fingerprint": fingerprint or backbone.fingerprint}
                for backbone in backbones
            ],
            options={},
            artifact_key=key,
        )
        session.add(version)
    return version


async def _predictor(runtime: Runtime, owner: Member) -> inference.Predictor:
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        return await inference.predictor_for(
            session,
            runtime.storage,
            organization_id=owner.organization_id,
            settings=runtime.settings,
            limits=runtime.image_limits,
        )


async def test_a_photo_alone_is_answered_as_it_is_among_others_and_a_bad_one_fails_alone(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    photos = material_set(5)
    training = {label: shots[:4] for label, shots in photos.items()}
    await _ready_version(runtime, owner, training)
    predictor = await _predictor(runtime, owner)
    brass, mosaic, terrazzo = (photos[label][4] for label in photos)

    (alone,) = await predictor.predict_many([mosaic], top_k=3)
    among = await predictor.predict_many(
        [brass, b"not a photo at all", mosaic, None, terrazzo], top_k=3
    )

    assert alone.failure is None
    assert alone.unknown_reason is None
    assert alone.predictions[0]["label"] == "blue_mosaic"
    assert among[2].predictions == alone.predictions
    for name, row in alone.embeddings.items():
        np.testing.assert_allclose(among[2].embeddings[name], row, rtol=1e-5, atol=1e-6)
    assert [found.predictions[0]["label"] for found in (among[0], among[4])] == [
        "brushed_brass",
        "grey_terrazzo",
    ]
    # What could not be read fails with why, as an answer a client can act on.
    for failed in (among[1], among[3]):
        assert failed.failure is not None
        assert 400 <= failed.failure.status < 500
        assert failed.predictions == []
    # Each answered photo has what a recognition stores and shows beside it.
    assert alone.inspected is not None
    assert (alone.inspected.width, alone.inspected.height) == (192, 192)
    assert len(alone.similarity_vector) == 1280
    assert {"decode", "embed", "classify", "embed.efficientnet-lite0"} <= set(alone.timings)


async def test_a_versions_heads_are_read_once_and_kept_while_used(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    photos = material_set(3)
    version = await _ready_version(runtime, owner, photos)
    await _predictor(runtime, owner)
    assert version.artifact_key is not None
    await runtime.storage.delete(version.artifact_key)

    # Read from the cache: the file is not needed again.
    kept = await _predictor(runtime, owner)
    (answer,) = await kept.predict_many([photos["blue_mosaic"][0]])
    assert answer.predictions[0]["label"] == "blue_mosaic"

    # Let go (past its bounds), it is read again, and now it is gone.
    MODELS.discard(("heads", version.id))
    with pytest.raises(ObjectNotFound):
        await _predictor(runtime, owner)


async def test_a_version_trained_on_another_backbone_is_refused_and_none_at_all_says_so(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    with pytest.raises(inference.NoTrainedModel):
        await _predictor(runtime, owner)

    await _ready_version(runtime, owner, material_set(3), fingerprint="weights-of-long-ago")

    with pytest.raises(inference.ModelOutdated) as refused:
        await _predictor(runtime, owner)
    assert refused.value.status == 409
    assert "Train a new version" in (refused.value.detail or "")
