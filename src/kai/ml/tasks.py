"""Job entry points of model training."""

from __future__ import annotations

import uuid
from typing import Any

from kai.kit.jobs.queue import JobRun, PermanentJobError, job_task
from kai.ml import training
from kai.ml.recognizer import NotEnoughPhotos
from kai.vision.backbones import BackboneUnavailable
from kai.vision.backbones.sandboxed import ImageModelFailed


@job_task("ml.train_model", max_attempts=2, heavy=True)
async def train_model(run: JobRun) -> dict[str, Any]:
    """Train one recorded model version; a training that cannot succeed marks it failed.
    Idempotent: the version is the job's, trained once however often the job runs."""
    if run.organization_id is None:
        raise PermanentJobError("a model belongs to an organization")
    version_id = uuid.UUID(str(run.params["model_version_id"]))

    try:
        # Short transactions of its own: none stays open while it trains.
        return await training.run_training(
            run.separate_transaction,
            run.storage,
            organization_id=run.organization_id,
            version_id=version_id,
            settings=run.settings,
            limits=run.image_limits,
            progress=run.report_progress,
        )
    except (NotEnoughPhotos, BackboneUnavailable, ImageModelFailed) as exc:
        reason = exc.detail or exc.title
        # The attempt's transaction is rolled back: the failure is recorded beside it. It
        # holds the version's row lock (run_training reads it FOR UPDATE): released first, or
        # the recording would wait on it until the statement timeout.
        await run.session.rollback()
        async with run.separate_transaction() as session:
            await training.record_failure(
                session,
                organization_id=run.organization_id,
                version_id=version_id,
                reason=reason,
            )
        raise PermanentJobError(reason) from exc
