"""HTTP routes of A/B tests between model versions, and of the events of an organization's
models."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.ml import drift, experiments, review
from kai.ml.models import ModelExperiment
from kai.ml.schemas import (
    DriftCheckRead,
    DriftWindowRead,
    ExperimentCreate,
    ExperimentFigures,
    ExperimentRead,
    ModelEventRead,
    ModelSettingsChange,
    ModelSettingsRead,
)

router = IndexedRouter(prefix="/model-experiments", tags=["models"], responses=AUTH_RESPONSES)
events_router = IndexedRouter(prefix="/model-events", tags=["models"], responses=AUTH_RESPONSES)
drift_router = IndexedRouter(prefix="/model-drift", tags=["models"], responses=AUTH_RESPONSES)
settings_router = IndexedRouter(prefix="/model-settings", tags=["models"], responses=AUTH_RESPONSES)

ModelsRead = Annotated[Actor, Depends(require(Permission.MODELS_READ))]
ModelsDeploy = Annotated[Actor, Depends(require(Permission.MODELS_DEPLOY))]


async def _read(session: DbSession, experiment: ModelExperiment) -> ExperimentRead:
    """The test with its figures: live while it runs, as they were when it ended after."""
    found = experiment.results
    if experiment.status == "running":
        found = {**found, **await experiments.figures(session, experiment)}
    comparison = found.get("comparison") or experiments.compare(
        {experiments.CHAMPION: 0, experiments.CHALLENGER: 0},
        {experiments.CHAMPION: 0, experiments.CHALLENGER: 0},
        seed=0,
    )
    variants = found.get("variants") or {}
    return ExperimentRead(
        id=experiment.id,
        mode=experiment.mode,
        status=experiment.status,
        decision=experiment.decision,
        reason=experiment.reason,
        champion_version_id=experiment.champion_version_id,
        challenger_version_id=experiment.challenger_version_id,
        challenger_share=experiment.challenger_share,
        auto_promote=experiment.auto_promote,
        min_feedback=experiment.min_feedback,
        max_recognitions=experiment.max_recognitions,
        ends_at=experiment.ends_at,
        loss_threshold=experiment.loss_threshold,
        figures=ExperimentFigures(
            variants=variants,
            recognitions=int(found.get("recognitions", 0)),
            recommendation=found.get("recommendation"),
            **comparison,
        ),
        created_by=experiment.created_by,
        created_at=experiment.created_at,
        concluded_at=experiment.concluded_at,
    )


@router.post(
    "",
    summary="Start an A/B test of the active version against a challenger",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409, 422),
)
async def start(actor: ModelsDeploy, session: DbSession, body: ExperimentCreate) -> ExperimentRead:
    experiment = await experiments.start(
        session,
        actor=actor,
        challenger_version_id=body.challenger_version_id,
        mode=body.mode,
        challenger_share=body.challenger_share,
        auto_promote=body.auto_promote,
        min_feedback=body.min_feedback,
        max_recognitions=body.max_recognitions,
        ends_at=body.ends_at,
        loss_threshold=body.loss_threshold,
    )
    return await _read(session, experiment)


@router.get("", summary="The organization's A/B tests, newest first")
async def list_experiments(
    actor: ModelsRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[ExperimentRead]:
    found, cursor = await experiments.list_page(session, actor=actor, params=page)
    return Page[ExperimentRead](
        items=[await _read(session, experiment) for experiment in found], next_cursor=cursor
    )


@router.get(
    "/{experiment_id}",
    summary="An A/B test with its figures and decision",
    responses=problem_responses(404),
)
async def get_experiment(
    experiment_id: uuid.UUID, actor: ModelsRead, session: DbSession
) -> ExperimentRead:
    experiment = await experiments.get(session, actor=actor, experiment_id=experiment_id)
    return await _read(session, experiment)


@router.post(
    "/{experiment_id}/judge",
    summary="Judge a running A/B test now",
    responses=problem_responses(404),
)
async def judge(
    experiment_id: uuid.UUID, actor: ModelsDeploy, session: DbSession
) -> ExperimentRead:
    """What the periodic judge does: end the test if its figures call for it (promoting a
    winning challenger only under the test's `auto_promote`)."""
    experiment = await experiments.get(session, actor=actor, experiment_id=experiment_id)
    await experiments.judge(session, experiment=experiment)
    return await _read(session, experiment)


@router.post(
    "/{experiment_id}/promote",
    summary="End an A/B test making the challenger the active version",
    responses=problem_responses(404, 409),
)
async def promote(
    experiment_id: uuid.UUID, actor: ModelsDeploy, session: DbSession
) -> ExperimentRead:
    experiment = await experiments.promote(session, actor=actor, experiment_id=experiment_id)
    return await _read(session, experiment)


@router.post(
    "/{experiment_id}/stop",
    summary="End an A/B test keeping the active version",
    responses=problem_responses(404, 409),
)
async def stop(experiment_id: uuid.UUID, actor: ModelsDeploy, session: DbSession) -> ExperimentRead:
    experiment = await experiments.stop(session, actor=actor, experiment_id=experiment_id)
    return await _read(session, experiment)


@events_router.get("", summary="What happened to the organization's models, newest first")
async def list_events(
    actor: ModelsRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[ModelEventRead]:
    found, cursor = await experiments.list_events(session, actor=actor, params=page)
    return Page[ModelEventRead](
        items=[ModelEventRead.model_validate(event) for event in found], next_cursor=cursor
    )


@drift_router.get("", summary="Drift over time: each window of recognitions, newest first")
async def list_drift(
    actor: ModelsRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[DriftWindowRead]:
    found, cursor = await drift.list_page(session, organization_id=actor.tenant_id, params=page)
    return Page[DriftWindowRead](
        items=[DriftWindowRead.model_validate(window) for window in found], next_cursor=cursor
    )


@drift_router.post("/check", summary="Compare the recognitions since the last window now")
async def check_drift(
    actor: ModelsDeploy, session: DbSession, runtime: RuntimeDep
) -> DriftCheckRead:
    """What the hourly check does, at once: a window needs an active version trained with a
    reference and at least 30 recognitions since the last window."""
    window = await drift.check(session, runtime.storage, organization_id=actor.tenant_id)
    if window is None:
        return DriftCheckRead(
            window=None,
            detail=f"No window yet: it needs at least {drift.MIN_WINDOW} recognitions by the "
            "active version since the last one.",
        )
    return DriftCheckRead(
        window=DriftWindowRead.model_validate(window),
        detail="Drift: " + ", ".join(window.figures["reasons"]) if window.drifted else "No drift.",
    )


@settings_router.get("", summary="When new labels or drift train and test a challenger")
async def model_settings(actor: ModelsRead, session: DbSession) -> ModelSettingsRead:
    found = await review.settings_of(session, organization_id=actor.tenant_id)
    return ModelSettingsRead.model_validate(found)


@settings_router.patch("", summary="Change the rules given; the others stay")
async def change_model_settings(
    actor: ModelsDeploy, session: DbSession, body: ModelSettingsChange
) -> ModelSettingsRead:
    """`retrain_after_labels: null` sent explicitly turns training on new labels off."""
    sent = body.model_dump(exclude_unset=True)
    # A switch sent as null stays as it is; only the label count may be emptied.
    values = {
        name: value
        for name, value in sent.items()
        if value is not None or name == "retrain_after_labels"
    }
    found = await review.change_settings(session, actor=actor, values=values)
    return ModelSettingsRead.model_validate(found)
