"""Batches of recognitions: many photos (files, or zips of them) checked and stored at once,
then recognized by a job, with a result per photo exportable as CSV or JSON."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.errors import KaiError, NotFound, Unprocessable
from kai.kit.images import ImageLimits, decode_upload
from kai.kit.pagination import PageParams, paginate
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import user_upload_key
from kai.ml.repository import ModelVersionRepository
from kai.recognition import projects, service
from kai.recognition.models import Recognition, RecognitionBatch, RecognitionBatchItem
from kai.recognition.repository import in_visible_project

MAX_PHOTOS = 1000
# What the photos of one zip may unpack to, all together.
MAX_UNPACKED_BYTES = 2 * 1024**3
# Photos recognized at once: one a core (each recognition runs its backbones side by side).
CONCURRENCY = 2
ZIP_SIGNATURE = b"PK\x03\x04"
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "heic": "heic"}
RESULT_COLUMNS = (
    "position", "file_name", "status", "error", "recognition_id", "label", "confidence",
    "unknown", "unknown_reason", "similar_material_id", "similar_name", "similar_score",
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
    format: str
    content_type: str


def _problem(name: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", "files", name], "msg": message, "type": "file"}


def _unpacked(name: str, data: bytes, limits: ImageLimits) -> Iterator[tuple[str, bytes]]:
    """A zip's files (folders, hidden files and macOS resource forks left out), or the file."""
    if not data.startswith(ZIP_SIGNATURE):
        yield name, data
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [
            member
            for member in archive.infolist()
            if not member.is_dir()
            and not any(
                part.startswith(".") or part == "__MACOSX"
                for part in PurePosixPath(member.filename).parts
            )
        ]
    except zipfile.BadZipFile as exc:
        raise BatchRejected(
            f"{name} is not a readable zip: {exc}", errors=[_problem(name, "not a zip")]
        ) from None
    if sum(member.file_size for member in members) > MAX_UNPACKED_BYTES:
        raise BatchRejected(
            f"{name} unpacks to more than {MAX_UNPACKED_BYTES} bytes.",
            errors=[_problem(name, "too large unpacked")],
        )
    for member in members:
        if member.file_size > limits.max_bytes:
            yield f"{name}/{member.filename}", b""  # refused below, by size, unread
            continue
        with archive.open(member) as opened:
            yield f"{name}/{member.filename}", opened.read(limits.max_bytes + 1)


def checked_photos(files: Sequence[tuple[str, bytes]], limits: ImageLimits) -> list[Photo]:
    """Every photo of the upload, each checked by content (a whole decode, at a small scale);
    any that is not a photo KAI accepts refuses the batch, naming them all."""
    photos: list[Photo] = []
    problems: list[dict[str, Any]] = []
    for name, data in files:
        for inner, content in _unpacked(name, data, limits):
            if len(photos) + len(problems) >= MAX_PHOTOS:
                raise BatchRejected(
                    f"A batch holds at most {MAX_PHOTOS} photos.",
                    errors=[_problem(inner, f"more than {MAX_PHOTOS} photos")],
                )
            if not content and inner != name:
                problems.append(_problem(inner, f"over {limits.max_bytes} bytes"))
                continue
            try:
                inspected, _ = decode_upload(content, limits, max_side=64)
            except KaiError as exc:
                problems.append(_problem(inner, exc.detail or exc.title))
                continue
            photos.append(Photo(inner, content, inspected.format, inspected.content_type))
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
    if await ModelVersionRepository(session).active(organization_id) is None:
        raise service.NoTrainedModel("Train a model first: a batch is recognized by one.")
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
        created_by=f"{actor.kind}:{actor.audit_id}",
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
    stored: list[str] = []
    try:
        for item, photo in zip(items, photos, strict=True):
            await storage.put(item.image_key, photo.data, content_type=photo.content_type)
            stored.append(item.image_key)
        job = await recognize_batch.enqueue(
            session, params={"batch_id": str(batch.id)}, organization_id=organization_id
        )
    except BaseException:
        for key in stored:
            await storage.delete(key)
        raise
    batch.job_id = job.id
    await session.flush()
    return batch


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
    """Recognize each photo not yet recognized, `CONCURRENCY` at a time, each in a transaction
    of its own (a result is kept as soon as it is known; a retry does only what is left)."""
    async with sessions() as session:
        batch = await session.get(RecognitionBatch, batch_id)
        if batch is None:
            return {"skipped": "batch deleted"}
        batch.status = "running"
        pending = (
            await session.scalars(
                select(RecognitionBatchItem.position)
                .where(
                    RecognitionBatchItem.batch_id == batch_id,
                    RecognitionBatchItem.status == "pending",
                )
                .order_by(RecognitionBatchItem.position)
            )
        ).all()
        options = service.RecognitionOptions(
            top_k=int(batch.options.get("top_k", 5)),
            similar_k=int(batch.options.get("similar_k", 10)),
            category_id=(
                uuid.UUID(batch.options["category_id"])
                if batch.options.get("category_id")
                else None
            ),
            filters=tuple(batch.options.get("filters") or ()),
            project_id=batch.project_id,
        )
        author = batch.created_by
        total = batch.total
        finished = batch.done + batch.failed
    actor = Actor(kind="operator", organization_id=organization_id, permissions=frozenset())
    gate = asyncio.Semaphore(CONCURRENCY)
    counter = {"finished": finished}

    async def one(position: int) -> None:
        async with gate, sessions() as session:
            item = await session.get(RecognitionBatchItem, (batch_id, position))
            assert item is not None
            outcome = "done"
            try:
                data = await storage.read(item.image_key)
                recognized = await service.recognize(
                    session,
                    storage,
                    actor=actor,
                    data=data,
                    file_name=item.file_name,
                    options=options,
                    settings=settings,
                    limits=limits,
                    author=author,
                    stored_key=item.image_key,
                )
                item.status = "recognized"
                item.recognition_id = recognized.recognition.id
            except service.NoTrainedModel:
                raise
            except KaiError as exc:
                outcome = "failed"
                item.status = "failed"
                item.error = (exc.detail or exc.title)[:2000]
            column = RecognitionBatch.done if outcome == "done" else RecognitionBatch.failed
            await session.execute(
                update(RecognitionBatch)
                .where(RecognitionBatch.id == batch_id)
                .values({column.key: column + 1})
            )
        counter["finished"] += 1
        if progress is not None:
            await progress(counter["finished"], total)

    await asyncio.gather(*(one(position) for position in pending))
    async with sessions() as session:
        batch = await session.get(RecognitionBatch, batch_id)
        assert batch is not None
        batch.status = "succeeded"
        batch.finished_at = datetime.now(UTC)
        return {"recognized": batch.done, "failed": batch.failed}


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
    session: AsyncSession, *, actor: Actor, batch_id: uuid.UUID
) -> list[dict[str, Any]]:
    """A row per photo, in upload order: what it was recognized as, or why it failed."""
    await get_batch(session, actor=actor, batch_id=batch_id)
    rows = (
        await session.execute(
            select(RecognitionBatchItem, Recognition)
            .outerjoin(Recognition, Recognition.id == RecognitionBatchItem.recognition_id)
            .where(
                RecognitionBatchItem.organization_id == actor.tenant_id,
                RecognitionBatchItem.batch_id == batch_id,
            )
            .order_by(RecognitionBatchItem.position)
        )
    ).all()
    found = []
    for item, recognition in rows:
        best = recognition.similar[0] if recognition is not None and recognition.similar else {}
        found.append(
            {
                "position": item.position,
                "file_name": item.file_name,
                "status": item.status,
                "error": item.error,
                "recognition_id": str(item.recognition_id) if item.recognition_id else None,
                "label": recognition.label if recognition else None,
                "confidence": recognition.confidence if recognition else None,
                "unknown": recognition.unknown if recognition else None,
                "unknown_reason": recognition.unknown_reason if recognition else None,
                "similar_material_id": best.get("material_id"),
                "similar_name": best.get("name"),
                "similar_score": best.get("score"),
            }
        )
    return found


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in RESULT_COLUMNS})
    return buffer.getvalue()


def results_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(rows)


async def mark_failed(session: AsyncSession, *, batch_id: uuid.UUID) -> None:
    batch = await session.get(RecognitionBatch, batch_id)
    if batch is not None and batch.status in ("queued", "running"):
        batch.status = "failed"
        batch.finished_at = datetime.now(UTC)
