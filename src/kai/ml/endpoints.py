"""HTTP routes of model training: train a version, list and read versions, activate one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from kai.deps import DbSession
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.ml import training
from kai.ml.schemas import ModelVersionRead
from kai.ml.training import TrainingOptions

router = APIRouter(prefix="/models", tags=["models"], responses=AUTH_RESPONSES)

ModelsRead = Annotated[Actor, Depends(require(Permission.MODELS_READ))]
ModelsTrain = Annotated[Actor, Depends(require(Permission.MODELS_TRAIN))]
ModelsDeploy = Annotated[Actor, Depends(require(Permission.MODELS_DEPLOY))]


@router.post(
    "",
    summary="Train a new model version on the catalog's photos and the feedback so far",
    status_code=status.HTTP_202_ACCEPTED,
)
async def train(
    actor: ModelsTrain, session: DbSession, body: TrainingOptions | None = None
) -> ModelVersionRead:
    version = await training.start_training(session, actor=actor, options=body or TrainingOptions())
    return ModelVersionRead.model_validate(version)


@router.get("", summary="The organization's model versions, newest first")
async def list_versions(actor: ModelsRead, session: DbSession) -> list[ModelVersionRead]:
    versions = await training.list_versions(session, actor=actor)
    return [ModelVersionRead.model_validate(version) for version in versions]


@router.get("/{version_id}", summary="A model version", responses=problem_responses(404))
async def get_version(
    version_id: uuid.UUID, actor: ModelsRead, session: DbSession
) -> ModelVersionRead:
    version = await training.get_version(session, actor=actor, version_id=version_id)
    return ModelVersionRead.model_validate(version)


@router.post(
    "/{version_id}/activate",
    summary="Make a ready version the one recognitions use",
    responses=problem_responses(404, 409),
)
async def activate(
    version_id: uuid.UUID, actor: ModelsDeploy, session: DbSession
) -> ModelVersionRead:
    version = await training.activate_version(session, actor=actor, version_id=version_id)
    return ModelVersionRead.model_validate(version)
