"""Job entry points of the catalog: each opens nothing itself and calls a plain function."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog import events, images, transfers
from kai.catalog.repository import SettingsRepository
from kai.kit.errors import KaiError
from kai.kit.jobs.queue import JobGivenUp, JobRun, PermanentJobError, job_task
from kai.kit.jobs.tasks import delete_after_commit


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


async def _discard_upload(session: AsyncSession, given_up: JobGivenUp) -> None:
    # The uploaded file is the job's alone: a success removes it, and so does a cancellation
    # or a failure for good (else nothing would ever name it again).
    key = given_up.params.get("file_key")
    if isinstance(key, str) and given_up.organization_id is not None:
        await delete_after_commit(session, [key], organization_id=given_up.organization_id)


@job_task("catalog.import", max_attempts=3, heavy=True, on_final_failure=_discard_upload)
async def import_file(run: JobRun) -> dict[str, Any]:
    """An uploaded catalog file, imported as its uploader asked."""
    if run.organization_id is None:
        raise PermanentJobError("an import belongs to an organization")
    try:
        report = await transfers.run_import(
            run.session,
            run.storage,
            organization_id=run.organization_id,
            params=run.params,
            progress=run.report_progress,
        )
    except KaiError as exc:
        if exc.status >= 500:
            raise
        # The file itself is at fault (unreadable, too large unpacked): a retry reads the
        # same bytes. The job fails at once, saying why; its transaction wrote nothing.
        raise PermanentJobError(exc.detail or exc.title) from exc
    if report["refused"]:
        # All or nothing, and not all was right: the job failed, its result says why.
        raise PermanentJobError(
            f"Nothing was imported: the file has {report['error_count']} problem(s), listed "
            "in the job's result.",
            result=report,
        )
    return report


@job_task("catalog.reindex_documents", max_attempts=3, heavy=True)
async def reindex_documents(run: JobRun) -> dict[str, Any]:
    """Materials' full-text documents, rewritten: every one (the search language changed), or
    those of `category_ids` (categories renamed or moved)."""
    if run.organization_id is None:
        raise PermanentJobError("a catalog belongs to an organization")
    rewritten = await reindex(run.session, organization_id=run.organization_id, params=run.params)
    return {"materials": rewritten}


async def reindex(
    session: AsyncSession, *, organization_id: uuid.UUID, params: dict[str, Any]
) -> int:
    """What `reindex_documents` does, in `session`: how many documents it rewrote."""
    named = params.get("category_ids")
    try:
        category_ids = None if named is None else [uuid.UUID(str(each)) for each in named]
    except (TypeError, ValueError) as exc:
        raise PermanentJobError("the job names no list of category ids") from exc
    rewritten = await SettingsRepository(session).reindex_materials(
        organization_id, category_ids=category_ids
    )
    # Their words changed with their categories' names: their meaning may have too.
    await events.materials_text_changed(session, organization_id=organization_id)
    return rewritten
