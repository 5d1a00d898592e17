"""API shapes of model training."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kai.identity.actor import AUTHOR


class LabelRead(BaseModel):
    label: str
    category_id: uuid.UUID | None
    photos: int


class BackboneRead(BaseModel):
    name: str
    fingerprint: str
    vote: float = Field(description="The backbone's share of the vote (0: not consulted).")


class ModelVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    status: Literal["training", "ready", "failed"]
    active: bool
    labelling: dict[str, Any]
    options: dict[str, Any] = Field(description="What the training was asked for.")
    labels: list[LabelRead]
    backbones: list[BackboneRead]
    metrics: dict[str, Any] = Field(
        description="Validation: accuracy, macro_f1, per_class, confusion_matrix, calibration; "
        "and `unknown`: the checks of likeness to the training photos (backbone, kind, "
        "threshold), the share of training photos, held out, that they call unlike, and of "
        "generated non-materials."
    )
    novelty_threshold: float | None = Field(
        description="Similarity to the nearest label's photos under which a photo is unknown, "
        "by the first backbone (every check's: `metrics.unknown.checks`)."
    )
    temperature: float
    error: str | None
    job_id: uuid.UUID | None
    created_by: str | None = Field(description=AUTHOR)
    created_at: datetime
    trained_at: datetime | None


class ImageModelRead(BaseModel):
    """A backbone a training may ask for: built in, or uploaded by the organization."""

    name: str = Field(description="What `backbones` of a training names it by.")
    kind: Literal["built-in", "uploaded"]
    input_side: int
    dimension: int | None = Field(description="The embedding's width (built-ins: once loaded).")
    sha256: str | None = None
    size_bytes: int | None = None
    spec: dict[str, Any] | None = Field(
        default=None, description="How an uploaded model is fed: normalisation, layout, output."
    )
    created_by: str | None = Field(default=None, description=AUTHOR)
    created_at: datetime | None = None
