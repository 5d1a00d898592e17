"""Job entry points of recognition."""

from __future__ import annotations

import uuid
from typing import Any

from kai.kit.jobs.queue import JobRun, PermanentJobError, job_task
from kai.recognition import batches, service


@job_task("recognition.recognize_batch", max_attempts=3, heavy=True)
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
    except (service.NoTrainedModel, service.ModelOutdated) as exc:
        async with run.separate_transaction() as session:
            await batches.mark_failed(session, batch_id=batch_id)
        raise PermanentJobError(exc.detail or exc.title) from exc
