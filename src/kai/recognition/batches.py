"""Batches of recognitions: many photos (files, or zips of them) checked and stored at once,
then recognized by a job, with a result per photo exportable as CSV or JSON."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.archives import InflateBudget, UnreadableArchive, ZipUpload, is_zip
from kai.kit.db import new_id
from kai.kit.errors import KaiError, NotFound, Unprocessable
from kai.kit.images import (
    CONTENT_TYPES,
    EXTENSIONS,
    ImageFormat,
    ImageLimits,
    read_header,
    without_trailer,
)
from kai.kit.pagination import PageParams, decode_keyset, encode_cursor, paginate
from kai.kit.spreadsheets import CsvWriter
from kai.kit.storage import ObjectNotFound, ObjectStorage
from kai.kit.storage.keys import user_upload_key
from kai.kit.storage.transactional import put_for_transaction
from kai.ml import inference
from kai.ml import service as ml
from kai.recognition import projects, service
from kai.recognition.models import Recognition, RecognitionBatch, RecognitionBatchItem
from kai.recognition.repository import ProjectRepository, in_visible_project
from kai.search import visual
from kai.search.service import visual_filter

MAX_PHOTOS = 1000
# Files a zip may list (hidden files and resource forks count, so more than the photos).
MAX_ZIP_ENTRIES = 4 * MAX_PHOTOS
# Photos each of the predictor's workers gets per chunk of a batch: enough to keep every core
# busy while the previous chunk is recorded, few enough that progress moves often.
PHOTOS_PER_WORKER = 8
RESULT_COLUMNS = (
    "position", "file_name", "status", "error", "recognition_id", "label", "confidence",
    "unknown", "unknown_reason", "similar_material_id", "similar_name", "similar_code",
    "similar_score",
)  # fmt: skip

Progress = Callable[[int, int | None], Awaitable[None]]


class BatchRejected(Unprocessable):
    type, title = "batch-rejected", "The batch cannot be recognized"


class BatchNotFound(NotFound):
    type, title = "batch-not-found", "No such recognition batch"


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    format: ImageFormat


def _problem(name: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", "files", name], "msg": message, "type": "file"}


def _unpacked(
    name: str, data: bytes, limits: ImageLimits, budget: InflateBudget
) -> Iterator[tuple[str, bytes]]:
    """A zip's files (folders and the files operating systems leave left out), or the file;
    a zip's inflated under `budget`, which every zip of the upload shares."""
    if not is_zip(data):
        yield name, data
        return
    try:
        with ZipUpload(data, name=name, budget=budget, max_entries=MAX_ZIP_ENTRIES) as archive:
            for member in archive.entries:
                # Longer than a photo may be: read no further, and refused by size below.
                yield f"{name}/{member.filename}", archive.read(member, limit=limits.max_bytes)
    except UnreadableArchive as exc:
        where = f"{name}/{exc.entry}" if exc.entry else name
        raise BatchRejected(exc.message, errors=[_problem(where, exc.message)]) from None


def checked_photos(
    files: Sequence[tuple[str, bytes]], limits: ImageLimits, budget: InflateBudget
) -> list[Photo]:
    """Every photo of the upload, each checked by its header (the format by content, the
    size within the limits); any that is not a photo KAI accepts refuses the batch, naming
    them all. Nothing is decoded here: the job decodes each photo anyway, and one whose
    pixels are unreadable then fails alone. Blocking work (zips inflated): run it in a
    thread."""
    photos: list[Photo] = []
    problems: list[dict[str, Any]] = []
    for name, data in files:
        for inner, content in _unpacked(name, data, limits, budget):
            if len(photos) + len(problems) >= MAX_PHOTOS:
                raise BatchRejected(
                    f"A batch holds at most {MAX_PHOTOS} photos.",
                    errors=[_problem(inner, f"more than {MAX_PHOTOS} photos")],
                )
            try:
                # Whatever follows the picture's end (an appended zip, a motion video) is
                # not kept.
                kept = without_trailer(content)
                header = read_header(kept, limits)
            except KaiError as exc:
                problems.append(_problem(inner, exc.detail or exc.title))
                continue
            photos.append(Photo(inner, kept, header.format))
    if problems:
        names = ", ".join(problem["loc"][-1] for problem in problems[:10])
        raise BatchRejected(
            f"{len(problems)} file(s) are not photos KAI accepts: {names}", errors=problems
        )
    if not photos:
        raise BatchRejected(
            "The batch has no photos.", errors=[_problem("files", "no photo in the upload")]
        )
    return photos


async def create_batch(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    photos: Sequence[Photo],
    options: service.RecognitionOptions,
) -> RecognitionBatch:
    """Record the batch and its photos, store them, and queue the job that recognizes them."""
    from kai.recognition.tasks import recognize_batch

    organization_id = actor.tenant_id
    if await ml.active_version(session, organization_id=organization_id) is None:
        raise inference.NoTrainedModel("Train a model first: a batch is recognized by one.")
    if options.project_id is not None:
        await projects.open_project(session, actor=actor, project_id=options.project_id)
    batch = RecognitionBatch(
        organization_id=organization_id,
        project_id=options.project_id,
        status="queued",
        total=len(photos),
        options={
            "top_k": options.top_k,
            "similar_k": options.similar_k,
            "category_id": str(options.category_id) if options.category_id else None,
            "filters": list(options.filters),
        },
        created_by=actor.author,
    )
    session.add(batch)
    await session.flush()
    items = [
        RecognitionBatchItem(
            batch_id=batch.id,
            position=position,
            organization_id=organization_id,
            file_name=photo.name[-255:],
            image_key=user_upload_key(
                organization_id, f"batches/{batch.id}/{position}.{EXTENSIONS[photo.format]}"
            ),
        )
        for position, photo in enumerate(photos, start=1)
    ]
    session.add_all(items)
    await session.flush()
    # Removed again if the batch is not committed after all.
    for item, photo in zip(items, photos, strict=True):
        await put_for_transaction(
            session, storage, item.image_key, photo.data, content_type=CONTENT_TYPES[photo.format]
        )
    job = await recognize_batch.enqueue(
        session, params={"batch_id": str(batch.id)}, organization_id=organization_id
    )
    batch.job_id = job.id
    await session.flush()
    return batch


@dataclass(frozen=True)
class _Recognizing:
    """What every photo of one batch is recognized with, loaded once for the batch."""

    predictor: inference.Predictor
    options: service.RecognitionOptions
    similarity_filter: tuple[list[uuid.UUID] | None, dict[str, Any] | None]
    confidence_threshold: float
    author: str | None


async def run_batch(
    sessions: Callable[[], Any],
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    batch_id: uuid.UUID,
    settings: Settings,
    limits: ImageLimits,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Recognize each photo not yet recognized, a chunk at a time: the photos of a chunk are
    decoded and embedded on every core, classified together, and recorded in one transaction
    (so a retry does only what is left), while the next chunk is already being embedded."""
    actor = Actor(kind="operator", organization_id=organization_id, permissions=frozenset())
    # Where the job's time went (wall seconds), in its result: loading the model, embedding
    # (the cores busy), and waiting for a chunk's recording to finish (the database busy).
    spent = service.Stopwatch()
    started = time.perf_counter()
    async with sessions() as session:
        batch = await session.get(RecognitionBatch, batch_id)
        if batch is None:
            return {"skipped": "batch deleted"}
        batch.status = "running"
        pending = (
            await session.execute(
                select(RecognitionBatchItem.position, RecognitionBatchItem.image_key)
                .where(
                    RecognitionBatchItem.batch_id == batch_id,
                    RecognitionBatchItem.status == "pending",
                )
                .order_by(RecognitionBatchItem.position)
            )
        ).all()
        recognizing = await _recognizing(session, storage, actor, batch, settings, limits)
        total = batch.total
        finished = batch.done + batch.failed
    started = spent.lap("loading", started)
    chunk_size = PHOTOS_PER_WORKER * recognizing.predictor.workers
    recording: asyncio.Task[int] | None = None
    try:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start : start + chunk_size]
            datas = await asyncio.gather(*(_read(storage, key) for _, key in chunk))
            predictions = await recognizing.predictor.predict_many(
                datas,
                top_k=recognizing.options.top_k,
                confidence_threshold=recognizing.confidence_threshold,
            )
            predicted = [
                (position, prediction)
                for (position, _), prediction in zip(chunk, predictions, strict=True)
            ]
            started = spent.lap("embedding", started)
            if recording is not None:
                finished = await recording
                started = spent.lap("recording", started)
                if progress is not None:
                    await progress(finished, total)
            recording = asyncio.create_task(
                _record(
                    sessions,
                    batch_id,
                    organization_id,
                    recognizing,
                    predicted,
                    dict(chunk),
                )
            )
        if recording is not None:
            finished = await recording
            spent.lap("recording", started)
            if progress is not None:
                await progress(finished, total)
    finally:
        # A failure while embedding still lets the chunk being recorded finish (or fail).
        if recording is not None and not recording.done():
            await asyncio.gather(recording, return_exceptions=True)
    async with sessions() as session:
        batch = await session.get(RecognitionBatch, batch_id)
        assert batch is not None
        batch.status = "succeeded"
        batch.finished_at = datetime.now(UTC)
        return {
            "recognized": batch.done,
            "failed": batch.failed,
            "seconds": {step: round(ms / 1000, 3) for step, ms in spent.timings.items()},
        }


async def _read(storage: ObjectStorage, key: str) -> bytes | None:
    """The photo, or None when its file is gone (that photo then fails alone)."""
    try:
        return await storage.read(key)
    except ObjectNotFound:
        return None


async def _recognizing(
    session: AsyncSession,
    storage: ObjectStorage,
    actor: Actor,
    batch: RecognitionBatch,
    settings: Settings,
    limits: ImageLimits,
) -> _Recognizing:
    # A batch is one subject's, its creator's, in an A/B test.
    predictor = await inference.predictor_for(
        session,
        storage,
        organization_id=batch.organization_id,
        settings=settings,
        limits=limits,
        subject=batch.created_by,
    )
    options = service.RecognitionOptions(
        top_k=int(batch.options.get("top_k", 5)),
        similar_k=int(batch.options.get("similar_k", 10)),
        category_id=(
            uuid.UUID(batch.options["category_id"]) if batch.options.get("category_id") else None
        ),
        filters=tuple(batch.options.get("filters") or ()),
        project_id=batch.project_id,
    )
    thresholds = await service.recognition_settings(session, actor=actor)
    return _Recognizing(
        predictor=predictor,
        options=options,
        similarity_filter=await visual_filter(
            session, actor=actor, category_id=options.category_id, filters=options.filters
        ),
        confidence_threshold=thresholds.confidence_threshold,
        author=batch.created_by,
    )


async def _record(
    sessions: Callable[[], Any],
    batch_id: uuid.UUID,
    organization_id: uuid.UUID,
    recognizing: _Recognizing,
    predicted: Sequence[tuple[int, inference.Prediction]],
    keys: dict[int, str],
) -> int:
    """Find each predicted photo's similar materials, and record the recognitions, the items
    and the batch's counts in one transaction. Returns the photos of the batch finished so
    far.

    Each photo is recorded once: a second worker handed the same job while the first still
    runs (a stalled job recovered) records only what the first has not.
    """
    version = recognizing.predictor.version
    async with sessions() as session:
        project_id = recognizing.options.project_id
        if project_id is not None:
            # Deleted since the batch began: its photos are filed nowhere, as its other
            # recognitions now are. Else it is kept until this chunk is recorded.
            kept = await ProjectRepository(session).get(
                organization_id, project_id, visible=true(), lock=True
            )
            project_id = kept.id if kept is not None else None
        # The chunk's photos still pending, locked in one order (two recorders cannot
        # deadlock): another recorder of the same photos waits here, and then finds those
        # this one recorded no longer pending.
        items = {
            item.position: item
            for item in (
                await session.scalars(
                    select(RecognitionBatchItem)
                    .where(
                        RecognitionBatchItem.batch_id == batch_id,
                        RecognitionBatchItem.position.in_(list(keys)),
                        RecognitionBatchItem.status == "pending",
                    )
                    .order_by(RecognitionBatchItem.position)
                    .with_for_update()
                )
            ).all()
        }
        judged = [
            (position, prediction)
            for position, prediction in predicted
            if prediction.failure is None and position in items
        ]
        unreadable = [
            (position, prediction.failure)
            for position, prediction in predicted
            if prediction.failure is not None and position in items
        ]
        begun = time.perf_counter()
        similar_each = await visual.similar_materials_each(
            session,
            vectors=[prediction.similarity_vector for _, prediction in judged],
            how_many=recognizing.options.similar_k,
            category_ids=recognizing.similarity_filter[0],
            properties=recognizing.similarity_filter[1],
        )
        searched = round((time.perf_counter() - begun) * 1000 / max(1, len(judged)), 3)
        observed: list[tuple[Recognition, inference.Prediction]] = []
        for (position, prediction), similar in zip(judged, similar_each, strict=True):
            item = items[position]
            inspected = prediction.inspected
            assert inspected is not None
            recognition = Recognition(
                id=new_id(),
                organization_id=organization_id,
                model_version_id=version.id,
                project_id=project_id,
                # The batch's copy of the photo is the recognition's.
                image_key=item.image_key,
                sha256=inspected.sha256,
                content_type=inspected.content_type,
                width=inspected.width,
                height=inspected.height,
                file_name=item.file_name,
                created_by=recognizing.author,
            )
            service.apply_prediction(recognition, prediction, similar)
            timings = dict(prediction.timings)
            timings["similar"] = searched
            # A photo's own steps; the chunk's share of the waiting is not counted.
            timings["total"] = round(sum(timings.values()), 3)
            recognition.timings = timings
            session.add(recognition)
            item.status = "recognized"
            item.recognition_id = recognition.id
            observed.append((recognition, prediction))
        await session.flush()
        for recognition, prediction in observed:
            await service.observe(session, recognizing.predictor, recognition, prediction)
        await inference.keep_features(
            session,
            recognizing.predictor,
            [(items[position].image_key, prediction) for position, prediction in judged],
        )
        for position, failure in unreadable:
            assert failure is not None
            items[position].status = "failed"
            items[position].error = (failure.detail or failure.title)[:2000]
        await session.flush()
        # Counted by what this transaction changed, added to the row as it is when the
        # update runs: counts stay right whoever else records photos of the batch.
        finished = await session.scalar(
            update(RecognitionBatch)
            .where(RecognitionBatch.id == batch_id)
            .values(
                done=RecognitionBatch.done + len(judged),
                failed=RecognitionBatch.failed + len(unreadable),
            )
            .returning(RecognitionBatch.done + RecognitionBatch.failed)
        )
    return int(finished or 0)


async def _seen(session: AsyncSession, actor: Actor) -> ColumnElement[bool]:
    """Batches in no project, or in one the actor sees."""
    return in_visible_project(
        RecognitionBatch.project_id, actor.tenant_id, await projects.visibility(session, actor)
    )


async def get_batch(
    session: AsyncSession, *, actor: Actor, batch_id: uuid.UUID
) -> RecognitionBatch:
    found = await session.scalar(
        select(RecognitionBatch).where(
            RecognitionBatch.organization_id == actor.tenant_id,
            RecognitionBatch.id == batch_id,
            await _seen(session, actor),
        )
    )
    if found is None:
        raise BatchNotFound(f"No recognition batch {batch_id} that you can see.")
    return found


async def list_batches(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[RecognitionBatch], str | None]:
    statement = select(RecognitionBatch).where(
        RecognitionBatch.organization_id == actor.tenant_id, await _seen(session, actor)
    )
    return await paginate(
        session,
        statement,
        order_by=[RecognitionBatch.created_at, RecognitionBatch.id],
        params=params,
    )


async def results(
    session: AsyncSession, *, actor: Actor, batch_id: uuid.UUID, params: PageParams | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A row per photo, in upload order: what it was recognized as, or why it failed. A page
    of them with `params`, else every one."""
    await get_batch(session, actor=actor, batch_id=batch_id)
    # A photo's recognition filed since in a project the actor does not see stays hidden.
    seen = in_visible_project(
        Recognition.project_id, actor.tenant_id, await projects.visibility(session, actor)
    )
    statement = (
        select(RecognitionBatchItem, Recognition)
        .outerjoin(Recognition, and_(Recognition.id == RecognitionBatchItem.recognition_id, seen))
        .where(
            RecognitionBatchItem.organization_id == actor.tenant_id,
            RecognitionBatchItem.batch_id == batch_id,
        )
        .order_by(RecognitionBatchItem.position)
    )
    if params is not None:
        if params.cursor:
            (after,) = decode_keyset(params.cursor, [RecognitionBatchItem.position])
            statement = statement.where(RecognitionBatchItem.position > after)
        statement = statement.limit(params.limit + 1)
    rows = list((await session.execute(statement)).all())
    following = None
    if params is not None and len(rows) > params.limit:
        rows = rows[: params.limit]
        following = encode_cursor([rows[-1][0].position])
    found = []
    for item, recognition in rows:
        best = recognition.similar[0] if recognition is not None and recognition.similar else {}
        found.append(
            {
                "position": item.position,
                "file_name": item.file_name,
                "status": item.status,
                "error": item.error,
                "recognition_id": str(recognition.id) if recognition else None,
                "label": recognition.label if recognition else None,
                "confidence": recognition.confidence if recognition else None,
                "unknown": recognition.unknown if recognition else None,
                "unknown_reason": recognition.unknown_reason if recognition else None,
                "similar_material_id": best.get("material_id"),
                "similar_name": best.get("name"),
                "similar_code": best.get("code"),
                "similar_score": best.get("score"),
            }
        )
    return found, following


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The results as CSV; a file name or label that a spreadsheet would run as a formula is
    written as text (kai.kit.spreadsheets)."""
    buffer = io.StringIO()
    writer = CsvWriter(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow("" if row[key] is None else row[key] for key in RESULT_COLUMNS)
    return buffer.getvalue()


async def mark_failed(session: AsyncSession, *, batch_id: uuid.UUID) -> None:
    batch = await session.get(RecognitionBatch, batch_id)
    if batch is not None and batch.status in ("queued", "running"):
        batch.status = "failed"
        batch.finished_at = datetime.now(UTC)
