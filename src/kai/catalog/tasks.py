"""Job entry points of the catalog: each opens nothing itself and calls a plain function."""

from __future__ import annotations

import uuid
from typing import Any

from kai.catalog import images
from kai.jobs.queue import JobRun, PermanentJobError, job_task


@job_task("catalog.image_derivatives", max_attempts=5)
async def make_image_derivatives(run: JobRun) -> dict[str, Any]:
    """The processed image and the thumbnail of one uploaded image."""
    if run.organization_id is None:
        raise PermanentJobError("an image belongs to an organization")
    return await images.make_derivatives(
        run.session,
        run.storage,
        organization_id=run.organization_id,
        image_id=uuid.UUID(str(run.params["image_id"])),
    )
