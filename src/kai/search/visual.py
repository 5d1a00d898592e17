"""Visual similarity: every catalog image embedded by the default backbone, kept current by a
job (`search.embed_images`) that the catalog queues when images become ready, and the
materials that look most like a photo or like another material."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.catalog.events import images_changed
from kai.config import Settings
from kai.kit.db import scoped_transaction
from kai.kit.errors import KaiError
from kai.kit.images import ImageLimits
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectStorage
from kai.kit.threads import IMAGE_CHECKS
from kai.search import features
from kai.search.visual_repository import CatalogImage, VisualMatch, VisualRepository
from kai.search.visual_repository import NearPair as NearPair  # what near_duplicates gives
from kai.vision.backbones import Backbone, efficientnet, get_backbone
from kai.vision.preprocessing import Enhancement, prepare_image

log = structlog.get_logger(__name__)

# The backbone catalog images are embedded by, and photos compared with them by.
CATALOG_BACKBONE = efficientnet.NAME

# Images embedded per model call (progress is reported between calls).
CHUNK = 16

Progress = Callable[[int, int | None], Awaitable[None]]


def catalog_backbone(settings: Settings) -> Backbone:
    """The backbone catalog images are embedded by for visual similarity (blocking: loads it
    on first use)."""
    return get_backbone(
        CATALOG_BACKBONE, model_dir=settings.model_dir, threads=settings.vision.threads
    )


async def queue_stale_refreshes(
    sessions: async_sessionmaker[AsyncSession], *, backbone: Backbone
) -> list[uuid.UUID]:
    """Queue an image refresh for every organization whose catalog the backbone has not
    embedded: new images a lost job missed, or all of them after the default model changed.
    Returns those organizations."""
    async with sessions.begin() as session:
        stale = await VisualRepository(session).organizations_with_stale_images(
            backbone.fingerprint
        )
    for organization_id in stale:
        async with scoped_transaction(sessions, organization_id=organization_id) as session:
            await images_changed(session, organization_id=organization_id)
    if stale:
        log.info("search.image_refreshes_queued", organizations=len(stale))
    return stale


@dataclass(frozen=True)
class SimilarMaterial:
    material_id: uuid.UUID
    name: str
    code: str
    score: float
    image_id: uuid.UUID


async def refresh_image_embeddings(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    backbone: Backbone,
    batch: int,
    limits: ImageLimits,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed up to `batch` ready catalog images whose embedding is missing or by another
    backbone; queue a follow-up job when more remain. Images that no longer decode are
    skipped (and logged), not retried for ever."""
    repository = VisualRepository(session)
    stale = await repository.stale(organization_id, backbone.fingerprint, batch)
    # Catalog images are embedded as they are (no colour correction, no mirroring): what
    # the feature store holds of them so (a training read them, or an index before this
    # one) is taken, not computed again.
    named = features.features_of(backbone.fingerprint, Enhancement().tag)
    known = await features.stored(
        session,
        organization_id=organization_id,
        features=named,
        keys=[image.key for image in stale],
    )
    done = skipped = 0
    for start in range(0, len(stale), CHUNK):
        chunk = stale[start : start + CHUNK]
        readable: list[tuple[CatalogImage, list[np.ndarray]]] = []
        for image in chunk:
            if image.key in known:
                continue
            try:
                # A lost file (ObjectNotFound) is skipped as an undecodable one is.
                data = await storage.read(image.key)
                prepared = await asyncio.to_thread(
                    prepare_image, data, side=backbone.input_side, limits=limits
                )
            except KaiError as exc:
                skipped += 1
                log.warning(
                    "search.image_not_embedded", image_id=str(image.image_id), error=str(exc)
                )
                continue
            readable.append((image, prepared.views))
        computed: dict[str, np.ndarray] = {}
        if readable:
            vectors = await asyncio.to_thread(backbone.embed, [views for _, views in readable])
            computed = {
                image.key: vector for (image, _), vector in zip(readable, vectors, strict=True)
            }
            await features.keep(
                session,
                organization_id=organization_id,
                rows=[(named, key, vector) for key, vector in computed.items()],
            )
        found = {**computed, **known}
        embedded = [(image, found[image.key]) for image in chunk if image.key in found]
        if embedded:
            await repository.save(
                organization_id,
                backbone.fingerprint,
                [(image, vector.tolist()) for image, vector in embedded],
            )
        done += len(chunk)
        if progress is not None:
            await progress(done, len(stale))
    follow_up = len(stale) == batch
    if follow_up:
        await images_changed(session, organization_id=organization_id)
    return {"embedded": done - skipped, "skipped": skipped, "follow_up": follow_up}


async def similar_materials(
    session: AsyncSession,
    *,
    vector: Sequence[float],
    how_many: int,
    category_ids: Sequence[uuid.UUID] | None = None,
    properties: dict[str, Any] | None = None,
    excluded: uuid.UUID | None = None,
) -> list[SimilarMaterial]:
    """The organization's materials whose images look most like `vector`, best first."""
    if how_many <= 0:
        return []
    found = await VisualRepository(session).nearest(
        vector, how_many, category_ids=category_ids, properties=properties, excluded=excluded
    )
    return [_similar(match) for match in found]


async def similar_materials_each(
    session: AsyncSession,
    *,
    vectors: Sequence[Sequence[float]],
    how_many: int,
    category_ids: Sequence[uuid.UUID] | None = None,
    properties: dict[str, Any] | None = None,
) -> list[list[SimilarMaterial]]:
    """`similar_materials` for each of many vectors, in one query."""
    if how_many <= 0:
        return [[] for _ in vectors]
    found = await VisualRepository(session).nearest_each(
        vectors, how_many, category_ids=category_ids, properties=properties
    )
    return [[_similar(match) for match in matches] for matches in found]


def _similar(match: VisualMatch) -> SimilarMaterial:
    return SimilarMaterial(
        material_id=match.material_id,
        name=match.name,
        code=match.code,
        score=round(match.similarity, 4),
        image_id=match.image_id,
    )


@dataclass(frozen=True)
class PhotoMatches:
    similar: list[SimilarMaterial]
    timings: dict[str, float]


async def similar_to_photo(
    session: AsyncSession,
    *,
    data: bytes,
    backbone: Backbone,
    how_many: int,
    limits: ImageLimits,
    category_ids: Sequence[uuid.UUID] | None = None,
    properties: dict[str, Any] | None = None,
) -> PhotoMatches:
    """Reverse image search: the materials that look most like an uploaded photo (no trained
    model needed, only the default backbone). The photo is validated, not kept."""
    prepared = await IMAGE_CHECKS.run(prepare_image, data, side=backbone.input_side, limits=limits)
    timings = dict(prepared.timings)
    started = time.perf_counter()
    vector = await asyncio.to_thread(backbone.embed, [prepared.views])
    timings["embed"] = round((time.perf_counter() - started) * 1000, 3)
    started = time.perf_counter()
    found = await similar_materials(
        session,
        vector=vector[0].tolist(),
        how_many=how_many,
        category_ids=category_ids,
        properties=properties,
    )
    timings["similar"] = round((time.perf_counter() - started) * 1000, 3)
    return PhotoMatches(similar=found, timings=timings)


async def more_like_material(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    material_id: uuid.UUID,
    how_many: int,
    category_ids: Sequence[uuid.UUID] | None = None,
) -> list[SimilarMaterial] | None:
    """The materials that look most like one material's primary image (itself left out);
    None while none of its images is embedded yet."""
    vector = await VisualRepository(session).embedding_of_material(organization_id, material_id)
    if vector is None:
        return None
    return await similar_materials(
        session,
        vector=vector,
        how_many=how_many,
        category_ids=category_ids,
        excluded=material_id,
    )


async def near_duplicates(
    session: AsyncSession, *, threshold: float, params: PageParams
) -> tuple[list[NearPair], str | None]:
    """A page of the pairs of images of different materials at least `threshold` alike
    (cosine), most alike first, with each material's name and code: the same product entered
    twice, or a photo reused for another product."""
    return await VisualRepository(session).near_duplicates(threshold, params)
