"""Images of materials: validated by content on upload, stored once per organization, with
derivatives (processed and thumbnail, metadata stripped) made by a job."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog import events
from kai.catalog.errors import DuplicateImage, ImageNotFound, ImageNotReady
from kai.catalog.materials import get_material
from kai.catalog.models import ImageStatus, Material, MaterialImage
from kai.catalog.repository import ImageRepository
from kai.identity.actor import Actor
from kai.kit import images as imaging
from kai.kit.db import new_id
from kai.kit.jobs.tasks import delete_after_commit
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import ImageVariant, material_image_key
from kai.kit.storage.transactional import put_for_transaction
from kai.kit.threads import IMAGE_CHECKS

log = structlog.get_logger(__name__)

# What clients may fetch: derivatives only. Originals keep what the camera wrote (GPS too).
SERVED_VARIANTS: dict[str, ImageVariant] = {"processed": "processed", "thumbnail": "thumbnails"}


async def upload_image(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    data: bytes,
    file_name: str,
    primary: bool | None,
    limits: imaging.ImageLimits,
) -> MaterialImage:
    """Check, store and record an image; its derivatives follow from a job."""
    material = await get_material(session, actor=actor, material_id=material_id)
    return await attach_image(
        session,
        storage,
        actor=actor,
        material=material,
        data=data,
        file_name=file_name,
        primary=primary,
        limits=limits,
    )


async def attach_image(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    material: Material,
    data: bytes,
    file_name: str,
    primary: bool | None,
    limits: imaging.ImageLimits,
) -> MaterialImage:
    """Refused files leave nothing behind: the bytes are stored only after every check passed
    and the row is in place, and removed again if the row's transaction does not commit."""
    from kai.catalog.tasks import make_image_derivatives

    organization_id = actor.tenant_id
    # Whatever follows the picture's end (an appended zip, a phone's motion video) is dropped.
    data, inspected = await IMAGE_CHECKS.run(imaging.accept_upload, data, limits)
    repository = ImageRepository(session)
    existing = await repository.by_sha256(organization_id, inspected.sha256)
    if existing is not None:
        raise DuplicateImage(
            f"The same file is image {existing.id} of material {existing.material_id}.",
            headers={"Location": f"/api/v1/materials/{existing.material_id}/images"},
        )
    others = await repository.of_material(organization_id, material.id)
    make_primary = primary if primary is not None else not others
    if make_primary:
        await repository.clear_primary(organization_id, material.id)
    image_id = new_id()
    original_key = material_image_key(
        organization_id, "original", f"{image_id}.{imaging.EXTENSIONS[inspected.format]}"
    )
    image = await repository.add(
        MaterialImage(
            id=image_id,
            organization_id=organization_id,
            material_id=material.id,
            sha256=inspected.sha256,
            file_name=file_name[:255],
            format=inspected.format,
            content_type=inspected.content_type,
            width=inspected.width,
            height=inspected.height,
            size_bytes=inspected.size_bytes,
            position=max((other.position for other in others), default=-1) + 1,
            is_primary=make_primary,
            status=ImageStatus.PROCESSING.value,
            original_key=original_key,
            created_by=actor.author,
        )
    )
    await put_for_transaction(
        session, storage, original_key, data, content_type=inspected.content_type
    )
    await make_image_derivatives.enqueue(
        session, params={"image_id": str(image.id)}, organization_id=organization_id
    )
    return image


async def list_images(
    session: AsyncSession, *, actor: Actor, material_id: uuid.UUID, params: PageParams
) -> tuple[list[MaterialImage], str | None]:
    material = await get_material(session, actor=actor, material_id=material_id)
    return await ImageRepository(session).page_of_material(actor.tenant_id, material.id, params)


async def get_image(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    image_id: uuid.UUID,
    for_update: bool = False,
) -> MaterialImage:
    material = await get_material(session, actor=actor, material_id=material_id)
    image = await ImageRepository(session).get(
        actor.tenant_id, image_id, material_id=material.id, for_update=for_update
    )
    if image is None:
        raise ImageNotFound(f"No image {image_id} of material {material_id}.")
    return image


async def update_image(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    image_id: uuid.UUID,
    primary: bool | None,
    position: int | None,
) -> MaterialImage:
    image = await get_image(
        session, actor=actor, material_id=material_id, image_id=image_id, for_update=True
    )
    repository = ImageRepository(session)
    if primary and not image.is_primary:
        await repository.clear_primary(image.organization_id, image.material_id)
        image.is_primary = True
    elif primary is False:
        image.is_primary = False
    if position is not None:
        image.position = position
    await session.flush()
    await session.refresh(image)
    return image


async def delete_image(
    session: AsyncSession, *, actor: Actor, material_id: uuid.UUID, image_id: uuid.UUID
) -> None:
    """Forget the image; its files are removed once that has committed."""
    image = await get_image(
        session, actor=actor, material_id=material_id, image_id=image_id, for_update=True
    )
    repository = ImageRepository(session)
    was_primary = image.is_primary
    keys = image_keys(image)
    await repository.delete(image)
    if was_primary:
        remaining = await repository.of_material(image.organization_id, image.material_id)
        if remaining:
            remaining[0].is_primary = True
            await session.flush()
    # The files go once the row's removal has committed: a rollback keeps both.
    await delete_after_commit(session, keys, organization_id=image.organization_id)


@dataclass(frozen=True)
class ServedImage:
    key: str
    content_type: str
    etag: str


async def served_image(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    image_id: uuid.UUID,
    variant: str,
) -> ServedImage:
    image = await get_image(session, actor=actor, material_id=material_id, image_id=image_id)
    key = image.processed_key if variant == "processed" else image.thumbnail_key
    if image.status != ImageStatus.READY.value or key is None:
        raise ImageNotReady(
            "The image is still being processed."
            if image.status == "processing"
            else "The image could not be processed.",
            headers={"Retry-After": "2"} if image.status == "processing" else None,
        )
    return ServedImage(key=key, content_type="image/webp", etag=f'"{image.sha256[:32]}-{variant}"')


async def make_derivatives(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    image_id: uuid.UUID,
) -> dict[str, object]:
    """Write the processed image and the thumbnail of one image; safe to run again."""
    repository = ImageRepository(session)
    image = await repository.get(organization_id, image_id, for_update=True)
    if image is None:
        # Deleted before the job ran: nothing to do.
        return {"skipped": "image deleted"}
    if image.status == ImageStatus.READY.value and image.processed_key and image.thumbnail_key:
        # Made already (by `kai dataset import`, or an earlier attempt that committed).
        return {"skipped": "already made"}
    original = await storage.read(image.original_key)
    try:
        processed = await asyncio.to_thread(
            imaging.make_derivative, original, max_side=imaging.PROCESSED_SIDE
        )
        thumbnail = await asyncio.to_thread(
            imaging.make_derivative, original, max_side=imaging.THUMBNAIL_SIDE
        )
    except (imaging.ImageRejected, imaging.ImageTooLarge) as exc:
        image.status = ImageStatus.FAILED.value
        image.error = str(exc)[:1000]
        await session.flush()
        log.warning("catalog.image_failed", image_id=str(image_id), error=image.error)
        return {"failed": image.error}
    processed_key, thumbnail_key = _derivative_keys(organization_id, image.id)
    await storage.put(processed_key, processed.data, content_type=processed.content_type)
    await storage.put(thumbnail_key, thumbnail.data, content_type=thumbnail.content_type)
    image.processed_key = processed_key
    image.thumbnail_key = thumbnail_key
    image.status = ImageStatus.READY.value
    image.error = None
    await session.flush()
    await events.images_changed(session, organization_id=organization_id)
    return {
        "processed": [processed.width, processed.height],
        "thumbnail": [thumbnail.width, thumbnail.height],
    }


def image_keys(image: MaterialImage) -> list[str]:
    """Every stored object of an image: its original and its derivatives, whether or not
    recorded (a derivatives job whose last attempt failed after writing one leaves it under
    its key, and forgetting the image is that object's last chance to go)."""
    recorded = (image.original_key, image.processed_key, image.thumbnail_key)
    derived = _derivative_keys(image.organization_id, image.id)
    return list(dict.fromkeys([*(key for key in recorded if key), *derived]))


def _derivative_keys(organization_id: uuid.UUID, image_id: uuid.UUID) -> tuple[str, str]:
    """Where an image's processed copy and thumbnail are stored: named by the image, so a
    derivatives job run again writes over its own earlier attempt."""
    return (
        material_image_key(organization_id, "processed", f"{image_id}.webp"),
        material_image_key(organization_id, "thumbnails", f"{image_id}.webp"),
    )
