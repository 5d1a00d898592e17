"""Recognizing a photo: what material it is, how sure KAI is, and which catalog materials look
most like it; what people say of the answer; each organization's thresholds.

upload -> the organization's predictor (ml: decoded, embedded by the version's backbones,
classified by its heads) -> nearest catalog images (search) -> store the photo and the answer
-> answer with predictions, similar materials and per-step timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog import categories
from kai.catalog.models import Category, Material
from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.db import new_id
from kai.kit.errors import NotFound, Unprocessable
from kai.kit.images import (
    CONTENT_TYPES,
    EXTENSIONS,
    PROCESSED_SIDE,
    ImageHeader,
    ImageLimits,
    make_derivative,
    read_header,
    without_trailer,
)
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectNotFound, ObjectStorage
from kai.kit.storage.keys import user_upload_key
from kai.kit.storage.transactional import remove_unless_committed
from kai.kit.threads import IMAGE_CHECKS
from kai.ml import drift, experiments, inference, review
from kai.ml import service as ml
from kai.recognition import projects
from kai.recognition.models import Recognition, RecognitionFeedback, RecognitionSettings
from kai.recognition.repository import RecognitionRepository
from kai.search import visual
from kai.search.service import visual_filter

DEFAULT_CONFIDENCE = 0.5
DEFAULT_NEAR_DUPLICATE = 0.95
# Longer side of the copy of a recognized photo that is shown (the original never is).
PHOTO_SIDE = PROCESSED_SIDE


class RecognitionNotFound(NotFound):
    type, title = "recognition-not-found", "No such recognition"


class InvalidFeedback(Unprocessable):
    type, title = "invalid-feedback", "The feedback cannot be recorded"


@dataclass(frozen=True)
class RecognitionOptions:
    top_k: int = 5
    similar_k: int = 10
    # Similar materials only within this category's subtree, and with these property values.
    category_id: uuid.UUID | None = None
    filters: Sequence[str] = ()
    # File the recognition in this project (one the actor sees, not archived).
    project_id: uuid.UUID | None = None
    # Who it is for, in an A/B test (None: the credential calling).
    subject: str | None = None


@dataclass
class Recognized:
    """A stored recognition and what the answer needs beside it."""

    recognition: Recognition
    model_version_number: int | None


class Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()

    def lap(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[step] = round(self.timings.get(step, 0.0) + (now - since) * 1000, 3)
        return now

    def total(self) -> None:
        self.timings["total"] = round((time.perf_counter() - self._started) * 1000, 3)


async def recognize(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    data: bytes,
    file_name: str,
    options: RecognitionOptions,
    settings: Settings,
    limits: ImageLimits,
) -> Recognized:
    """Recognize one photo with the organization's predictor and store the answer."""
    organization_id = actor.tenant_id
    clock = Stopwatch()
    started = time.perf_counter()
    predictor = await inference.predictor_for(
        session,
        storage,
        organization_id=organization_id,
        settings=settings,
        limits=limits,
        subject=options.subject or actor.author,
    )
    if options.project_id is not None:
        await projects.open_project(session, actor=actor, project_id=options.project_id)
    similarity_filter = await visual_filter(
        session, actor=actor, category_id=options.category_id, filters=options.filters
    )
    thresholds = await _settings(session, organization_id)
    started = clock.lap("load", started)
    # Whatever follows the picture's end (an appended zip, a phone's motion video) is dropped.
    # Checks run on the image-check threads, never on those password checks need.
    data, header = await IMAGE_CHECKS.run(_checked, data, limits)
    recognition_id = new_id()
    image_key = user_upload_key(
        organization_id, f"recognitions/{recognition_id}.{EXTENSIONS[header.format]}"
    )
    # The photo is stored while it is decoded and embedded (on other cores), and removed
    # again if the recognition is not committed after all (its pixels unreadable, say). The
    # copy that is shown is made when it is first asked for: most photos are never looked at
    # again, and making it here would cost a recognition three times its decoding.
    await remove_unless_committed(session, storage, image_key)
    storing = asyncio.create_task(
        storage.put(image_key, data, content_type=CONTENT_TYPES[header.format])
    )
    try:
        (prediction,) = await predictor.predict_many(
            [data],
            top_k=options.top_k,
            confidence_threshold=thresholds.confidence_threshold,
        )
        if prediction.failure is not None:
            raise prediction.failure
        clock.timings.update(prediction.timings)
        started = time.perf_counter()
        inspected = prediction.inspected
        assert inspected is not None
        recognition = Recognition(
            id=recognition_id,
            organization_id=organization_id,
            model_version_id=predictor.version.id,
            project_id=options.project_id,
            image_key=image_key,
            sha256=inspected.sha256,
            content_type=inspected.content_type,
            width=inspected.width,
            height=inspected.height,
            file_name=file_name[:255],
            created_by=actor.author,
        )
        similar = await visual.similar_materials(
            session,
            vector=prediction.similarity_vector,
            how_many=options.similar_k,
            category_ids=similarity_filter[0],
            properties=similarity_filter[1],
        )
        started = clock.lap("similar", started)
        apply_prediction(recognition, prediction, similar)
        recognition.timings = {}
        await storing
        started = clock.lap("store", started)
        await RecognitionRepository(session).add(recognition)
        await inference.keep_features(session, predictor, [(image_key, prediction)])
        clock.lap("record", started)
        clock.total()
        recognition.timings = dict(clock.timings)
        await session.flush()
        await observe(session, predictor, recognition, prediction)
        return Recognized(recognition=recognition, model_version_number=predictor.version.number)
    except BaseException:
        # Stored in full before the transaction's end removes it, or it would outlive that.
        with contextlib.suppress(Exception):
            await storing
        raise


def _checked(data: bytes, limits: ImageLimits) -> tuple[bytes, ImageHeader]:
    """The photo without what follows its picture, and what its header says it is (refused
    here when its format or size is not one KAI accepts)."""
    kept = without_trailer(data)
    return kept, read_header(kept, limits)


def shown_key(organization_id: uuid.UUID, recognition_id: uuid.UUID) -> str:
    """Where the copy of a recognition's photo that is shown is kept: WebP, at most
    PHOTO_SIDE on its longer side, without the original's metadata."""
    return user_upload_key(organization_id, f"recognitions/shown/{recognition_id}.webp")


def shown_copy(data: bytes, limits: ImageLimits) -> bytes:
    """The copy of a photo that is shown (blocking: a decode and an encode)."""
    return make_derivative(data, max_side=PHOTO_SIDE, limits=limits).data


async def shown_photo(
    storage: ObjectStorage, recognition: Recognition, *, limits: ImageLimits
) -> bytes:
    """The copy of the recognition's photo that is shown: made on its first showing and kept,
    so each photo is decoded for showing once, not on every request."""
    key = shown_key(recognition.organization_id, recognition.id)
    try:
        return await storage.read(key)
    except ObjectNotFound:
        pass
    original = await storage.read(recognition.image_key)
    shown = await IMAGE_CHECKS.run(shown_copy, original, limits)
    # Named by the committed row's id, like its photo: kept as long as the photo is.
    await storage.put(key, shown, content_type=CONTENT_TYPES["webp"])
    return shown


async def observe(
    session: AsyncSession,
    predictor: inference.Predictor,
    recognition: Recognition,
    prediction: inference.Prediction,
) -> None:
    """What the version answered is kept for drift; and a recognition made during an A/B
    test is one of its observations."""
    await drift.record_served(
        session,
        organization_id=recognition.organization_id,
        version_id=predictor.version.id,
        recognition_id=recognition.id,
        image_key=recognition.image_key,
        label=recognition.label,
        confidence=recognition.confidence or 0.0,
        unknown=recognition.unknown,
    )
    await review.consider(
        session,
        organization_id=recognition.organization_id,
        recognition_id=recognition.id,
        image_key=recognition.image_key,
        features_of=predictor.features[inference.SIMILARITY_BACKBONE],
        unknown=recognition.unknown,
        predictions=recognition.predictions,
        shadow=prediction.shadow,
        label=recognition.label,
    )
    if predictor.assignment is None:
        await session.flush()
        return
    await experiments.observe(
        session,
        experiment_id=predictor.assignment.experiment_id,
        organization_id=recognition.organization_id,
        recognition_id=recognition.id,
        variant=predictor.assignment.variant,
        label=recognition.label,
        category_id=recognition.category_id,
        confidence=recognition.confidence or 0.0,
        unknown=recognition.unknown,
        latency_ms=float(recognition.timings.get("total", 0.0)),
        shadow=prediction.shadow,
    )


def apply_prediction(
    recognition: Recognition,
    prediction: inference.Prediction,
    similar: Sequence[visual.SimilarMaterial],
) -> None:
    """Write what KAI said of the photo, and its similar materials, into the recognition."""
    best = prediction.predictions[0]
    known = prediction.unknown_reason is None
    recognition.label = best["label"] if known else None
    recognition.category_id = _uuid(best["category_id"]) if known else None
    recognition.confidence = best["confidence"]
    recognition.unknown = not known
    recognition.unknown_reason = prediction.unknown_reason
    recognition.predictions = prediction.predictions
    recognition.similar = [_similar_json(item) for item in similar]


async def _settings(session: AsyncSession, organization_id: uuid.UUID) -> RecognitionSettings:
    found = await RecognitionRepository(session).settings(organization_id)
    return found or RecognitionSettings(
        organization_id=organization_id,
        confidence_threshold=DEFAULT_CONFIDENCE,
        near_duplicate_threshold=DEFAULT_NEAR_DUPLICATE,
    )


def _similar_json(found: visual.SimilarMaterial) -> dict[str, Any]:
    return {
        "material_id": str(found.material_id),
        "name": found.name,
        "code": found.code,
        "score": found.score,
        "image_id": str(found.image_id),
    }


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


async def get_recognition(
    session: AsyncSession, *, actor: Actor, recognition_id: uuid.UUID
) -> Recognition:
    """The recognition, if the actor may see it (it may be filed in a project hidden to them)."""
    found = await RecognitionRepository(session).get(
        actor.tenant_id, recognition_id, visible=await projects.visibility(session, actor)
    )
    if found is None:
        raise RecognitionNotFound(f"No recognition {recognition_id} that you can see.")
    return found


async def list_recognitions(
    session: AsyncSession,
    *,
    actor: Actor,
    label: str | None,
    unknown: bool | None,
    model_version_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    params: PageParams,
) -> tuple[list[Recognition], str | None]:
    """Recognitions the actor may see, optionally of one project only.

    A filter narrows the list: a project that does not exist, or that the actor may not see,
    matches nothing (an empty page, as for every other filter by id), not a 404.
    """
    return await RecognitionRepository(session).list_page(
        actor.tenant_id,
        label=label,
        unknown=unknown,
        model_version_id=model_version_id,
        project_id=project_id,
        since=since,
        until=until,
        visible=await projects.visibility(session, actor),
        params=params,
    )


async def give_feedback(
    session: AsyncSession,
    *,
    actor: Actor,
    recognition_id: uuid.UUID,
    correct: bool | None,
    category_id: uuid.UUID | None,
    material_id: uuid.UUID | None,
    comment: str,
) -> RecognitionFeedback:
    """Record what the photo really is; it becomes a labelled photo for the next training.

    Feedback that contradicts itself ("right", naming something other than the answer, or
    "wrong", naming the answer) is refused: it would teach the next training something false.
    """
    from kai.catalog.materials import get_material

    recognition = await get_recognition(session, actor=actor, recognition_id=recognition_id)
    category = material = None
    if category_id is not None:
        category = await categories.get_category(session, actor=actor, category_id=category_id)
    if material_id is not None:
        material = await get_material(session, actor=actor, material_id=material_id)
    correct = await _verdict(session, actor, recognition, correct, category, material)
    repository = RecognitionRepository(session)
    feedback = await repository.save_feedback(
        RecognitionFeedback(
            recognition_id=recognition.id,
            organization_id=actor.tenant_id,
            correct=correct,
            category_id=category_id,
            material_id=material_id,
            comment=comment,
            created_by=actor.author,
        )
    )
    # The photo is what the person named (a material brings its own category), or, named
    # nothing but right, what KAI said. The latest feedback's label replaces any earlier one.
    said = recognition.category_id if correct and material_id is None else None
    await ml.label_recognized_photo(
        session,
        actor=actor,
        recognition_id=recognition.id,
        image_key=recognition.image_key,
        category_id=category_id or said,
        material_id=material_id,
    )
    # Made during an A/B test: the answer shown is now judged (and a shadow's beside it).
    await experiments.judged(
        session,
        organization_id=actor.tenant_id,
        recognition_id=recognition.id,
        correct=correct,
        category_id=category_id or (material.category_id if material is not None else said),
    )
    return feedback


async def _verdict(
    session: AsyncSession,
    actor: Actor,
    recognition: Recognition,
    correct: bool | None,
    category: Category | None,
    material: Material | None,
) -> bool:
    """Whether KAI was right, as the feedback says it or as what it names implies; refused
    (InvalidFeedback) where the two disagree, or where it says too little."""
    if correct and recognition.unknown:
        raise InvalidFeedback(
            "KAI said it did not know: say what the photo is (category_id or material_id).",
            errors=[_feedback_error("correct", "name the right answer")],
        )
    if category is None and material is None:
        if not correct:
            raise InvalidFeedback(
                "A wrong answer needs the right one: a category_id or a material_id.",
                errors=[{"loc": ["body"], "msg": "category_id or material_id", "type": "missing"}],
            )
        return True
    if (
        category is not None
        and material is not None
        and not await _inside(session, actor, material.category_id, category.id)
    ):
        raise InvalidFeedback(
            f"The material {material.code} is not in the category {category.name}: name "
            "one of them, or a material of that category.",
            errors=[_feedback_error("material_id", "not in category_id")],
        )
    agrees = await _names_the_answer(session, actor, recognition, category, material)
    if correct is not None and correct != agrees:
        named = _what(category, material)
        raise InvalidFeedback(
            f"KAI answered {recognition.label}, and {named} is {'not ' if correct else ''}that: "
            f"send correct {'false' if correct else 'true'}, or leave correct out.",
            errors=[_feedback_error("correct", f"contradicts {named}")],
        )
    return agrees


def _what(category: Category | None, material: Material | None) -> str:
    if material is not None:
        return f"the material {material.name} ({material.code})"
    assert category is not None
    return f"the category {category.name}"


def _feedback_error(field: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": message, "type": "value"}


async def _names_the_answer(
    session: AsyncSession,
    actor: Actor,
    recognition: Recognition,
    category: Category | None,
    material: Material | None,
) -> bool:
    """Whether the category or material named is what KAI answered, or inside it."""
    if recognition.unknown:
        return False
    if material is not None and await ml.labels_materials(
        session, organization_id=actor.tenant_id, version_id=recognition.model_version_id
    ):
        return recognition.label == ml.material_label(material.name, material.code)
    if recognition.category_id is None:
        return False
    named = material.category_id if material is not None else category.id if category else None
    return await _inside(session, actor, named, recognition.category_id)


async def _inside(
    session: AsyncSession, actor: Actor, category_id: uuid.UUID | None, within: uuid.UUID
) -> bool:
    """Whether the category `category_id` is `within` or one of its descendants."""
    if category_id is None:
        return False
    if category_id == within:
        return True
    category = await categories.get_category(session, actor=actor, category_id=category_id)
    return within in category.path


async def recognition_settings(session: AsyncSession, *, actor: Actor) -> RecognitionSettings:
    return await _settings(session, actor.tenant_id)


async def update_recognition_settings(
    session: AsyncSession,
    *,
    actor: Actor,
    confidence: float | None = None,
    near_duplicate: float | None = None,
) -> RecognitionSettings:
    """Change the thresholds given; those not given stay as they are."""
    current = await _settings(session, actor.tenant_id)
    return await RecognitionRepository(session).save_settings(
        actor.tenant_id,
        confidence=current.confidence_threshold if confidence is None else confidence,
        near_duplicate=(
            current.near_duplicate_threshold if near_duplicate is None else near_duplicate
        ),
    )
