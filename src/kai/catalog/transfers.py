"""Imports and exports as users start them: upload, dry run, the import job, downloads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.catalog import images
from kai.catalog.categories import list_categories
from kai.catalog.errors import BulkRejected, DuplicateImage
from kai.catalog.import_files import CatalogFile, SourceRow, detect_format, read_file
from kai.catalog.imports import (
    ImageAdder,
    ImageProblem,
    ImportMode,
    ImportReport,
    categories_index,
    csv_lines,
    export_columns,
    export_record,
    import_catalog,
)
from kai.catalog.models import Material, MaterialRow
from kai.catalog.repository import MaterialFilters, MaterialRepository
from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.admin import operator_actor
from kai.identity.permissions import Permission
from kai.kit import images as imaging
from kai.kit.archives import DEFAULT_MAX_INFLATED_BYTES, InflateBudget
from kai.kit.db import act_for, new_id, scoped_transaction
from kai.kit.jobs.models import Job
from kai.kit.jobs.tasks import delete_after_commit
from kai.kit.json import dumps
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import user_upload_key
from kai.kit.storage.transactional import put_for_transaction


def _image_adder(
    session: AsyncSession, storage: ObjectStorage, actor: Actor, limits: imaging.ImageLimits
) -> ImageAdder:
    async def add(material: Material, name: str, data: bytes) -> bool:
        """Whether the image was added; ImageProblem if it cannot be."""
        try:
            await images.attach_image(
                session,
                storage,
                actor=actor,
                material=material,
                data=data,
                file_name=name.rsplit("/", 1)[-1],
                primary=None,
                limits=limits,
            )
        except DuplicateImage as exc:
            # Already this material's: importing the same zip again adds nothing.
            if str(material.id) not in (exc.detail or ""):
                raise ImageProblem(exc.detail or exc.title) from None
            return False
        except (imaging.ImageRejected, imaging.ImageTooLarge) as exc:
            raise ImageProblem(exc.detail or exc.title) from None
        return True

    return add


async def dry_run(
    session: AsyncSession,
    *,
    actor: Actor,
    data: bytes,
    mapping: Mapping[str, str],
    mode: ImportMode,
    limits: imaging.ImageLimits,
    max_inflated_bytes: int,
) -> ImportReport:
    """What importing `data` would do, writing nothing."""
    catalog = await _read(data, limits, max_inflated_bytes, keep_images=False)
    return await import_catalog(
        session, actor=actor, file=catalog, mapping=mapping, mode=mode, dry_run=True
    )


async def _read(
    data: bytes, limits: imaging.ImageLimits, max_inflated_bytes: int, *, keep_images: bool
) -> CatalogFile:
    """The file read in a thread (inflating and parsing would hold the event loop)."""
    return await asyncio.to_thread(
        read_file,
        data,
        image_bytes_limit=limits.max_bytes,
        budget=InflateBudget(max_inflated_bytes),
        keep_images=keep_images,
    )


async def bulk_upsert(
    session: AsyncSession,
    *,
    actor: Actor,
    items: Sequence[Mapping[str, Any]],
    mode: ImportMode,
    dry_run: bool,
) -> ImportReport:
    """Materials given as records (the fields of an import's JSON), created or updated by
    code at once. All or nothing refuses the whole batch, naming every problem at the
    record's index in `loc`, the same index the report gives."""
    catalog = CatalogFile(
        rows=[SourceRow(index, None, dict(item)) for index, item in enumerate(items)], images={}
    )
    report = await import_catalog(
        session, actor=actor, file=catalog, mapping={}, mode=mode, dry_run=dry_run
    )
    if not dry_run and report.refused:
        raise BulkRejected(
            f"{len({error.index for error in report.errors})} of {len(items)} materials have "
            "problems; nothing was written.",
            errors=[
                {
                    "loc": ["body", "materials"]
                    + ([error.index] if error.index is not None else [])
                    + ([error.column] if error.column else []),
                    "msg": error.message,
                    "type": "bulk_item",
                }
                for error in report.errors
            ],
        )
    return report


async def start_import(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    data: bytes,
    file_name: str,
    mapping: Mapping[str, str],
    mode: ImportMode,
    limits: imaging.ImageLimits,
    max_inflated_bytes: int,
) -> Job:
    """Keep the file and queue its import; the job's result is the report."""
    from kai.catalog.tasks import import_file

    organization_id = actor.tenant_id
    # Refuse what cannot be read now, rather than in a job the user has to look up.
    await _read(data, limits, max_inflated_bytes, keep_images=False)
    key = user_upload_key(organization_id, f"imports/{new_id()}.{detect_format(data)}")
    # Kept only if the job that reads it is queued for good.
    await put_for_transaction(session, storage, key, data)
    job = await import_file.enqueue(
        session,
        organization_id=organization_id,
        params={
            "file_key": key,
            "file_name": file_name[:255],
            "mapping": dict(mapping),
            "mode": mode,
            "actor": {
                "kind": actor.kind,
                "user_id": str(actor.user_id) if actor.user_id else None,
                "api_key_id": str(actor.api_key_id) if actor.api_key_id else None,
            },
            "limits": {"max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels},
            # The job reads the file under the budget it was checked with.
            "max_inflated_bytes": max_inflated_bytes,
        },
    )
    # Timestamps the database set: loaded now, while the session may still do I/O.
    await session.refresh(job)
    await audit.record(
        session,
        action="catalog.import_started",
        organization_id=organization_id,
        actor=actor,
        target_type="job",
        target_id=str(job.id),
        details={"file_name": file_name[:255], "mode": mode},
    )
    return job


async def run_import(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    params: Mapping[str, Any],
    progress: Callable[[int, int], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """The import job's work: read the kept file, import it, report; the file is removed
    once the import has committed (the task removes it when the job ends otherwise).

    An attempt that fails leaves nothing: its rows roll back, and the images it stored for
    them are removed at the end of its transaction (the job's session), so the next attempt
    starts from the same place.
    """
    who = params["actor"]
    actor = Actor(
        kind=who["kind"],
        organization_id=organization_id,
        permissions=frozenset({Permission.MATERIALS_WRITE, Permission.MATERIALS_READ}),
        user_id=uuid.UUID(who["user_id"]) if who.get("user_id") else None,
        api_key_id=uuid.UUID(who["api_key_id"]) if who.get("api_key_id") else None,
    )
    limits = imaging.ImageLimits(**params["limits"])
    report = await _import_with_images(
        session,
        storage,
        actor=actor,
        data=await storage.read(params["file_key"]),
        mapping=params.get("mapping", {}),
        mode=params["mode"],
        dry_run=False,
        limits=limits,
        # Jobs queued before the budget was recorded get the settings' default one.
        max_inflated_bytes=params.get("max_inflated_bytes", DEFAULT_MAX_INFLATED_BYTES),
        progress=progress,
    )
    await delete_after_commit(session, [params["file_key"]], organization_id=organization_id)
    return report.summary()


async def _import_with_images(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    data: bytes,
    mapping: Mapping[str, str],
    mode: ImportMode,
    dry_run: bool,
    limits: imaging.ImageLimits,
    max_inflated_bytes: int,
    progress: Callable[[int, int], Awaitable[None]] | None,
) -> ImportReport:
    """Read and import a file, its images attached and their problems in the report."""
    catalog = await _read(data, limits, max_inflated_bytes, keep_images=True)
    return await import_catalog(
        session,
        actor=actor,
        file=catalog,
        mapping=mapping,
        mode=mode,
        dry_run=dry_run,
        add_image=_image_adder(session, storage, actor, limits),
        progress=progress,
    )


async def record_export(
    session: AsyncSession, *, actor: Actor, fmt: str, description: Mapping[str, Any]
) -> None:
    await audit.record(
        session,
        action="catalog.exported",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="catalog",
        details={"format": fmt, **{k: str(v) for k, v in description.items() if v}},
    )


async def export_pieces(
    session: AsyncSession,
    *,
    actor: Actor,
    fmt: str,
    pages: Callable[[str | None], Awaitable[tuple[Sequence[Material | MaterialRow], str | None]]],
) -> AsyncIterator[str]:
    """The materials `pages` yields, as CSV or JSON text in pieces (each measure with its unit)."""
    views = await list_categories(session, actor=actor)
    categories = categories_index(views)
    columns = export_columns(views)
    cursor: str | None = None
    first = True
    if fmt == "json":
        yield '{"materials": ['
    while True:
        rows, cursor = await pages(cursor)
        records = [export_record(material, categories) for material in rows]
        if fmt == "csv":
            lines = list(csv_lines(records, columns))
            yield "".join(lines if first else lines[1:])
            first = False
        else:
            for record in records:
                yield ("" if first else ",") + dumps(record).decode()
                first = False
        if cursor is None:
            break
    if fmt == "json":
        yield "]}"


async def operator_for(session: AsyncSession, organization_slug: str) -> Actor:
    """The command line's actor in an organization, found by its slug."""
    return await operator_actor(
        session,
        organization_slug,
        frozenset({Permission.MATERIALS_READ, Permission.MATERIALS_WRITE}),
    )


async def import_from_command_line(
    factory: async_sessionmaker[AsyncSession],
    storage: ObjectStorage,
    *,
    organization_slug: str,
    data: bytes,
    mapping: Mapping[str, str],
    mode: ImportMode,
    dry_run: bool,
    limits: imaging.ImageLimits,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
    progress: Callable[[int, int], Awaitable[None]] | None = None,
) -> ImportReport:
    """`kai catalog import`: the import in this process, in one transaction."""
    # A transaction whose images go again if it does not commit.
    async with scoped_transaction(factory, organization_id=None) as session:
        actor = await operator_for(session, organization_slug)
        await act_for(session, organization_id=actor.organization_id)
        report = await _import_with_images(
            session,
            storage,
            actor=actor,
            data=data,
            mapping=mapping,
            mode=mode,
            dry_run=dry_run,
            limits=limits,
            max_inflated_bytes=max_inflated_bytes,
            progress=progress,
        )
        if report.refused:
            # Nothing of it stays, nor the images it stored before it found why.
            await session.rollback()
        if report.written:
            await audit.record(
                session,
                action="catalog.imported",
                organization_id=actor.organization_id,
                actor=actor,
                target_type="catalog",
                details={"created": report.created, "updated": report.updated},
            )
    return report


async def export_from_command_line(
    factory: async_sessionmaker[AsyncSession],
    *,
    organization_slug: str,
    fmt: str,
    write: Callable[[str], object],
) -> int:
    """`kai catalog export`: every live material, written piece by piece; how many."""
    async with factory.begin() as session:
        actor = await operator_for(session, organization_slug)
        await act_for(session, organization_id=actor.organization_id)
        repository = MaterialRepository(session)
        count = 0

        async def pages(cursor: str | None) -> tuple[list[Material], str | None]:
            nonlocal count
            rows, following = await repository.list_page(
                actor.tenant_id, MaterialFilters(), PageParams(cursor=cursor, limit=1000)
            )
            count += len(rows)
            return rows, following

        await record_export(session, actor=actor, fmt=fmt, description={"by": "command line"})
        async for piece in export_pieces(session, actor=actor, fmt=fmt, pages=pages):
            write(piece)
    return count
