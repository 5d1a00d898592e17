"""What the catalog tells later domains, as jobs queued in the writer's transaction.

The catalog does not import the domains that react (architecture: arrows point down); it
queues their jobs by kind, and their workers find the task by name.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.jobs.queue import enqueue_unless_waiting

# Run by kai.search.tasks: refreshes the text embeddings of materials whose words changed.
EMBED_MATERIALS = "search.embed_materials"


async def materials_text_changed(session: AsyncSession, *, organization_id: uuid.UUID) -> None:
    """Materials of the organization were written: their meaning may have changed. One
    refresh is queued for the organization unless one is already waiting to start."""
    await enqueue_unless_waiting(session, EMBED_MATERIALS, organization_id=organization_id)


# Run by kai.search.tasks: embeds ready catalog images for visual similarity.
EMBED_IMAGES = "search.embed_images"


async def images_changed(session: AsyncSession, *, organization_id: uuid.UUID) -> None:
    """Images of the organization became ready: one visual refresh is queued unless one is
    already waiting to start."""
    await enqueue_unless_waiting(session, EMBED_IMAGES, organization_id=organization_id)
