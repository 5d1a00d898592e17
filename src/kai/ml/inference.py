"""Prediction, the one way KAI says what photos are.

`predictor_for` resolves what an organization recognizes with (its active version), reads the
version's heads once into the process's model cache (`kai.kit.model_cache`), loads the
backbones the version needs and checks that each is the very model it was trained on. The
predictor answers `predict_many(photos)`: each photo decoded and prepared as the version was
trained (`versions.preparation`), embedded by every backbone, classified, and judged unknown
or not. A single recognition is a batch of one; a batch job calls it a chunk at a time.

Work is shared among threads the same way whatever the count: the photos are split into one
share per worker, each share decoded on the image-check threads, then every (share, backbone)
pair embedded on its own thread, at most one a worker at once. A photo's two backbones thus
run side by side, and a batch's shares keep every core busy.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.kit.errors import Conflict, KaiError
from kai.kit.images import ImageLimits, InspectedImage
from kai.kit.model_cache import MODELS
from kai.kit.storage import ObjectStorage
from kai.kit.threads import IMAGE_CHECKS
from kai.ml import experiments, image_models
from kai.ml.models import ModelVersion
from kai.ml.recognizer import Recognizer
from kai.ml.repository import ModelVersionRepository
from kai.ml.versions import preparation, read_heads
from kai.search import features
from kai.search.visual import CATALOG_BACKBONE as SIMILARITY_BACKBONE
from kai.vision.backbones import Backbone
from kai.vision.backbones.sandboxed import ImageModelFailed, ImageModelsBusy
from kai.vision.preprocessing import Enhancement, PreparedViews, prepare_upload

# No answer is certain: a confidence is reported at most this high (a threshold of 1 thus
# means "always unknown").
MAX_CONFIDENCE = 0.9999

__all__ = ["SIMILARITY_BACKBONE", "NoTrainedModel", "Prediction", "Predictor", "predictor_for"]


class NoTrainedModel(Conflict):
    type, title = "no-trained-model", "The organization has no trained model yet"


class ModelOutdated(Conflict):
    type, title = "model-outdated", "The model was trained on another image model"


@dataclass
class Prediction:
    """What KAI says of one photo; or, in `failure`, why it could not say (the photo is not
    one it can read, or an uploaded image model failed on it)."""

    inspected: InspectedImage | None = None
    # Best first: {"label", "category_id", "confidence"}.
    predictions: list[dict[str, Any]] = field(default_factory=list)
    # Why the photo is unknown ("unlike_training", "low_confidence"), None when it is known.
    unknown_reason: str | None = None
    # The photo's embedding by each backbone (one row each).
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    # Milliseconds per step: decoding and preparing, each backbone, the photo's share of the
    # embedding and classifying.
    timings: dict[str, float] = field(default_factory=dict)
    failure: KaiError | None = None
    # In a shadow test, the challenger's answer: {"label", "category_id", "confidence",
    # "unknown"}, kept and never shown.
    shadow: dict[str, Any] | None = None

    @property
    def similarity_vector(self) -> list[float]:
        """The embedding that finds similar catalog images."""
        vector: list[float] = self.embeddings[SIMILARITY_BACKBONE].tolist()
        return vector


@dataclass(frozen=True)
class Served:
    """A ready version as it recognizes: its heads and how it prepares photos."""

    version: ModelVersion
    heads: Recognizer
    preparation: Enhancement

    @property
    def category_ids(self) -> dict[str, Any]:
        return {entry["label"]: entry.get("category_id") for entry in self.version.labels}


@dataclass(frozen=True)
class Assignment:
    """Where an A/B test put these photos: the test, and the variant whose answer is shown."""

    experiment_id: uuid.UUID
    variant: str


@dataclass
class _Share:
    """The photos one worker decodes and embeds: their places in the call, and each one's
    prediction being filled in."""

    places: list[int]
    views: list[PreparedViews] = field(default_factory=list)
    # Of `places`, those decoded (their views in `views`, in the same order).
    readable: list[int] = field(default_factory=list)


class Predictor:
    """An organization's recognizer as it stands: `predict_many` answers photos."""

    def __init__(
        self,
        served: Served,
        backbones: Sequence[Backbone],
        *,
        workers: int,
        limits: ImageLimits,
        assignment: Assignment | None = None,
        shadow: Served | None = None,
    ) -> None:
        self.served = served
        self.backbones = list(backbones)
        self.workers = max(1, workers)
        self.limits = limits
        self.assignment = assignment
        # A shadow test's challenger: it scores every photo, prepared as the champion's.
        self.shadow = shadow

    @property
    def version(self) -> ModelVersion:
        return self.served.version

    @property
    def features(self) -> dict[str, str]:
        """What names each backbone's embeddings of these photos in the feature store."""
        tag = self.served.preparation.tag
        return {
            backbone.name: features.features_of(backbone.fingerprint, tag)
            for backbone in self.backbones
        }

    async def predict_many(
        self,
        photos: Sequence[bytes | None],
        *,
        top_k: int = 5,
        confidence_threshold: float = 0.5,
    ) -> list[Prediction]:
        """A prediction per photo, in order (None: a photo whose file is gone, which fails)."""
        found = [Prediction() for _ in photos]
        for place, data in enumerate(photos):
            if data is None:
                found[place].failure = PhotoMissing("The photo's stored file is missing.")
        places = [place for place, data in enumerate(photos) if data is not None]
        shares = [_Share(places[worker :: self.workers]) for worker in range(self.workers)]
        shares = [share for share in shares if share.places]
        sides = sorted({backbone.input_side for backbone in self.backbones})
        await asyncio.gather(
            *(IMAGE_CHECKS.run(self._prepare, share, photos, found, sides) for share in shares)
        )
        started = time.perf_counter()
        turns = asyncio.Semaphore(max(self.workers, len(self.backbones)))

        async def embed(share: _Share, backbone: Backbone) -> None:
            async with turns:
                await asyncio.to_thread(self._embed, share, backbone, found)

        await asyncio.gather(
            *(embed(share, backbone) for share in shares for backbone in self.backbones)
        )
        embedded = [place for place in places if found[place].failure is None]
        _share_out(found, embedded, "embed", started)
        started = time.perf_counter()
        if embedded:
            self._classify(
                [found[place] for place in embedded],
                top_k=top_k,
                confidence_threshold=confidence_threshold,
            )
        _share_out(found, embedded, "classify", started)
        return found

    def _prepare(
        self,
        share: _Share,
        photos: Sequence[bytes | None],
        found: list[Prediction],
        sides: list[int],
    ) -> None:
        """On an image-check thread: decode the share's photos and cut their views."""
        for place in share.places:
            data = photos[place]
            assert data is not None
            try:
                inspected, prepared = prepare_upload(
                    data, sides=sides, enhancement=self.served.preparation, limits=self.limits
                )
            except KaiError as exc:
                found[place].failure = exc
                continue
            found[place].inspected = inspected
            found[place].timings.update(prepared.timings)
            share.views.append(prepared)
            share.readable.append(place)

    def _embed(self, share: _Share, backbone: Backbone, found: list[Prediction]) -> None:
        """On a worker thread: one model call for the share's readable photos."""
        if not share.readable:
            return
        started = time.perf_counter()
        try:
            rows = backbone.embed([views.views[backbone.input_side] for views in share.views])
        except (ImageModelFailed, ImageModelsBusy) as exc:
            # An organization's uploaded model, in its sandbox (or none of its processes free):
            # these photos fail with why, the rest of a batch goes on.
            for place in share.readable:
                found[place].failure = exc
            return
        each = round((time.perf_counter() - started) * 1000 / len(share.readable), 3)
        for place, row in zip(share.readable, rows, strict=True):
            found[place].embeddings[backbone.name] = row
            found[place].timings[f"embed.{backbone.name}"] = each

    def _classify(
        self, predictions: list[Prediction], *, top_k: int, confidence_threshold: float
    ) -> None:
        heads = self.served.heads
        embeddings = {
            name: np.stack([prediction.embeddings[name] for prediction in predictions])
            for name in heads.backbones
        }
        judged = judge(
            heads,
            embeddings,
            category_ids=self.served.category_ids,
            top_k=top_k,
            confidence_threshold=confidence_threshold,
        )
        for prediction, (answers, reason) in zip(predictions, judged, strict=True):
            prediction.predictions, prediction.unknown_reason = answers, reason
        if self.shadow is None:
            return
        shadow = self.shadow.heads
        scored = judge(
            shadow,
            {
                name: np.stack([prediction.embeddings[name] for prediction in predictions])
                for name in shadow.backbones
            },
            category_ids=self.shadow.category_ids,
            top_k=1,
            confidence_threshold=confidence_threshold,
        )
        for prediction, (answers, reason) in zip(predictions, scored, strict=True):
            best = answers[0]
            prediction.shadow = {
                "version_id": str(self.shadow.version.id),
                "label": None if reason else best["label"],
                "category_id": None if reason else best["category_id"],
                "confidence": best["confidence"],
                "unknown": reason is not None,
            }


def judge(
    heads: Recognizer,
    embeddings: dict[str, np.ndarray],
    *,
    category_ids: dict[str, Any],
    top_k: int,
    confidence_threshold: float,
) -> list[tuple[list[dict[str, Any]], str | None]]:
    """For each row of `embeddings` (a photo, by backbone name): its `top_k` predictions, best
    first, and why it is unknown (None when it is not)."""
    probabilities = heads.probabilities(embeddings)
    unlike = heads.unlike_training(embeddings)
    judged = []
    for row, stranger in zip(probabilities, unlike, strict=True):
        answers = [
            {
                "label": heads.labels[index],
                "category_id": category_ids.get(heads.labels[index]),
                "confidence": round(min(float(row[index]), MAX_CONFIDENCE), 4),
            }
            for index in np.argsort(-row)[:top_k]
        ]
        reason = None
        if stranger:
            reason = "unlike_training"
        elif answers[0]["confidence"] < confidence_threshold:
            reason = "low_confidence"
        judged.append((answers, reason))
    return judged


class PhotoMissing(KaiError):
    status, type, title = 422, "photo-missing", "The photo's file is missing"


def _share_out(found: list[Prediction], places: list[int], step: str, started: float) -> None:
    """Each of `places` gets its share of the wall time since `started` as `step`."""
    if not places:
        return
    each = round((time.perf_counter() - started) * 1000 / len(places), 3)
    for place in places:
        found[place].timings[step] = each


async def keep_features(
    session: AsyncSession,
    predictor: Predictor,
    photos: Sequence[tuple[str, Prediction]],
) -> None:
    """Keep what the predictor computed of each photo (by its storage key) in the feature
    store: a photo later labelled, or looked at again, is not embedded again."""
    named = predictor.features
    await features.keep(
        session,
        organization_id=predictor.version.organization_id,
        rows=[
            (named[name], key, row)
            for key, prediction in photos
            if prediction.failure is None
            for name, row in prediction.embeddings.items()
        ],
    )


async def predictor_for(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    settings: Settings,
    limits: ImageLimits,
    subject: str | None = None,
) -> Predictor:
    """The organization's predictor: its active version, with heads and backbones loaded; in
    an A/B test, the variant `subject` is assigned (split), or the champion with the challenger
    scoring beside it (shadow)."""
    versions = ModelVersionRepository(session)
    version, experiment = await versions.active_and_test(organization_id)
    if version is None:
        raise NoTrainedModel(
            "Train a model first (POST /api/v1/models, or `kai train`): recognitions need "
            "one trained on this organization's photos."
        )
    assignment = shadow = None
    if experiment is not None and experiment.champion_version_id == version.id:
        challenger = await versions.get(organization_id, experiment.challenger_version_id)
        variant = experiments.CHAMPION
        if challenger is not None and experiment.mode == "shadow":
            shadow = await _served(storage, challenger, settings)
        elif challenger is not None and experiment.mode == "split":
            variant = experiments.variant_of(experiment, subject or "anyone")
            if variant == experiments.CHALLENGER:
                version = challenger
        assignment = Assignment(experiment.id, variant)
    served = await _served(storage, version, settings)
    backbones = await _backbones(
        session, storage, [served, *([shadow] if shadow else [])], settings
    )
    workers = settings.vision.batch_workers or max(1, os.cpu_count() or 1)
    return Predictor(
        served, backbones, workers=workers, limits=limits, assignment=assignment, shadow=shadow
    )


async def _served(storage: ObjectStorage, version: ModelVersion, settings: Settings) -> Served:
    return Served(version, await heads_of(storage, version), preparation(version, settings))


async def heads_of(storage: ObjectStorage, version: ModelVersion) -> Recognizer:
    """The version's heads, read from storage once and then kept in the model cache (a ready
    version never changes)."""
    key = ("heads", version.id)
    found = MODELS.get(key)
    if found is None:
        found = MODELS.put(key, await read_heads(storage, version))
    assert isinstance(found, Recognizer)
    return found


async def _backbones(
    session: AsyncSession, storage: ObjectStorage, served: list[Served], settings: Settings
) -> list[Backbone]:
    """The backbones a prediction by the versions needs (their own, and the similarity one),
    each checked to be the very model each version was trained on."""
    names = list(
        dict.fromkeys(
            [name for each in served for name in each.heads.backbones] + [SIMILARITY_BACKBONE]
        )
    )
    backbones = [
        await image_models.load_backbone(
            session,
            storage,
            organization_id=served[0].version.organization_id,
            name=name,
            settings=settings,
        )
        for name in names
    ]
    for each in served:
        version, heads = each.version, each.heads
        trained_on = {entry["name"]: entry.get("fingerprint") for entry in version.backbones}
        for backbone in backbones:
            expected = trained_on.get(backbone.name)
            if backbone.name in heads.backbones and expected != backbone.fingerprint:
                raise ModelOutdated(
                    f"Model version {version.number} was trained on {backbone.name} as it was "
                    f"({expected}); this server has {backbone.fingerprint}. Train a new version."
                )
    return backbones
