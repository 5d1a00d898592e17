"""Job entry points of recognition."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.jobs.queue import JobGivenUp, JobRun, PermanentJobError, job_task
from kai.ml import inference
from kai.recognition import batches


async def _batch_given_up(session: AsyncSession, given_up: JobGivenUp) -> None:
    """A batch whose job was cancelled or failed for good fails, with the photos recognized
    so far kept: it would otherwise stay "queued" or "running" for ever."""
    if "batch_id" in given_up.params:
        await batches.mark_failed(session, batch_id=uuid.UUID(str(given_up.params["batch_id"])))


@job_task(
    "recognition.recognize_batch", max_attempts=3, heavy=True, on_final_failure=_batch_given_up
)
async def recognize_batch(run: JobRun) -> dict[str, Any]:
    """Every photo of a batch not yet recognized (a retry picks up where the last stopped)."""
    if run.organization_id is None:
        raise PermanentJobError("a batch belongs to an organization")
    batch_id = uuid.UUID(str(run.params["batch_id"]))
    try:
        return await batches.run_batch(
            run.separate_transaction,
            run.storage,
            organization_id=run.organization_id,
            batch_id=batch_id,
            settings=run.settings,
            limits=run.image_limits,
            progress=run.report_progress,
        )
    except (inference.NoTrainedModel, inference.ModelOutdated) as exc:
        raise PermanentJobError(exc.detail or exc.title) from exc
