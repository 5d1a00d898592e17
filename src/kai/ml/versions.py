"""Model versions, apart from their training: finding them, activating one, what each one
prepares photos with, and reading its heads.

A version is never changed once ready, only activated or retired, so results can always name
what produced them.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.errors import KaiError, NotFound
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectStorage
from kai.ml import experiments, tracking
from kai.ml.models import ModelVersion
from kai.ml.recognizer import Recognizer
from kai.ml.repository import ModelVersionRepository
from kai.vision.preprocessing import Enhancement


class ModelVersionNotFound(NotFound):
    type, title = "model-version-not-found", "No such model version"


class ModelNotReady(KaiError):
    status, type, title = 409, "model-not-ready", "The model version is not ready"


async def version_numbers(session: AsyncSession, *, actor: Actor) -> dict[uuid.UUID, int]:
    return await ModelVersionRepository(session).numbers(actor.tenant_id)


async def list_versions(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[ModelVersion], str | None]:
    return await ModelVersionRepository(session).list_page(actor.tenant_id, params)


async def get_version(
    session: AsyncSession, *, actor: Actor, version_id: uuid.UUID
) -> ModelVersion:
    found = await ModelVersionRepository(session).get(actor.tenant_id, version_id)
    if found is None:
        raise ModelVersionNotFound(f"No model version {version_id} in this organization.")
    return found


async def activate_version(
    session: AsyncSession, *, actor: Actor, version_id: uuid.UUID
) -> ModelVersion:
    repository = ModelVersionRepository(session)
    version = await get_version(session, actor=actor, version_id=version_id)
    if version.status != "ready":
        raise ModelNotReady(
            f"Version {version.number} is {version.status}; only a ready one can be active."
        )
    # A running A/B test compared the version active until now: it ends here.
    await experiments.end_for_activation(session, actor=actor, activated_version_id=version.id)
    await repository.activate(actor.tenant_id, version.id)
    await tracking.queue_sync(session, organization_id=actor.tenant_id)
    await session.refresh(version)
    return version


def preparation(version: ModelVersion, settings: Settings) -> Enhancement:
    """How photos are prepared for `version`, in its training and every recognition by it:
    the server's corrections, and the version's own test-time augmentation."""
    return Enhancement(
        white_balance=settings.vision.white_balance,
        clahe=settings.vision.clahe,
        mirrored=bool(version.options.get("test_time_augmentation")),
    )


async def read_heads(storage: ObjectStorage, version: ModelVersion) -> Recognizer:
    """The version's trained heads, read from storage (the predictor keeps them cached)."""
    if version.artifact_key is None:
        raise ModelNotReady(f"Version {version.number} has no trained heads.")
    return Recognizer.from_bytes(await storage.read(version.artifact_key))
