"""A/B tests between an organization's active model version (the champion) and a challenger.

Assignment is deterministic: a subject (a person, an API key, or whoever the client names) is
hashed with the test's id, so it sees the same variant every time. Every recognition made
during a test is an observation: the variant, its answer, confidence, whether it was unknown
and its latency; feedback later says whether it was right. In shadow mode the champion answers
every photo and the challenger's answer is kept beside it, never shown.

The decision is Bayesian. Each variant's accuracy on the recognitions people gave feedback on
has a Beta(1 + right, 1 + wrong) posterior; from 20,000 draws of each (seeded by the test, so
a figure does not move between two looks at the same data) come the probability that the
challenger is better, and the expected loss of choosing each variant: how much accuracy would
be given up, on average over the posterior, if it were the worse one. The test ends as soon as
both variants have `min_feedback` answers judged (100 by default) and one variant is both
likely the better (probability 0.95 or more) and cheap to choose (expected loss under
`loss_threshold`, half a point of accuracy by default): that variant wins. The rule may be
looked at after every answer, as the periodic judge does: the posterior does not depend on
when one looks, and the two conditions together keep early luck from deciding. Simulated with
a look after every 20 answers a side (tests/ml/test_experiments.py), a challenger 5 points
worse (75 % against 80 %) was promoted in 1 test of 100 and kept in 94; one 5 points better
was promoted in 95 and kept in 2. Equal variants rarely decide: a test that spends its budget
(`max_recognitions`, `ends_at`) without a clear result keeps the champion unless the
challenger is better with probability 0.95 or more. A winning challenger is promoted only
under the organization's rule (`auto_promote`); otherwise the test says so and waits for a
person (`promote`).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.identity import audit
from kai.identity.actor import Actor
from kai.kit.db import new_id, scoped_transaction
from kai.kit.errors import Conflict, NotFound, Unprocessable
from kai.kit.pagination import PageParams
from kai.ml import tracking
from kai.ml.models import ExperimentObservation, ModelEvent, ModelExperiment
from kai.ml.repository import ExperimentRepository, ModelVersionRepository

CHAMPION = "champion"
CHALLENGER = "challenger"
DRAWS = 20_000
# A variant wins only when it is at least this likely to be the better one (as well as its
# expected loss being small), and, with the budget spent, so does the challenger.
DECISION_PROBABILITY = 0.95
BUDGET_CONFIDENCE = DECISION_PROBABILITY


class ExperimentNotFound(NotFound):
    type, title = "experiment-not-found", "No such A/B test"


class ExperimentRefused(Unprocessable):
    type, title = "experiment-refused", "The A/B test cannot be started"


class ExperimentRunning(Conflict):
    type, title = "experiment-running", "An A/B test is running already"
    constraints = ("uq_model_experiments_running",)


class ExperimentOver(Conflict):
    type, title = "experiment-over", "The A/B test has ended"


def variant_of(experiment: ModelExperiment, subject: str) -> str:
    """The variant `subject` sees in a split test: the same every time."""
    digest = hashlib.sha256(f"{experiment.id}:{subject}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    return CHALLENGER if point < experiment.challenger_share else CHAMPION


async def running(session: AsyncSession, *, organization_id: uuid.UUID) -> ModelExperiment | None:
    return await ExperimentRepository(session).running(organization_id)


async def event(
    session: AsyncSession, *, organization_id: uuid.UUID, kind: str, data: dict[str, Any]
) -> None:
    """Store an event of the organization's models (listed, and sent by the coming webhooks)."""
    session.add(ModelEvent(id=new_id(), organization_id=organization_id, kind=kind, data=data))
    await session.flush()


async def start(
    session: AsyncSession,
    *,
    actor: Actor,
    challenger_version_id: uuid.UUID,
    mode: str,
    challenger_share: float,
    auto_promote: bool,
    min_feedback: int,
    max_recognitions: int | None,
    ends_at: datetime | None,
    loss_threshold: float,
) -> ModelExperiment:
    """Start a test of the active version against a ready challenger."""
    organization_id = actor.tenant_id
    versions = ModelVersionRepository(session)
    champion = await versions.active(organization_id)
    if champion is None:
        raise ExperimentRefused("A test needs an active version to compare with: train one.")
    challenger = await versions.get(organization_id, challenger_version_id)
    problem = None
    if challenger is None:
        problem = f"No model version {challenger_version_id} in this organization."
    elif challenger.id == champion.id:
        problem = f"Version {challenger.number} is the active one: choose another."
    elif challenger.status != "ready":
        problem = f"Version {challenger.number} is {challenger.status}; only a ready one can."
    elif mode == "shadow" and bool(challenger.options.get("test_time_augmentation")) != bool(
        champion.options.get("test_time_augmentation")
    ):
        # The shadow scores the photos as the champion prepared them.
        problem = (
            f"Version {challenger.number} prepares photos otherwise than the active one "
            "(test-time augmentation): compare them in a split test."
        )
    if problem is not None:
        raise ExperimentRefused(
            problem,
            errors=[{"loc": ["body", "challenger_version_id"], "msg": problem, "type": "value"}],
        )
    if ends_at is not None and ends_at <= datetime.now(UTC):
        raise ExperimentRefused(
            "The test would end before it starts.",
            errors=[{"loc": ["body", "ends_at"], "msg": "in the past", "type": "value"}],
        )
    assert challenger is not None
    repository = ExperimentRepository(session)
    if await repository.running(organization_id) is not None:
        raise ExperimentRunning("Stop the running A/B test first: one runs at a time.")
    experiment = await repository.add(
        ModelExperiment(
            id=new_id(),
            organization_id=organization_id,
            champion_version_id=champion.id,
            challenger_version_id=challenger.id,
            mode=mode,
            challenger_share=challenger_share,
            auto_promote=auto_promote,
            min_feedback=min_feedback,
            max_recognitions=max_recognitions,
            ends_at=ends_at,
            loss_threshold=loss_threshold,
            created_by=actor.author,
        )
    )
    await event(
        session,
        organization_id=organization_id,
        kind="experiment.started",
        data=_about(experiment, champion.number, challenger.number),
    )
    await audit.record(
        session,
        action="model.experiment_started",
        organization_id=organization_id,
        actor=actor,
        target_type="model_experiment",
        target_id=str(experiment.id),
        details={"mode": mode, "champion": champion.number, "challenger": challenger.number},
    )
    await tracking.queue_sync(session, organization_id=organization_id)
    return experiment


def _about(experiment: ModelExperiment, champion: int, challenger: int) -> dict[str, Any]:
    return {
        "experiment_id": str(experiment.id),
        "mode": experiment.mode,
        "champion_version": champion,
        "challenger_version": challenger,
    }


async def get(session: AsyncSession, *, actor: Actor, experiment_id: uuid.UUID) -> ModelExperiment:
    found = await ExperimentRepository(session).get(actor.tenant_id, experiment_id)
    if found is None:
        raise ExperimentNotFound(f"No A/B test {experiment_id} in this organization.")
    return found


async def list_page(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[ModelExperiment], str | None]:
    return await ExperimentRepository(session).list_page(actor.tenant_id, params)


async def observe(
    session: AsyncSession,
    *,
    experiment_id: uuid.UUID,
    organization_id: uuid.UUID,
    recognition_id: uuid.UUID,
    variant: str,
    label: str | None,
    category_id: uuid.UUID | None,
    confidence: float,
    unknown: bool,
    latency_ms: float,
    shadow: dict[str, Any] | None = None,
) -> None:
    """Record what a recognition made during the test showed (and, in shadow mode, what the
    challenger would have)."""
    session.add(
        ExperimentObservation(
            experiment_id=experiment_id,
            recognition_id=recognition_id,
            organization_id=organization_id,
            variant=variant,
            label=label,
            category_id=category_id,
            confidence=confidence,
            unknown=unknown,
            latency_ms=latency_ms,
            shadow_label=shadow.get("label") if shadow else None,
            shadow_category_id=_uuid(shadow.get("category_id")) if shadow else None,
            shadow_unknown=shadow.get("unknown") if shadow else None,
            shadow_confidence=shadow.get("confidence") if shadow else None,
        )
    )
    await session.flush()


async def judged(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    recognition_id: uuid.UUID,
    correct: bool,
    category_id: uuid.UUID | None,
) -> None:
    """Feedback on a recognition of a test: whether the answer shown was right, and whether
    the shadow's would have been (the category named, or the answer shown when it was right).
    The latest feedback replaces an earlier one."""
    observation = await ExperimentRepository(session).observation(organization_id, recognition_id)
    if observation is None:
        return
    observation.correct = correct
    if observation.shadow_unknown is not None:
        if observation.shadow_unknown:
            observation.shadow_correct = False
        elif correct:
            observation.shadow_correct = observation.shadow_label == observation.label
        else:
            observation.shadow_correct = (
                category_id is not None and observation.shadow_category_id == category_id
            )
    await session.flush()


def compare(right: dict[str, int], wrong: dict[str, int], *, seed: int) -> dict[str, float]:
    """The Bayesian comparison of the two variants' accuracies: the probability that the
    challenger is better, and the expected loss of choosing each."""
    rng = np.random.default_rng(seed)
    champion = rng.beta(1 + right[CHAMPION], 1 + wrong[CHAMPION], DRAWS)
    challenger = rng.beta(1 + right[CHALLENGER], 1 + wrong[CHALLENGER], DRAWS)
    return {
        "challenger_better": round(float(np.mean(challenger > champion)), 4),
        "loss_choosing_champion": round(float(np.mean(np.maximum(challenger - champion, 0))), 5),
        "loss_choosing_challenger": round(float(np.mean(np.maximum(champion - challenger, 0))), 5),
    }


async def figures(session: AsyncSession, experiment: ModelExperiment) -> dict[str, Any]:
    """The test's live figures: per variant, recognitions, unknown share, mean confidence,
    latency and accuracy on feedback; the comparison; agreement in shadow mode."""
    counts = await ExperimentRepository(session).figures(experiment.id, experiment.mode)
    right = {name: int(counts[name]["right"]) for name in (CHAMPION, CHALLENGER)}
    wrong = {name: int(counts[name]["judged"]) - right[name] for name in (CHAMPION, CHALLENGER)}
    seed = int.from_bytes(experiment.id.bytes[:4], "big")
    found: dict[str, Any] = {
        "variants": counts,
        "comparison": compare(right, wrong, seed=seed),
        "recognitions": sum(int(counts[name]["recognitions"]) for name in (CHAMPION, CHALLENGER))
        if experiment.mode == "split"
        else int(counts[CHAMPION]["recognitions"]),
    }
    if experiment.mode == "shadow":
        found["agreement"] = counts[CHALLENGER].get("agreement")
    return found


def verdict(
    experiment: ModelExperiment, found: dict[str, Any], *, now: datetime
) -> tuple[str, str] | None:
    """The decision the figures call for (`promoted` or `kept`, and why), or None to go on."""
    comparison = found["comparison"]
    judged = {name: found["variants"][name]["judged"] for name in (CHAMPION, CHALLENGER)}
    enough = min(judged.values()) >= experiment.min_feedback
    threshold = experiment.loss_threshold
    better = comparison["challenger_better"]
    if (
        enough
        and comparison["loss_choosing_challenger"] < threshold
        and better >= DECISION_PROBABILITY
    ):
        return "promoted", (
            f"The challenger is better with probability {comparison['challenger_better']:.3f}; "
            f"choosing it gives up at most {comparison['loss_choosing_challenger']:.4f} of "
            "accuracy on average."
        )
    if (
        enough
        and comparison["loss_choosing_champion"] < threshold
        and better <= 1 - DECISION_PROBABILITY
    ):
        return "kept", (
            f"The champion is at least as good (the challenger is better with probability "
            f"{comparison['challenger_better']:.3f})."
        )
    spent = (
        experiment.max_recognitions is not None
        and found["recognitions"] >= experiment.max_recognitions
    ) or (experiment.ends_at is not None and now >= experiment.ends_at)
    if spent:
        if comparison["challenger_better"] >= BUDGET_CONFIDENCE:
            return "promoted", (
                "The budget is spent and the challenger is better with probability "
                f"{comparison['challenger_better']:.3f}."
            )
        return "kept", (
            "The budget is spent without a clear result: the champion stays (the challenger "
            f"is better with probability {comparison['challenger_better']:.3f})."
        )
    return None


async def judge(
    session: AsyncSession, *, experiment: ModelExperiment, now: datetime | None = None
) -> ModelExperiment:
    """Look at a running test's figures and end it when they call for it. A winning
    challenger is promoted only if the organization's rule says so; else the test ends with
    the champion active, its result saying the challenger won, for a person to promote."""
    if experiment.status != "running":
        return experiment
    told = bool(experiment.results.get("recommendation"))
    found = await figures(session, experiment)
    experiment.results = found
    called = verdict(experiment, found, now=now or datetime.now(UTC))
    if called is None:
        await session.flush()
        return experiment
    decision, reason = called
    if decision == "promoted" and not experiment.auto_promote:
        # The organization promotes by hand: the test goes on, saying what it found, and
        # the people are told once.
        experiment.results = {**found, "recommendation": "promote", "reason": reason}
        await session.flush()
        if not told:
            await event(
                session,
                organization_id=experiment.organization_id,
                kind="experiment.challenger_won",
                data={"experiment_id": str(experiment.id), "reason": reason},
            )
        return experiment
    await _conclude(session, experiment, decision=decision, reason=reason, actor=None)
    return experiment


async def promote(
    session: AsyncSession, *, actor: Actor, experiment_id: uuid.UUID
) -> ModelExperiment:
    """A person's call: the challenger becomes the active version, and the test ends."""
    experiment = await get(session, actor=actor, experiment_id=experiment_id)
    _still_running(experiment)
    experiment.results = await figures(session, experiment)
    await _conclude(
        session,
        experiment,
        decision="promoted",
        reason="A person promoted the challenger.",
        actor=actor,
    )
    return experiment


async def stop(session: AsyncSession, *, actor: Actor, experiment_id: uuid.UUID) -> ModelExperiment:
    """A person's call: the test ends and the champion stays (the challenger rolled back)."""
    experiment = await get(session, actor=actor, experiment_id=experiment_id)
    _still_running(experiment)
    experiment.results = await figures(session, experiment)
    await _conclude(
        session,
        experiment,
        decision="kept",
        reason="A person stopped the test; the champion stays.",
        actor=actor,
    )
    return experiment


async def end_for_activation(
    session: AsyncSession, *, actor: Actor, activated_version_id: uuid.UUID
) -> None:
    """A version activated by hand ends the running test: it compared another champion."""
    experiment = await running(session, organization_id=actor.tenant_id)
    if experiment is None:
        return
    experiment.results = await figures(session, experiment)
    decision = "promoted" if activated_version_id == experiment.challenger_version_id else "kept"
    await _conclude(
        session,
        experiment,
        decision=decision,
        reason="A person made another version active.",
        actor=actor,
        activate=False,
    )


def _still_running(experiment: ModelExperiment) -> None:
    if experiment.status != "running":
        raise ExperimentOver(f"The A/B test ended ({experiment.decision}): start another.")


async def _conclude(
    session: AsyncSession,
    experiment: ModelExperiment,
    *,
    decision: str,
    reason: str,
    actor: Actor | None,
    activate: bool = True,
) -> None:
    organization_id = experiment.organization_id
    versions = ModelVersionRepository(session)
    champion = await versions.get(organization_id, experiment.champion_version_id)
    challenger = await versions.get(organization_id, experiment.challenger_version_id)
    experiment.status = "concluded"
    experiment.decision = decision
    experiment.reason = reason
    experiment.concluded_at = datetime.now(UTC)
    await session.flush()
    numbers = (champion.number if champion else 0, challenger.number if challenger else 0)
    about = {**_about(experiment, *numbers), "decision": decision, "reason": reason}
    if decision == "promoted" and activate and challenger is not None:
        await versions.activate(organization_id, challenger.id)
        await event(session, organization_id=organization_id, kind="model.promoted", data=about)
    await event(session, organization_id=organization_id, kind="experiment.concluded", data=about)
    await audit.record(
        session,
        action="model.experiment_concluded",
        organization_id=organization_id,
        actor=actor,
        actor_type=None if actor else "system",
        target_type="model_experiment",
        target_id=str(experiment.id),
        details={"decision": decision, "reason": reason},
    )
    await tracking.queue_sync(session, organization_id=organization_id)


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


async def list_events(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[ModelEvent], str | None]:
    return await ExperimentRepository(session).events(actor.tenant_id, params)


async def judge_all(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Judge every organization's running test, each in a transaction of its own."""
    async with sessions.begin() as session:
        organization_ids = await ExperimentRepository(session).organizations_running()
    concluded = 0
    for organization_id in organization_ids:
        async with scoped_transaction(sessions, organization_id=organization_id) as session:
            experiment = await running(session, organization_id=organization_id)
            if experiment is not None:
                await judge(session, experiment=experiment)
                concluded += experiment.status == "concluded"
    return {"judged": len(organization_ids), "concluded": concluded}
