"""Job entry points of search: each calls a plain function with the job's session."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from procrastinate import JobContext

from kai.catalog.events import EMBED_IMAGES, EMBED_MATERIALS
from kai.kit.jobs.queue import JobRun, JobRuntime, PermanentJobError, job_app, job_task
from kai.search import semantic, visual
from kai.vision.backbones import BackboneUnavailable

log = structlog.get_logger(__name__)


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


@job_app.periodic(cron="*/15 * * * *", periodic_id="quarter-hourly")
@job_app.task(
    name="search.check_image_embeddings",
    pass_context=True,
    queueing_lock="search.check_image_embeddings",
)
async def check_image_embeddings(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Every quarter of an hour: queue an image refresh for each organization whose catalog the
    default backbone has not embedded (after an upgrade changed it, the whole catalog)."""
    runtime: JobRuntime = context.additional_context["runtime"]
    settings = runtime.settings
    try:
        backbone = await asyncio.to_thread(visual.catalog_backbone, settings)
    except BackboneUnavailable as exc:
        log.warning("search.image_check_skipped", reason=exc.detail or exc.title)
        return {"skipped": exc.detail or exc.title}
    queued = await visual.queue_stale_refreshes(runtime.session_factory, backbone=backbone)
    return {"organizations": len(queued)}


@job_task(EMBED_IMAGES, max_attempts=3)
async def embed_images(run: JobRun) -> dict[str, Any]:
    """The organization's ready catalog images without a visual embedding by the default
    backbone (a follow-up job takes the rest)."""
    if run.organization_id is None:
        raise PermanentJobError("images belong to an organization")
    settings = run.settings
    try:
        backbone = await asyncio.to_thread(visual.catalog_backbone, settings)
    except BackboneUnavailable as exc:
        raise PermanentJobError(exc.detail or exc.title) from exc
    return await visual.refresh_image_embeddings(
        run.session,
        run.storage,
        organization_id=run.organization_id,
        backbone=backbone,
        batch=run.settings.search.embed_batch,
        limits=run.image_limits,
        progress=run.report_progress,
    )
