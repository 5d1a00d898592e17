"""Purging deleted materials for good: the way out when a deleted material is in the way of a
category's deletion, and what a catalog manager does to forget one entirely."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.errors import MaterialNotDeleted
from kai.catalog.images import image_keys
from kai.catalog.materials import get_material
from kai.catalog.models import Material
from kai.catalog.repository import ImageRepository, MaterialRepository
from kai.identity import audit
from kai.identity.actor import Actor
from kai.kit.jobs.tasks import delete_after_commit

# Codes an audit event of a category's purge names (the count says how many in all).
AUDITED_CODES = 100


async def purge_material(session: AsyncSession, *, actor: Actor, material_id: uuid.UUID) -> None:
    """Remove a deleted material, its versions and its images; it cannot be restored after."""
    material = await get_material(
        session, actor=actor, material_id=material_id, include_deleted=True, for_update=True
    )
    if material.deleted_at is None:
        raise MaterialNotDeleted(
            "Only a deleted material can be purged: delete it first "
            f"(DELETE /api/v1/materials/{material_id}), then purge it."
        )
    await _purge(session, actor.tenant_id, [material])
    await audit.record(
        session,
        action="material.purged",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="material",
        target_id=str(material_id),
        details={"code": material.code, "name": material.name},
    )


async def purge_deleted_in_category(
    session: AsyncSession, *, actor: Actor, category_id: uuid.UUID
) -> int:
    """Purge the deleted materials filed directly under a category; how many went."""
    deleted = await MaterialRepository(session).deleted_in_category(
        actor.tenant_id, category_id, for_update=True
    )
    if not deleted:
        return 0
    await _purge(session, actor.tenant_id, deleted)
    await audit.record(
        session,
        action="material.purged",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="category",
        target_id=str(category_id),
        details={
            "count": len(deleted),
            "codes": [material.code for material in deleted[:AUDITED_CODES]],
        },
    )
    return len(deleted)


async def _purge(
    session: AsyncSession, organization_id: uuid.UUID, materials: Sequence[Material]
) -> None:
    # Versions, images, embeddings and project entries go with the rows (ON DELETE CASCADE);
    # feedback and training examples keep their photo and lose the link.
    ids = [material.id for material in materials]
    images = await ImageRepository(session).of_materials(organization_id, ids)
    keys = [key for image in images for key in image_keys(image)]
    await MaterialRepository(session).delete_rows(organization_id, ids)
    # The files go once the rows' removal has committed: a rollback keeps both.
    await delete_after_commit(session, keys, organization_id=organization_id)
