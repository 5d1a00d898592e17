"""Keeping MLflow in step with KAI's model versions: each ready version recorded as a run and
a registered model version, and the `champion` alias on the active one.

KAI's tables decide; MLflow is told afterwards, by a job (`ml.sync_registry`) queued with
every change, so that MLflow being slow or down never holds a training or an activation up,
and a lost attempt is made good by the next. The job goes through whatever is not in step yet,
and is idempotent (`kai.ml.registry` finds runs and registered versions again).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.kit.jobs.queue import enqueue_unless_waiting
from kai.kit.storage import ObjectNotFound, ObjectStorage
from kai.ml.models import ModelVersion
from kai.ml.repository import ExperimentRepository, ModelVersionRepository

SYNC_KIND = "ml.sync_registry"


async def queue_sync(session: AsyncSession, *, organization_id: uuid.UUID) -> None:
    """Have MLflow brought in step once this transaction commits (one job, however many
    changes ask)."""
    await enqueue_unless_waiting(session, SYNC_KIND, organization_id=organization_id)


async def sync(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    settings: Settings,
) -> dict[str, Any]:
    """Record every ready version MLflow lacks, then point `champion` at the active one."""
    if not settings.ml.tracking:
        return {"skipped": "tracking is off (KAI_ML__TRACKING)"}
    # MLflow is imported here, by the job, and never by a request.
    from kai.ml import registry

    repository = ModelVersionRepository(session)
    recorded = []
    for version in await repository.untracked(organization_id):
        trained = await _trained(storage, version, settings)
        if trained is None:
            continue
        tracked = await asyncio.to_thread(registry.record_version, settings, trained)
        version.mlflow_run_id = tracked.run_id
        version.registered_version = tracked.registered_version
        recorded.append(version.number)
    await session.flush()
    active = await repository.active(organization_id)
    champion = active.registered_version if active is not None else None
    # The challenger: the running A/B test's, if there is one.
    experiment = await ExperimentRepository(session).running(organization_id)
    challenger = None
    if experiment is not None:
        tested = await repository.get(organization_id, experiment.challenger_version_id)
        challenger = tested.registered_version if tested is not None else None
    await asyncio.to_thread(
        registry.set_aliases,
        settings,
        organization_id,
        {registry.CHAMPION: champion, registry.CHALLENGER: challenger},
    )
    return {
        "recorded": recorded,
        "champion": active.number if active is not None and champion is not None else None,
    }


async def _trained(storage: ObjectStorage, version: ModelVersion, settings: Settings) -> Any | None:
    """What the run records of the version; None when its heads' file is gone (nothing to
    register)."""
    from kai.ml import registry
    from kai.ml.versions import preparation

    if version.artifact_key is None:
        return None
    try:
        heads = await storage.read(version.artifact_key)
    except ObjectNotFound:
        return None
    dataset = b"{}"
    if version.dataset_key is not None:
        # The snapshot gone, the run still records the version (with an empty one).
        with contextlib.suppress(ObjectNotFound):
            dataset = await storage.read(version.dataset_key)
    return registry.TrainedVersion(
        id=version.id,
        organization_id=version.organization_id,
        number=version.number,
        options=dict(version.options),
        labelling=dict(version.labelling),
        labels=list(version.labels),
        backbones=list(version.backbones),
        metrics=dict(version.metrics),
        temperature=version.temperature,
        preparation=preparation(version, settings).tag,
        created_at=version.created_at,
        trained_at=version.trained_at,
        heads=heads,
        dataset=dataset,
    )
