"""A folder of labelled photos made into catalog content (`kai dataset import`), and training
and recognition run in this process for the command line (`kai train`, `kai recognize`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog import categories, images
from kai.catalog.errors import DuplicateImage
from kai.catalog.materials import create_material, live_material_by_code
from kai.catalog.models import Material
from kai.catalog.schemas import MaterialCreate
from kai.identity.actor import Actor
from kai.kit.errors import KaiError
from kai.kit.images import ImageLimits, ImageRejected, ImageTooLarge
from kai.kit.storage import ObjectStorage
from kai.kit.storage.transactional import remove_unless_committed
from kai.ml.evaluation import find_labeled_images

Progress = Callable[[int, int], Awaitable[None]]
MaterialsPer = Literal["label", "image"]


@dataclass
class DatasetReport:
    labels: int = 0
    categories_created: int = 0
    materials_created: int = 0
    images_added: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def label_name(folder: str) -> str:
    """`brushed_brass` -> `Brushed brass`: a folder name as a category name."""
    words = re.sub(r"[_\-]+", " ", folder).strip()
    return words[:1].upper() + words[1:] if words else folder


def _code(*parts: str) -> str:
    slug = "-".join(re.sub(r"[^A-Za-z0-9]+", "-", part).strip("-").upper() for part in parts)
    return f"DS-{slug}"[:100]


async def import_folder(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    root: Path,
    materials_per: MaterialsPer,
    parent_id: uuid.UUID | None,
    limits: ImageLimits,
    progress: Progress | None = None,
) -> DatasetReport:
    """One category per folder (found by name, or made), a material per folder or per
    photo (found by code, or made), and each photo as the material's image with its
    derivatives made now, so that a training can follow at once. Run again, it adds only what
    is new: photos already in the catalog are counted as duplicates."""
    found = find_labeled_images(root)
    report = DatasetReport(labels=len(set(found.labels)))
    views = await categories.cached_categories(session, actor=actor)
    by_name = {
        view.category.name.lower(): view.category.id
        for view in views
        if (view.category.path[-1] if view.category.path else None) == parent_id
    }
    category_of: dict[str, uuid.UUID] = {}
    material_of: dict[str, Material] = {}
    for done, (path, folder) in enumerate(zip(found.paths, found.labels, strict=True), start=1):
        name = label_name(folder)
        if folder not in category_of:
            existing = by_name.get(name.lower())
            if existing is None:
                created = await categories.create_category(
                    session,
                    actor=actor,
                    name=name,
                    parent_id=parent_id,
                    description=f"Imported from the folder {folder}/",
                    position=None,
                    properties=[],
                )
                existing = created.category.id
                by_name[name.lower()] = existing
                report.categories_created += 1
            category_of[folder] = existing
        code = _code(folder) if materials_per == "label" else _code(folder, path.stem)
        material = material_of.get(code)
        if material is None:
            material = await live_material_by_code(session, actor=actor, code=code)
        if material is None:
            material = await create_material(
                session,
                actor=actor,
                data=MaterialCreate(
                    name=name if materials_per == "label" else f"{name} {path.stem}",
                    code=code,
                    category_id=category_of[folder],
                ),
            )
            report.materials_created += 1
        material_of[code] = material
        try:
            image = await images.attach_image(
                session,
                storage,
                actor=actor,
                material=material,
                data=path.read_bytes(),
                file_name=path.name,
                primary=None,
                limits=limits,
            )
            await images.make_derivatives(
                session, storage, organization_id=actor.tenant_id, image_id=image.id
            )
            # Named by an image new in this transaction: theirs to keep only if it commits.
            for key in (image.processed_key, image.thumbnail_key):
                if key is not None:
                    await remove_unless_committed(session, storage, key)
            report.images_added += 1
        except DuplicateImage:
            report.duplicates += 1
        except (ImageRejected, ImageTooLarge, OSError) as exc:
            detail = exc.detail if isinstance(exc, KaiError) else str(exc)
            report.skipped.append((str(path.relative_to(root)), detail or "unreadable"))
        if progress is not None:
            await progress(done, len(found.paths))
    return report
