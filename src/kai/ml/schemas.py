"""API shapes of model training."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from kai.identity.actor import AUTHOR
from kai.kit.schemas import Instant, RequestModel


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
    """A backbone a training may ask for: built in, uploaded by the organization, or made for it
    by fine-tuning."""

    name: str = Field(description="What `backbones` of a training names it by.")
    kind: Literal["built-in", "uploaded", "fine-tuned"]
    input_side: int
    dimension: int | None = Field(description="The embedding's width (built-ins: once loaded).")
    sha256: str | None = None
    size_bytes: int | None = None
    spec: dict[str, Any] | None = Field(
        default=None, description="How an uploaded model is fed: normalisation, layout, output."
    )
    fine_tuning: dict[str, Any] | None = Field(
        default=None,
        description="A fine-tuned model's report: the network it started from, the method, "
        "epochs, photos, held-out accuracy, seconds, and the version whose training made it.",
    )
    created_by: str | None = Field(default=None, description=AUTHOR)
    created_at: datetime | None = None


class ExperimentCreate(RequestModel):
    """An A/B test of the active version (the champion) against a challenger."""

    challenger_version_id: uuid.UUID = Field(description="A ready version, not the active one.")
    mode: Literal["split", "shadow"] = Field(
        default="split",
        description="split: each subject sees one variant, always the same; shadow: the "
        "champion answers every photo and the challenger scores it unseen.",
    )
    challenger_share: float = Field(
        default=0.5, gt=0, lt=1, description="Split: the share of subjects shown the challenger."
    )
    auto_promote: StrictBool = Field(
        default=False,
        description="Promote the challenger by itself on a clear win; otherwise the test says "
        "so and a person promotes it.",
    )
    min_feedback: int = Field(
        default=100, ge=1, le=100_000, description="Judged answers each variant needs first."
    )
    max_recognitions: int | None = Field(
        default=None, ge=1, description="The budget: the test ends after this many."
    )
    ends_at: Instant | None = Field(default=None, description="The budget: it ends then.")
    loss_threshold: float = Field(
        default=0.005,
        gt=0,
        le=0.5,
        description="A variant wins once choosing it gives up less accuracy than this, on "
        "average over what is known.",
    )


class VariantFigures(BaseModel):
    recognitions: int
    unknown_share: float | None
    mean_confidence: float | None
    median_latency_ms: float | None
    judged: int = Field(description="Answers people gave feedback on.")
    right: int
    accuracy: float | None
    agreement: float | None = Field(
        default=None, description="Shadow: how often the challenger said what the champion did."
    )


class ExperimentFigures(BaseModel):
    variants: dict[str, VariantFigures]
    recognitions: int
    challenger_better: float = Field(
        description="The probability that the challenger is the more accurate (Bayesian)."
    )
    loss_choosing_champion: float
    loss_choosing_challenger: float
    recommendation: str | None = Field(
        default=None, description="`promote`: the challenger won; a person promotes it."
    )


class ExperimentRead(BaseModel):
    id: uuid.UUID
    mode: Literal["split", "shadow"]
    status: Literal["running", "concluded"]
    decision: Literal["promoted", "kept"] | None
    reason: str | None
    champion_version_id: uuid.UUID
    challenger_version_id: uuid.UUID
    challenger_share: float
    auto_promote: bool
    min_feedback: int
    max_recognitions: int | None
    ends_at: datetime | None
    loss_threshold: float
    figures: ExperimentFigures
    created_by: str | None = Field(description=AUTHOR)
    created_at: datetime
    concluded_at: datetime | None


class ModelEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str = Field(
        description="experiment.started, experiment.challenger_won, experiment.concluded, "
        "model.promoted"
    )
    data: dict[str, Any]
    created_at: datetime


class DriftWindowRead(BaseModel):
    """A window of live recognitions compared with the version's reference."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_version_id: uuid.UUID
    started_at: datetime
    ended_at: datetime
    recognitions: int
    drifted: bool
    figures: dict[str, Any] = Field(
        description="psi_confidence and psi_labels (population stability index: above 0.25 "
        "is drift), unknown_share against reference_unknown_share (drift 0.15 above), "
        "projection_p (the appearance: Kolmogorov-Smirnov on the embeddings' principal "
        "components, Bonferroni-corrected; drift under 0.01), and `reasons`."
    )
    created_at: datetime


class DriftCheckRead(BaseModel):
    window: DriftWindowRead | None
    detail: str


class ModelSettingsRead(BaseModel):
    """When new labels or drift train a challenger, and whether it is then tested by itself."""

    model_config = ConfigDict(from_attributes=True)

    retrain_after_labels: int | None = Field(
        description="Train a challenger once this many photos were labelled since the newest "
        "version; empty: never by itself."
    )
    retrain_on_drift: bool = Field(description="Train a challenger when drift is detected.")
    test_challenger: bool = Field(
        description="Start a split A/B test of such a challenger against the active version."
    )
    auto_promote: bool = Field(description="Let that test promote a clear winner by itself.")


class ModelSettingsChange(RequestModel):
    retrain_after_labels: int | None = Field(default=None, ge=1, le=1_000_000)
    retrain_on_drift: StrictBool | None = None
    test_challenger: StrictBool | None = None
    auto_promote: StrictBool | None = None
