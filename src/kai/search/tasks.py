"""Job entry points of search: each calls a plain function with the job's session."""

from __future__ import annotations

from typing import Any

from kai.catalog.events import EMBED_MATERIALS
from kai.jobs.queue import JobRun, PermanentJobError, job_task
from kai.search import semantic


@job_task(EMBED_MATERIALS, max_attempts=3)
async def embed_materials(run: JobRun) -> dict[str, Any]:
    """The organization's missing and stale text embeddings (a follow-up job takes the rest)."""
    if run.organization_id is None:
        raise PermanentJobError("embeddings belong to an organization")
    return await semantic.refresh_embeddings(
        run.session,
        organization_id=run.organization_id,
        embedder=semantic.query_embeddings().embedder,
        batch=run.settings.search.embed_batch,
        progress=run.report_progress,
    )
