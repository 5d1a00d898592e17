"""The review queue (active learning): the recognitions most worth a person's label.

A recognition is queued when KAI said it did not know, when its two best answers were close
(a margin under `LOW_MARGIN`), or when, in a shadow A/B test, the challenger said something
else. The queue is shown ranked so that near-identical photos do not crowd it: items are
taken greedily by their reason's weight less how alike they are (cosine, by the catalog
backbone's embedding from the feature store) to those already taken (maximal marginal
relevance). A reviewer's label goes through the recognition's feedback, and so becomes
training data; the item is then done.

An organization's settings say when new labels, or a drift event, queue the training of a new
challenger: trained, never activated, and tested against the champion only under the
organization's own rule (`start_test`, with or without `auto_promote`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit
from kai.identity.actor import Actor
from kai.kit.jobs.queue import enqueue_kind, enqueue_unless_waiting
from kai.ml.models import ModelSettings, ModelVersion, ReviewItem
from kai.ml.repository import ModelVersionRepository, ReviewRepository
from kai.search import features

LOW_MARGIN = 0.2
# How much each reason weighs in the ranking (before diversity).
WEIGHTS = {"disagreement": 1.0, "unknown": 0.8, "low_margin": 0.6}
# How much likeness to an item already taken costs (0: none, 1: as much as the reason).
DIVERSITY = 0.7
# Pending items ranked at once (the newest this many).
RANKED = 500


def reason_for(
    *,
    unknown: bool,
    predictions: list[dict[str, Any]],
    shadow: dict[str, Any] | None,
    label: str | None,
) -> str | None:
    """Why a recognition is worth reviewing, or None."""
    if shadow is not None and shadow.get("label") != label:
        return "disagreement"
    if unknown:
        return "unknown"
    if len(predictions) > 1:
        margin = float(predictions[0]["confidence"]) - float(predictions[1]["confidence"])
        if margin < LOW_MARGIN:
            return "low_margin"
    return None


async def consider(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    recognition_id: uuid.UUID,
    image_key: str,
    features_of: str,
    unknown: bool,
    predictions: list[dict[str, Any]],
    shadow: dict[str, Any] | None,
    label: str | None,
) -> ReviewItem | None:
    """Queue the recognition if it is worth a person's look."""
    reason = reason_for(unknown=unknown, predictions=predictions, shadow=shadow, label=label)
    if reason is None:
        return None
    item = ReviewItem(
        recognition_id=recognition_id,
        organization_id=organization_id,
        image_key=image_key,
        features_of=features_of,
        reason=reason,
        margin=_margin(predictions),
    )
    session.add(item)
    return item


def _margin(predictions: list[dict[str, Any]]) -> float | None:
    if len(predictions) < 2:
        return None
    return round(float(predictions[0]["confidence"]) - float(predictions[1]["confidence"]), 4)


def rank(items: list[ReviewItem], vectors: dict[str, np.ndarray]) -> list[ReviewItem]:
    """Items in review order: by weight, less likeness to those taken before (greedy)."""
    weights = np.asarray([WEIGHTS.get(item.reason, 0.5) for item in items])
    if not items:
        return []
    width = next((len(vector) for vector in vectors.values()), 0)
    rows = np.zeros((len(items), max(width, 1)))
    for index, item in enumerate(items):
        vector = vectors.get(item.image_key)
        if vector is not None and len(vector) == width:
            norm = float(np.linalg.norm(vector))
            rows[index] = vector / norm if norm > 0 else vector
    taken: list[int] = []
    closest = np.zeros(len(items))
    remaining = set(range(len(items)))
    while remaining:
        candidates = sorted(remaining)
        scores = weights[candidates] - DIVERSITY * closest[candidates]
        best = candidates[int(np.argmax(scores))]
        taken.append(best)
        remaining.discard(best)
        likeness = rows @ rows[best]
        closest = np.maximum(closest, likeness)
    return [items[index] for index in taken]


async def queue(
    session: AsyncSession, *, organization_id: uuid.UUID, limit: int
) -> tuple[list[ReviewItem], int]:
    """The pending items in review order (at most `limit`), and how many are pending."""
    repository = ReviewRepository(session)
    pending = await repository.pending(organization_id, limit=RANKED)
    by_features: dict[str, list[str]] = {}
    for item in pending:
        by_features.setdefault(item.features_of, []).append(item.image_key)
    vectors: dict[str, np.ndarray] = {}
    for named, keys in by_features.items():
        vectors.update(
            await features.stored(
                session, organization_id=organization_id, features=named, keys=keys
            )
        )
    return rank(pending, vectors)[:limit], await repository.count_pending(organization_id)


async def resolve(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    recognition_id: uuid.UUID,
    status: str,
    by: str,
) -> ReviewItem | None:
    """Mark the recognition's item labelled (or skipped); None if it was never queued."""
    item = await ReviewRepository(session).get(organization_id, recognition_id)
    if item is None:
        return None
    item.status = status
    item.resolved_by = by
    item.resolved_at = datetime.now(UTC)
    await session.flush()
    return item


async def settings_of(session: AsyncSession, *, organization_id: uuid.UUID) -> ModelSettings:
    """The organization's rules (the defaults, never automatic, when it set none)."""
    found = await ReviewRepository(session).settings(organization_id)
    return found or ModelSettings(
        organization_id=organization_id,
        retrain_after_labels=None,
        retrain_on_drift=False,
        test_challenger=False,
        auto_promote=False,
    )


async def change_settings(
    session: AsyncSession, *, actor: Actor, values: dict[str, Any]
) -> ModelSettings:
    """Change the rules given; the others stay as they are."""
    repository = ReviewRepository(session)
    found = await repository.settings(actor.tenant_id)
    if found is None:
        found = await settings_of(session, organization_id=actor.tenant_id)
        session.add(found)
    for name, value in values.items():
        setattr(found, name, value)
    await session.flush()
    await audit.record(
        session,
        action="model.settings_changed",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="model_settings",
        details=dict(values),
    )
    return found


RETRAINING_KIND = "ml.consider_retraining"


async def queue_retraining_check(
    session: AsyncSession, *, organization_id: uuid.UUID, because: str
) -> None:
    """Have a job consider a challenger once this transaction commits: the training itself is
    heavy work, which a cheap request (a feedback) may not queue, and need not wait for."""
    if because == "labels":
        await enqueue_unless_waiting(session, RETRAINING_KIND, organization_id=organization_id)
    else:
        await enqueue_kind(
            session, RETRAINING_KIND, params={"because": because}, organization_id=organization_id
        )


async def consider_retraining(
    session: AsyncSession, *, organization_id: uuid.UUID, because: str
) -> ModelVersion | None:
    """Queue the training of a challenger if the organization's rules call for it now:
    enough photos labelled since the newest version (`labels`), or drift (`drift`). The
    challenger is trained like the active version, and never activated by its training."""
    from kai.ml import experiments, training

    rules = await settings_of(session, organization_id=organization_id)
    if because == "labels" and rules.retrain_after_labels is None:
        return None
    if because == "drift" and not rules.retrain_on_drift:
        return None
    repository = ReviewRepository(session)
    if await repository.training(organization_id):
        return None
    active = await ModelVersionRepository(session).active(organization_id)
    if active is None:
        return None  # the first version is a person's to train
    if because == "labels":
        newest = await repository.newest_version_at(organization_id)
        labelled = await repository.labels_since(organization_id, newest)
        if labelled < (rules.retrain_after_labels or 0):
            return None
    actor = Actor(kind="operator", organization_id=organization_id, permissions=frozenset())
    options = training.options_of(active).model_copy(update={"activate": False})
    version = await training.start_training(session, actor=actor, options=options)
    version.options = {**version.options, "challenger": True, "trained_because": because}
    await session.flush()
    await experiments.event(
        session,
        organization_id=organization_id,
        kind="model.challenger_queued",
        data={"model_version": version.number, "because": because},
    )
    return version


async def test_new_challenger(session: AsyncSession, *, version: ModelVersion) -> None:
    """A challenger trained by the rules is A/B-tested against the champion if they say so."""
    from kai.ml import experiments

    if not version.options.get("challenger") or version.status != "ready":
        return
    rules = await settings_of(session, organization_id=version.organization_id)
    if not rules.test_challenger:
        return
    if await experiments.running(session, organization_id=version.organization_id) is not None:
        return
    actor = Actor(kind="operator", organization_id=version.organization_id, permissions=frozenset())
    await experiments.start(
        session,
        actor=actor,
        challenger_version_id=version.id,
        mode="split",
        challenger_share=0.5,
        auto_promote=rules.auto_promote,
        min_feedback=100,
        max_recognitions=None,
        ends_at=None,
        loss_threshold=0.005,
    )
