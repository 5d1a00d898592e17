"""What other domains ask of ml: the version that recognizes, and photos labelled for training."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity.actor import Actor
from kai.kit.db import new_id
from kai.ml import review
from kai.ml.models import LabeledPhoto, ModelVersion
from kai.ml.repository import ModelVersionRepository


async def active_version(
    session: AsyncSession, *, organization_id: uuid.UUID
) -> ModelVersion | None:
    """The organization's active model version, if it has one."""
    return await ModelVersionRepository(session).active(organization_id)


async def labels_materials(
    session: AsyncSession, *, organization_id: uuid.UUID, version_id: uuid.UUID | None
) -> bool:
    """Whether the version's labels are materials (`label_by: material`), not categories."""
    if version_id is None:
        return False
    version = await ModelVersionRepository(session).get(organization_id, version_id)
    return version is not None and version.labelling.get("label_by") == "material"


def material_label(name: str, code: str) -> str:
    """A material's label in a version labelled by material."""
    return f"{name} ({code})"


async def label_recognized_photo(
    session: AsyncSession,
    *,
    actor: Actor,
    recognition_id: uuid.UUID,
    image_key: str,
    category_id: uuid.UUID | None,
    material_id: uuid.UUID | None,
) -> None:
    """A recognition's photo as labelled data for the next training (one per recognition:
    the latest label wins; naming nothing, it is no longer labelled)."""
    repository = ModelVersionRepository(session)
    if category_id is None and material_id is None:
        await repository.forget_labeled_photo(actor.tenant_id, recognition_id)
        return
    await repository.save_labeled_photo(
        LabeledPhoto(
            id=new_id(),
            organization_id=actor.tenant_id,
            image_key=image_key,
            category_id=category_id,
            material_id=material_id,
            source="feedback",
            recognition_id=recognition_id,
            created_by=actor.author,
        )
    )
    # Reviewed: out of the queue; and enough new labels may call for a challenger.
    await review.resolve(
        session,
        organization_id=actor.tenant_id,
        recognition_id=recognition_id,
        status="labelled",
        by=actor.author,
    )
    await review.queue_retraining_check(session, organization_id=actor.tenant_id, because="labels")
