"""Training an organization's recognizer: which photos with which labels (a recorded snapshot),
their embeddings by each backbone, validated heads and their vote, stored as a model version.

Labels come from the catalog, each photo labelled by its material's category at a chosen level
of the tree (or by the material itself), and from people's feedback on recognitions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import Field, StrictBool, field_validator, model_validator
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.models import Category
from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.db import new_id
from kai.kit.errors import KaiError
from kai.kit.images import ImageLimits
from kai.kit.schemas import RequestModel
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import model_key
from kai.ml import drift, fine_tuning, image_models, review, tracking
from kai.ml.fine_tuning import FineTuning
from kai.ml.models import ModelVersion
from kai.ml.recognizer import (
    NotEnoughPhotos,
    Recognizer,
    Trained,
    photos_shortfall,
    train_recognizer,
)
from kai.ml.repository import CatalogPhoto, LabeledExample, ModelVersionRepository
from kai.ml.service import material_label
from kai.ml.versions import preparation
from kai.search import features
from kai.search.features import features_of
from kai.search.visual import CATALOG_BACKBONE
from kai.vision import non_materials
from kai.vision.backbones import DEFAULT_BACKBONES, Backbone
from kai.vision.preprocessing import Enhancement, PreparedViews, prepare_views

log = structlog.get_logger(__name__)

# Photos embedded per model call (progress is reported between calls).
EMBED_CHUNK = 16
# Generated images that are plainly not materials (noise, checkerboards, stripes, flat
# colours, gradients, text), this many of each kind, that a new version is measured on: how
# many it calls unlike its training photos is in its metrics. Always the same images.
NON_MATERIALS_PER_KIND = 4
NON_MATERIALS_SEED = 2026
MAX_LABELS = 2000

Progress = Callable[[int, int | None], Awaitable[None]]
Sessions = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class TrainingOptions(RequestModel):
    """What to train on, and how."""

    label_by: Literal["category", "material"] = Field(
        default="category",
        description="Label each photo by its material's category, or by the material itself.",
    )
    category_level: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="With label_by=category: the tree level that names the label (1: the "
        "top-level categories); empty: each material's own category.",
    )
    backbones: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BACKBONES),
        min_length=1,
        max_length=4,
        description="Backbones of the ensemble; the first also measures visual similarity "
        "to the training photos.",
    )
    test_time_augmentation: StrictBool = Field(
        default=False,
        description="Embed each photo also mirrored and average the two, in training and in "
        "every recognition by this version: steadier on textures photographed any way round, "
        "at twice the embedding time.",
    )
    fine_tune: FineTuning | None = Field(
        default=None,
        description="Fine-tune an image network on the organization's photos first (minutes "
        "on a CPU for a few hundred photos): it is kept as the image model "
        "`custom:fine-tuned-v<N>` and this version stands on it.",
    )
    activate: StrictBool = Field(default=True, description="Make the version active once trained.")

    @field_validator("backbones")
    @classmethod
    def _each_once(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("name each backbone once")
        return names

    @model_validator(mode="after")
    def _room_for_fine_tuned(self) -> TrainingOptions:
        tuned = self.fine_tune
        if tuned is not None and tuned.network not in self.backbones and len(self.backbones) > 3:
            raise ValueError(
                "the fine-tuned network joins the backbones: name at most 3 others, or name "
                "the network it starts from among them"
            )
        return self

    def version_backbones(self, fine_tuned: str | None) -> list[str]:
        """The backbones the version stands on: as asked, the fine-tuned model (when there is
        one) in its network's place."""
        if self.fine_tune is None or fine_tuned is None:
            return list(self.backbones)
        return fine_tuning.backbones_with(self.backbones, self.fine_tune.network, fine_tuned)


@dataclass(frozen=True)
class Example:
    """One photo of the training set: where it is and what it is."""

    key: str
    label: str
    category_id: uuid.UUID | None
    source: Literal["catalog", "feedback"]
    reference: uuid.UUID


def options_of(version: ModelVersion) -> TrainingOptions:
    """What the version was trained with (besides the options, a version trained by the
    organization's rules notes why: `challenger`, `trained_because`)."""
    return TrainingOptions.model_validate(
        {
            name: value
            for name, value in version.options.items()
            if name in TrainingOptions.model_fields
        }
    )


async def start_training(
    session: AsyncSession, *, actor: Actor, options: TrainingOptions
) -> ModelVersion:
    """Record a new version in training and queue the job that trains it."""
    from kai.ml.tasks import train_model

    version = await new_version(session, actor=actor, options=options)
    job = await train_model.enqueue(
        session, params={"model_version_id": str(version.id)}, organization_id=actor.tenant_id
    )
    version.job_id = job.id
    await session.flush()
    return version


async def new_version(
    session: AsyncSession, *, actor: Actor, options: TrainingOptions
) -> ModelVersion:
    """A new version of the organization's model, numbered next, to be trained."""
    organization_id = actor.tenant_id
    await image_models.check_backbone_names(session, actor=actor, names=options.backbones)
    repository = ModelVersionRepository(session)
    return await repository.add(
        ModelVersion(
            organization_id=organization_id,
            number=await repository.next_number(organization_id),
            status="training",
            labelling={"label_by": options.label_by, "category_level": options.category_level},
            options=options.model_dump(),
            created_by=actor.author,
        )
    )


def _label_of(
    category_id: uuid.UUID | None, level: int | None, categories: dict[uuid.UUID, Category]
) -> tuple[str, uuid.UUID] | None:
    """The category that names a photo's label at `level` (None: the category itself)."""
    if category_id is None or category_id not in categories:
        return None
    category = categories[category_id]
    if level is not None and len(category.path) >= level:
        category = categories.get(category.path[level - 1], category)
    return category.name, category.id


@dataclass(frozen=True)
class Sources:
    """What an organization's photos may be labelled from: its catalog's photos, the photos
    people labelled in feedback, and the category tree."""

    categories: dict[uuid.UUID, Category]
    catalog: list[CatalogPhoto]
    feedback: list[LabeledExample]


async def training_sources(session: AsyncSession, *, organization_id: uuid.UUID) -> Sources:
    repository = ModelVersionRepository(session)
    return Sources(
        await repository.categories(organization_id),
        await repository.catalog_photos(organization_id),
        await repository.labeled_photos(organization_id),
    )


def label_examples(sources: Sources, options: TrainingOptions) -> list[Example]:
    """The photos to learn from, labelled as `options` say."""
    categories = sources.categories
    examples: list[Example] = []
    # Two categories of one name at a level (Tiles under Stone and under Ceramics) are two
    # labels: the label shown is the name, and the category id keeps them apart.
    for photo in sources.catalog:
        labelled = _catalog_label(photo, options, categories)
        if labelled is not None:
            examples.append(Example(photo.key, labelled[0], labelled[1], "catalog", photo.image_id))
    for labeled in sources.feedback:
        labelled = _feedback_label(labeled, options, categories)
        if labelled is not None:
            examples.append(
                Example(labeled.image_key, labelled[0], labelled[1], "feedback", labeled.id)
            )
    return _distinct_labels(examples)


class TooFewPhotos(NotEnoughPhotos):
    """Labelled this way, the photos cannot be trained on; `remedy` names the labelling
    (`label_by`, `category_level`) under which the same photos could, if one does."""

    def __init__(self, reason: str, *, remedy: dict[str, Any] | None) -> None:
        self.reason = reason
        self.remedy = remedy
        super().__init__(f"{reason} {advice(remedy)}")


def advice(remedy: dict[str, Any] | None, *, as_flags: bool = False) -> str:
    """How to get past too few photos, with the training options (or the `kai train` flags)
    that would do it."""
    if remedy is None:
        return "Add photos: at least two labels, each with two photos or more."
    if as_flags:
        named = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in remedy.items())
    else:
        named = " and ".join(f"{key} {json.dumps(value)}" for key, value in remedy.items())
    return f"Add photos, or train with {named}: every label then has at least two."


def _check_enough_photos(
    examples: Sequence[Example], sources: Sources, options: TrainingOptions
) -> None:
    """Refuse at once, before any photo is embedded, a labelling that cannot be trained on;
    saying which other labelling of the same photos could."""
    shortfall = photos_shortfall([example.label for example in examples])
    if shortfall is None:
        return
    raise TooFewPhotos(shortfall, remedy=_remedy(sources, options))


def _remedy(sources: Sources, options: TrainingOptions) -> dict[str, Any] | None:
    """The finest labelling other than `options` whose every label has two photos or more."""
    depth = max((len(category.path) for category in sources.categories.values()), default=0)
    # Finest first: each material, each photo's own category, then its ancestors level by
    # level up to the top-level categories.
    candidates: list[tuple[str, int | None]] = [("material", None), ("category", None)]
    candidates += [("category", level) for level in range(depth, 0, -1)]
    current = (options.label_by, None if options.label_by == "material" else options.category_level)
    for label_by, level in candidates:
        if (label_by, level) == current:
            continue
        tried = options.model_copy(update={"label_by": label_by, "category_level": level})
        labels = [example.label for example in label_examples(sources, tried)]
        if photos_shortfall(labels) is None:
            remedy: dict[str, Any] = {}
            if label_by != options.label_by:
                remedy["label_by"] = label_by
            if level is not None:
                remedy["category_level"] = level
            return remedy or None
    return None


def _catalog_label(
    photo: CatalogPhoto, options: TrainingOptions, categories: dict[uuid.UUID, Category]
) -> tuple[str, uuid.UUID | None] | None:
    if options.label_by == "material":
        return material_label(photo.material_name, photo.material_code), photo.category_id
    return _label_of(photo.category_id, options.category_level, categories)


def _feedback_label(
    labeled: LabeledExample, options: TrainingOptions, categories: dict[uuid.UUID, Category]
) -> tuple[str, uuid.UUID | None] | None:
    if options.label_by == "material":
        if labeled.material_id is None or labeled.material_label is None:
            return None
        return labeled.material_label, labeled.category_id
    return _label_of(labeled.category_id, options.category_level, categories)


def _distinct_labels(examples: list[Example]) -> list[Example]:
    """Labels made unique: a name that two categories share gets the category's short id."""
    ids_by_name: dict[str, set[uuid.UUID | None]] = {}
    for example in examples:
        ids_by_name.setdefault(example.label, set()).add(example.category_id)
    shared = {name for name, ids in ids_by_name.items() if len(ids) > 1}
    return [
        replace(example, label=f"{example.label} [{str(example.category_id)[:8]}]")
        if example.label in shared
        else example
        for example in examples
    ]


async def embed_examples(
    sessions: Sessions,
    storage: ObjectStorage,
    examples: Sequence[Example],
    backbones: Sequence[Backbone],
    *,
    organization_id: uuid.UUID,
    limits: ImageLimits,
    enhancement: Enhancement,
    progress: Progress | None = None,
) -> tuple[list[Example], dict[str, np.ndarray], list[dict[str, str]]]:
    """Each readable example embedded by every backbone; unreadable ones reported, not fatal.

    What the feature store holds for a photo (its backbone and preparation the same) is read,
    not computed: a photo is decoded only for the backbones that have not seen it yet, and
    what is computed is kept there for the next training."""
    named = {
        backbone.name: features_of(backbone.fingerprint, enhancement.tag) for backbone in backbones
    }
    async with sessions() as session:
        known = {
            name: await features.stored(
                session,
                organization_id=organization_id,
                features=label,
                keys=[example.key for example in examples],
            )
            for name, label in named.items()
        }
    kept: list[Example] = []
    skipped: list[dict[str, str]] = []
    rows: dict[str, list[np.ndarray]] = {backbone.name: [] for backbone in backbones}
    for start in range(0, len(examples), EMBED_CHUNK):
        chunk = examples[start : start + EMBED_CHUNK]
        readable: list[tuple[Example, dict[str, np.ndarray], PreparedViews | None]] = []
        for example in chunk:
            found = {name: known[name][example.key] for name in named if example.key in known[name]}
            missing = [backbone for backbone in backbones if backbone.name not in found]
            prepared = None
            if missing:
                try:
                    data = await storage.read(example.key)
                    prepared = await asyncio.to_thread(
                        prepare_views,
                        data,
                        sides=sorted({backbone.input_side for backbone in missing}),
                        enhancement=enhancement,
                        limits=limits,
                    )
                except (KaiError, OSError) as exc:
                    skipped.append({"key": example.key, "reason": str(exc)[:300]})
                    continue
            readable.append((example, found, prepared))
        fresh: dict[str, dict[str, np.ndarray]] = {name: {} for name in named}
        for backbone in backbones:
            needing = [
                (example, prepared)
                for example, found, prepared in readable
                if backbone.name not in found and prepared is not None
            ]
            if needing:
                photos = [prepared.views[backbone.input_side] for _, prepared in needing]
                computed = await asyncio.to_thread(backbone.embed, photos)
                for (example, _), row in zip(needing, computed, strict=True):
                    fresh[backbone.name][example.key] = row
        if any(fresh.values()):
            async with sessions() as session:
                await features.keep(
                    session,
                    organization_id=organization_id,
                    rows=[
                        (named[name], key, vector)
                        for name, vectors in fresh.items()
                        for key, vector in vectors.items()
                    ],
                )
        for example, found, _ in readable:
            kept.append(example)
            for backbone in backbones:
                name = backbone.name
                rows[name].append(found[name] if name in found else fresh[name][example.key])
        if progress is not None:
            await progress(min(start + EMBED_CHUNK, len(examples)), len(examples))
    embeddings = {
        backbone.name: (
            np.stack(rows[backbone.name]).astype(np.float32)
            if rows[backbone.name]
            else np.zeros((0, backbone.dimension), np.float32)
        )
        for backbone in backbones
    }
    return kept, embeddings, skipped


def measure_non_materials(
    recognizer: Recognizer,
    backbones: Sequence[Backbone],
    *,
    enhancement: Enhancement,
    limits: ImageLimits,
) -> dict[str, Any]:
    """How many of the generated non-materials the recognizer calls unlike its training
    photos, in all and by kind (blocking: embeds them)."""
    made = non_materials.non_materials(NON_MATERIALS_PER_KIND, seed=NON_MATERIALS_SEED)
    sides = sorted({backbone.input_side for backbone in backbones})
    prepared = [
        prepare_views(image, sides=sides, enhancement=enhancement, limits=limits)
        for image in (non_materials.png(pixels) for _, pixels in made)
    ]
    needed = set(recognizer.backbones)
    embeddings = {
        backbone.name: backbone.embed([views.views[backbone.input_side] for views in prepared])
        for backbone in backbones
        if backbone.name in needed
    }
    unlike = recognizer.unlike_training(embeddings)
    kinds = np.asarray([kind for kind, _ in made])
    return {
        "images": len(made),
        "unlike": round(float(np.mean(unlike)), 4),
        "unlike_by_kind": {
            kind: round(float(np.mean(unlike[kinds == kind])), 4) for kind in non_materials.KINDS
        },
    }


@dataclass(frozen=True)
class _Plan:
    """What one training run works from, read in one short transaction."""

    version: ModelVersion
    options: TrainingOptions
    backbones: list[Backbone]
    examples: list[Example]


async def run_training(
    sessions: Sessions,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    version_id: uuid.UUID,
    settings: Settings,
    limits: ImageLimits,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the version; raises NotEnoughPhotos or BackboneUnavailable when it cannot be.

    No transaction stays open while it trains: what to learn from is read in one short
    transaction (`sessions()` opens each), the photos are embedded and the heads trained with
    none, and the version is written in another. Run twice at once (a stalled job handed to a
    second worker) or again after it finished, the version is trained once: whichever run
    records it first wins, and the other's files are removed.
    """
    async with sessions() as session:
        plan = await _plan(
            session,
            storage,
            organization_id=organization_id,
            version_id=version_id,
            settings=settings,
        )
    if isinstance(plan, str):
        return {"skipped": plan}
    version, options, backbones = plan.version, plan.options, plan.backbones
    tuned_report: dict[str, Any] | None = None
    if options.fine_tune is not None:
        tuned = await fine_tuning.fine_tuned_model(
            sessions,
            storage,
            version=version,
            options=options.fine_tune,
            photos=[fine_tuning.Photo(example.key, example.label) for example in plan.examples],
            progress=progress,
        )
        tuned_report = tuned.details
        async with sessions() as session:
            backbones = [
                await image_models.load_backbone(
                    session, storage, organization_id=organization_id, name=name, settings=settings
                )
                for name in options.version_backbones(image_models.CUSTOM_PREFIX + tuned.name)
            ]
    kept, embeddings, skipped = await embed_examples(
        sessions,
        storage,
        plan.examples,
        backbones,
        organization_id=organization_id,
        limits=limits,
        enhancement=preparation(version, settings),
        progress=progress,
    )
    labels = [example.label for example in kept]
    trained = await asyncio.to_thread(
        train_recognizer,
        embeddings,
        labels,
        standardize={backbone.name: backbone.standardize for backbone in backbones},
    )
    recognizer = trained.recognizer
    try:
        trained.metrics["unknown"]["non_materials"] = await asyncio.to_thread(
            measure_non_materials,
            recognizer,
            backbones,
            enhancement=preparation(version, settings),
            limits=limits,
        )
    except KaiError as exc:
        # A measure of the version, not the version: an uploaded model busy or failing on a
        # generated image leaves it out rather than failing the training.
        log.warning("ml.non_materials_unmeasured", error=exc.detail or exc.title)
        trained.metrics["unknown"]["non_materials"] = None
    snapshot = {
        "model_version_id": str(version.id),
        "made_at": datetime.now(UTC).isoformat(),
        "options": options.model_dump(),
        "photos": [
            {
                **asdict(example),
                "category_id": _text(example.category_id),
                "reference": str(example.reference),
            }
            for example in kept
        ],
        "skipped": skipped,
    }
    # This run's own files: another run of the same version never writes over them.
    run_folder = f"{version.id}/{new_id()}"
    dataset_key = model_key(organization_id, f"{run_folder}/dataset.json")
    artifact_key = model_key(organization_id, f"{run_folder}/recognizer.npz")
    reference_key = model_key(organization_id, f"{run_folder}/reference.npz")
    reference = await asyncio.to_thread(
        _reference, trained, embeddings, backbones, preparation(version, settings).tag
    )
    written: list[str] = []
    try:
        if reference is not None:
            await storage.put(
                reference_key, reference.to_bytes(), content_type="application/octet-stream"
            )
            written.append(reference_key)
        await storage.put(
            dataset_key, json.dumps(snapshot).encode(), content_type="application/json"
        )
        written.append(dataset_key)
        await storage.put(
            artifact_key, recognizer.to_bytes(), content_type="application/octet-stream"
        )
        written.append(artifact_key)
        category_of = {example.label: example.category_id for example in kept}
        counts = {label: labels.count(label) for label in recognizer.labels}
        async with sessions() as session:
            not_recorded = await _record_trained(
                session,
                organization_id=organization_id,
                version_id=version_id,
                activate=options.activate,
                values={
                    "labels": [
                        {
                            "label": label,
                            "category_id": _text(category_of.get(label)),
                            "photos": counts[label],
                        }
                        for label in recognizer.labels
                    ],
                    "backbones": [
                        {
                            "name": backbone.name,
                            "fingerprint": backbone.fingerprint,
                            "vote": trained.metrics["votes"][backbone.name],
                        }
                        for backbone in backbones
                    ],
                    "metrics": {
                        **trained.metrics,
                        "skipped_photos": len(skipped),
                        **({"fine_tuning": tuned_report} if tuned_report is not None else {}),
                    },
                    "temperature": recognizer.temperature,
                    "novelty_threshold": recognizer.novelty_threshold,
                    "dataset_key": dataset_key,
                    "artifact_key": artifact_key,
                    "reference_key": reference_key if reference is not None else None,
                },
            )
    except BaseException as exc:
        # Named by no committed version, nobody could ever reach them; unless the connection
        # was lost while recording, and the version may have been written after all.
        if not (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            await _remove(storage, written)
        raise
    if not_recorded is not None:
        await _remove(storage, written)
        return {"skipped": not_recorded}
    log.info(
        "ml.trained",
        model_version=version.number,
        photos=len(kept),
        labels=len(recognizer.labels),
        accuracy=trained.metrics["accuracy"],
    )
    return {
        "model_version_id": str(version.id),
        "photos": len(kept),
        "labels": len(recognizer.labels),
        "accuracy": trained.metrics["accuracy"],
        "macro_f1": trained.metrics["macro_f1"],
    }


def _reference(
    trained: Trained,
    embeddings: dict[str, np.ndarray],
    backbones: Sequence[Backbone],
    preparation_tag: str,
) -> drift.Reference | None:
    """What the version's validation data looked like, for drift: the training photos by the
    catalog backbone (or the first one), and the held-out answers."""
    if trained.held_out is None:
        return None
    by_name = {backbone.name: backbone for backbone in backbones}
    name = CATALOG_BACKBONE if CATALOG_BACKBONE in by_name else backbones[0].name
    return drift.make_reference(
        backbone=name,
        features_of=features_of(by_name[name].fingerprint, preparation_tag),
        embeddings=embeddings[name],
        held_out=trained.held_out,
        labels=trained.recognizer.labels,
        unknown_share=float(trained.metrics["unknown"]["held_out_unlike"]),
    )


async def _plan(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    version_id: uuid.UUID,
    settings: Settings,
) -> _Plan | str:
    """The version, its backbones and the photos to learn from; or why there is nothing to do."""
    version = await ModelVersionRepository(session).get(organization_id, version_id)
    if version is None:
        return "model version deleted"
    if version.status != "training":
        return f"model version already {version.status}"
    options = options_of(version)
    sources = await training_sources(session, organization_id=organization_id)
    examples = label_examples(sources, options)
    if len({example.label for example in examples}) > MAX_LABELS:
        raise NotEnoughPhotos(f"More than {MAX_LABELS} labels: choose a higher category level.")
    _check_enough_photos(examples, sources, options)
    # With fine-tuning, the backbones are loaded once the fine-tuned one exists.
    backbones = (
        [
            await image_models.load_backbone(
                session, storage, organization_id=organization_id, name=name, settings=settings
            )
            for name in options.backbones
        ]
        if options.fine_tune is None
        else []
    )
    return _Plan(version, options, backbones, examples)


async def _record_trained(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    version_id: uuid.UUID,
    activate: bool,
    values: dict[str, Any],
) -> str | None:
    """Write the trained version; unless another run did first (or it went), and then why
    nothing was written."""
    repository = ModelVersionRepository(session)
    version = await repository.get(organization_id, version_id, for_update=True)
    if version is None:
        return "model version deleted"
    if version.status != "training":
        return f"model version already {version.status}"
    for name, value in values.items():
        setattr(version, name, value)
    version.status = "ready"
    version.trained_at = datetime.now(UTC)
    await session.flush()
    if activate:
        await repository.activate(organization_id, version.id)
    await tracking.queue_sync(session, organization_id=organization_id)
    # A challenger the organization's rules trained is tested if they say so.
    await review.test_new_challenger(session, version=version)
    return None


async def _remove(storage: ObjectStorage, keys: Sequence[str]) -> None:
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            log.warning("ml.training_file_kept", key=key, exc_info=True)


async def record_failure(
    session: AsyncSession, *, organization_id: uuid.UUID, version_id: uuid.UUID, reason: str
) -> None:
    version = await ModelVersionRepository(session).get(organization_id, version_id)
    if version is not None and version.status == "training":
        version.status = "failed"
        version.error = reason[:2000]
        await session.flush()


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
