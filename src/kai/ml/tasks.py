"""Job entry points of model training."""

from __future__ import annotations

import uuid
from typing import Any

from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.jobs.queue import JobGivenUp, JobRun, JobRuntime, PermanentJobError, job_app, job_task
from kai.ml import drift, experiments, review, tracking, training
from kai.ml.recognizer import NotEnoughPhotos
from kai.vision.backbones import BackboneUnavailable
from kai.vision.backbones.sandboxed import ImageModelFailed


async def _training_given_up(session: AsyncSession, given_up: JobGivenUp) -> None:
    """The version fails with why, whatever stopped its job (the last attempt's error, or a
    cancellation): a version left "training" would block deleting the backbones it names."""
    if given_up.organization_id is None or "model_version_id" not in given_up.params:
        return
    await training.record_failure(
        session,
        organization_id=given_up.organization_id,
        version_id=uuid.UUID(str(given_up.params["model_version_id"])),
        reason=given_up.reason,
    )


@job_task("ml.train_model", max_attempts=2, heavy=True, on_final_failure=_training_given_up)
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
        # Retrying cannot help; the version is marked failed with this reason.
        raise PermanentJobError(exc.detail or exc.title) from exc


@job_task(tracking.SYNC_KIND, max_attempts=5)
async def sync_registry(run: JobRun) -> dict[str, Any]:
    """Bring MLflow in step with the organization's model versions (idempotent)."""
    if run.organization_id is None:
        raise PermanentJobError("a model belongs to an organization")
    return await tracking.sync(
        run.session, run.storage, organization_id=run.organization_id, settings=run.settings
    )


@job_app.periodic(cron="*/5 * * * *", periodic_id="every-five-minutes")
@job_app.task(name="ml.judge_experiments", pass_context=True, queueing_lock="ml.judge_experiments")
async def judge_experiments(context: JobContext, timestamp: int) -> dict[str, int]:
    """Every five minutes: end each running A/B test whose figures call for it."""
    runtime: JobRuntime = context.additional_context["runtime"]
    return await experiments.judge_all(runtime.session_factory)


@job_app.periodic(cron="17 * * * *", periodic_id="hourly")
@job_app.task(name="ml.check_drift", pass_context=True, queueing_lock="ml.check_drift")
async def check_drift(context: JobContext, timestamp: int) -> dict[str, int]:
    """Every hour: compare each organization's recent recognitions with its version's
    reference, storing a window (and a drift event when it drifted)."""
    runtime: JobRuntime = context.additional_context["runtime"]
    return await drift.check_all(runtime.session_factory, runtime.storage)


@job_task(review.RETRAINING_KIND, max_attempts=3)
async def consider_retraining(run: JobRun) -> dict[str, Any]:
    """Queue the training of a challenger if the organization's rules call for it now."""
    if run.organization_id is None:
        raise PermanentJobError("a model belongs to an organization")
    because = str(run.params.get("because", "labels"))
    version = await review.consider_retraining(
        run.session, organization_id=run.organization_id, because=because
    )
    return {"queued_version": version.number if version is not None else None, "because": because}
