"""Job entry points of model training."""

from __future__ import annotations

import uuid
from typing import Any

from kai.jobs.queue import JobRun, PermanentJobError, job_task
from kai.ml import image_models, training
from kai.ml.recognizer import NotEnoughPhotos
from kai.vision.backbones import Backbone, BackboneUnavailable
from kai.vision.preprocessing import Enhancement


@job_task("ml.train_model", max_attempts=2)
async def train_model(run: JobRun) -> dict[str, Any]:
    """Train one recorded model version; a training that cannot succeed marks it failed."""
    if run.organization_id is None:
        raise PermanentJobError("a model belongs to an organization")
    settings = run.settings
    organization_id = run.organization_id
    version_id = uuid.UUID(str(run.params["model_version_id"]))

    async def load(name: str) -> Backbone:
        return await image_models.load_backbone(
            run.session,
            run.storage,
            organization_id=organization_id,
            name=name,
            settings=settings,
        )

    try:
        return await training.run_training(
            run.session,
            run.storage,
            organization_id=run.organization_id,
            version_id=version_id,
            load_backbone=load,
            limits=run.image_limits,
            enhancement=Enhancement(
                white_balance=settings.vision.white_balance, clahe=settings.vision.clahe
            ),
            progress=run.report_progress,
        )
    except (NotEnoughPhotos, BackboneUnavailable) as exc:
        reason = exc.detail or exc.title
        # The attempt's transaction is rolled back: the failure is recorded beside it.
        async with run.separate_transaction() as session:
            await training.record_failure(
                session,
                organization_id=run.organization_id,
                version_id=version_id,
                reason=reason,
            )
        raise PermanentJobError(reason) from exc
