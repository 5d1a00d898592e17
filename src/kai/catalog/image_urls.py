"""Where the API serves the derivatives of a material's images: the one place that spells
the path, for the images' routes and for every answer that links to a picture."""

from __future__ import annotations

import uuid


def derivative_url(material_id: uuid.UUID, image_id: uuid.UUID, variant: str) -> str:
    """Where the API serves an image's derivative (`processed` or `thumbnail`)."""
    return f"/api/v1/materials/{material_id}/images/{image_id}/{variant}"


def thumbnail_url(material_id: uuid.UUID, image_id: uuid.UUID) -> str:
    """Where the API serves an image's thumbnail (256 px WebP, without metadata)."""
    return derivative_url(material_id, image_id, "thumbnail")
