"""Tables of model training: each organization's model versions and which one is active."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from kai.kit.db import Base, new_id

TENANT_TABLES = (
    "model_versions",
    "labeled_photos",
    "image_models",
    "model_experiments",
    "experiment_observations",
    "model_events",
    "served_predictions",
    "drift_windows",
    "review_items",
    "model_settings",
)


class ModelVersion(Base):
    """One trained recognizer of an organization: what it was trained on, how it scored, and
    where its heads are stored. At most one version of an organization is active.

    Room for the registry that comes later (A/B tests, drift): a version is never changed
    once ready, only activated or retired, so results can always name what produced them.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        Index("uq_model_versions_number", "organization_id", "number", unique=True),
        Index(
            "uq_model_versions_active",
            "organization_id",
            unique=True,
            postgresql_where=text("active"),
        ),
        CheckConstraint("status IN ('training', 'ready', 'failed')", name="status_known"),
        CheckConstraint("NOT active OR status = 'ready'", name="active_is_ready"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    # 1, 2, 3... within the organization: what people call "version 3".
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), server_default=text("'training'"))
    active: Mapped[bool] = mapped_column(server_default=text("false"))
    # How photos were labelled: {"source": "categories", "level": 2} or {"source": "labels"}.
    labelling: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # [{"label": "Marble", "category_id": "...", "images": 40}, ...], in the heads' order.
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # [{"name": "efficientnet-lite0", "fingerprint": "...", "weight": 0.7}, ...]
    backbones: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    # Validation metrics: accuracy, macro_f1, per_class, confusion_matrix, split sizes.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Similarity to the nearest label's centre under which a photo is "unlike anything
    # trained on" (from the training photos' own spread).
    novelty_threshold: Mapped[float | None] = mapped_column(Float)
    temperature: Mapped[float] = mapped_column(Float, server_default=text("1.0"))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Object-storage keys: the heads (NumPy arrays) and the dataset snapshot (JSON).
    artifact_key: Mapped[str | None] = mapped_column(String(1024))
    dataset_key: Mapped[str | None] = mapped_column(String(1024))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    trained_at: Mapped[datetime | None]
    # What its validation data looked like, for drift (kai.ml.drift): an .npz in storage.
    reference_key: Mapped[str | None] = mapped_column(String(1024))
    # Its MLflow run and registered model version, once recorded (kai.ml.registry).
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    registered_version: Mapped[int | None]


class LabeledPhoto(Base):
    """A photo someone labelled outside the catalog (feedback on a recognition, for now): what
    the next training learns from besides the catalog's own images."""

    __tablename__ = "labeled_photos"
    __table_args__ = (
        Index(
            "uq_labeled_photos_recognition",
            "recognition_id",
            unique=True,
            postgresql_where=text("recognition_id IS NOT NULL"),
        ),
        CheckConstraint(
            "category_id IS NOT NULL OR material_id IS NOT NULL", name="says_what_it_is"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    image_key: Mapped[str] = mapped_column(String(1024))
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL")
    )
    material_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("materials.id", ondelete="SET NULL")
    )
    source: Mapped[str] = mapped_column(String(20), server_default=text("'feedback'"))
    # The recognition whose photo this is (no foreign key: recognition sits above ml).
    recognition_id: Mapped[uuid.UUID | None]
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ImageModel(Base):
    """An ONNX image model of an organization, uploaded or made by fine-tuning, to train its
    recognizer on as a backbone (`custom:<name>`): the file in the organization's storage, and
    how to feed it."""

    __tablename__ = "image_models"
    __table_args__ = (Index("uq_image_models_name", "organization_id", "name", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(60))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(1024))
    # The OnnxModelSpec: input_side, mean, std, scale, layout, input, output.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The embedding's width, found by running the model once on upload.
    dimension: Mapped[int]
    # "uploaded", or "fine-tuned" by a training (kai.ml.fine_tuning).
    origin: Mapped[str] = mapped_column(String(20), server_default=text("'uploaded'"))
    # A fine-tuned model's report: the network it started from, the method, epochs, the
    # photos, held-out accuracy, seconds, the version whose training made it.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ModelExperiment(Base):
    """An A/B test between an organization's active version (the champion) and a challenger.

    `split`: each subject (a user, an API key, or a subject the client names) is shown one
    variant, the same every time, the challenger for `challenger_share` of subjects.
    `shadow`: every photo is answered by the champion and also scored by the challenger,
    whose answer is kept but never shown. At most one test of an organization runs.
    """

    __tablename__ = "model_experiments"
    __table_args__ = (
        Index(
            "uq_model_experiments_running",
            "organization_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
        CheckConstraint("mode IN ('split', 'shadow')", name="mode_known"),
        CheckConstraint("status IN ('running', 'concluded')", name="status_known"),
        CheckConstraint(
            "decision IS NULL OR decision IN ('promoted', 'kept')", name="decision_known"
        ),
        CheckConstraint(
            "challenger_share > 0 AND challenger_share < 1", name="challenger_share_between"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    champion_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    challenger_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    mode: Mapped[str] = mapped_column(String(10))
    challenger_share: Mapped[float] = mapped_column(Float, server_default=text("0.5"))
    status: Mapped[str] = mapped_column(String(12), server_default=text("'running'"))
    # promoted: the challenger became the active version; kept: the champion stayed.
    decision: Mapped[str | None] = mapped_column(String(12))
    # Why it ended, in a sentence (a clear result, the budget spent, a person's call).
    reason: Mapped[str | None] = mapped_column(Text)
    # The organization's rule: promote the challenger by itself on a clear win, or only say so.
    auto_promote: Mapped[bool] = mapped_column(server_default=text("false"))
    # Feedback each variant needs before a result can be clear.
    min_feedback: Mapped[int] = mapped_column(server_default=text("100"))
    # The budget: it ends after this many recognitions, or at this time, whichever first.
    max_recognitions: Mapped[int | None]
    ends_at: Mapped[datetime | None]
    # A variant is chosen once the expected accuracy lost by choosing it is below this.
    loss_threshold: Mapped[float] = mapped_column(Float, server_default=text("0.005"))
    # The figures when it was last judged.
    results: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    concluded_at: Mapped[datetime | None]


class ExperimentObservation(Base):
    """One recognition made during an A/B test: which variant answered, how, and (once
    someone says) whether it was right; in shadow mode, also what the challenger said."""

    __tablename__ = "experiment_observations"

    experiment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    # The recognition (no foreign key: recognition sits above ml).
    recognition_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    variant: Mapped[str] = mapped_column(String(12))
    label: Mapped[str | None] = mapped_column(String(300))
    category_id: Mapped[uuid.UUID | None]
    confidence: Mapped[float] = mapped_column(Float)
    unknown: Mapped[bool]
    latency_ms: Mapped[float] = mapped_column(Float)
    # Shadow mode: the challenger's answer, never shown.
    shadow_label: Mapped[str | None] = mapped_column(String(300))
    shadow_category_id: Mapped[uuid.UUID | None]
    shadow_unknown: Mapped[bool | None]
    shadow_confidence: Mapped[float | None] = mapped_column(Float)
    # From feedback: whether the answer shown was right, and whether the shadow's would be.
    correct: Mapped[bool | None]
    shadow_correct: Mapped[bool | None]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ModelEvent(Base):
    """Something that happened to an organization's models that people and the coming webhooks
    are told of: a test started or concluded, a version promoted, drift detected."""

    __tablename__ = "model_events"
    __table_args__ = (Index("ix_model_events_listed", "organization_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ServedPrediction(Base):
    """What a version answered for one recognition: the live data drift is measured on."""

    __tablename__ = "served_predictions"
    __table_args__ = (
        Index("ix_served_predictions_window", "organization_id", "model_version_id", "created_at"),
    )

    # The recognition (no foreign key: recognition sits above ml).
    recognition_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    # The photo, by its storage key: its embeddings are in the feature store under it.
    image_key: Mapped[str] = mapped_column(String(1024))
    label: Mapped[str | None] = mapped_column(String(300))
    confidence: Mapped[float] = mapped_column(Float)
    unknown: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))


class DriftWindow(Base):
    """A window of a version's live recognitions compared with its reference (kai.ml.drift)."""

    __tablename__ = "drift_windows"
    __table_args__ = (Index("ix_drift_windows_listed", "organization_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    recognitions: Mapped[int]
    # psi_confidence, psi_labels, unknown_share, reference_unknown_share, projection_p,
    # reasons.
    figures: Mapped[dict[str, Any]] = mapped_column(JSONB)
    drifted: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ReviewItem(Base):
    """A recognition worth a person's label (kai.ml.review): unknown, a close call, or where
    champion and challenger disagreed."""

    __tablename__ = "review_items"
    __table_args__ = (
        CheckConstraint("reason IN ('unknown', 'low_margin', 'disagreement')", name="reason_known"),
        CheckConstraint("status IN ('pending', 'labelled', 'skipped')", name="status_known"),
        Index("ix_review_items_pending", "organization_id", "status", "created_at"),
    )

    # The recognition (no foreign key: recognition sits above ml).
    recognition_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    image_key: Mapped[str] = mapped_column(String(1024))
    # Which of the photo's embeddings in the feature store the ranking compares.
    features_of: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(20))
    # The best answer's confidence less the second's.
    margin: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10), server_default=text("'pending'"))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))


class ModelSettings(Base):
    """An organization's rules for its models: when new labels or drift queue the training of
    a challenger, and whether that challenger is then tested (and promoted) by itself."""

    __tablename__ = "model_settings"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # Train a challenger once this many photos were labelled since the newest version (None:
    # never by itself).
    retrain_after_labels: Mapped[int | None]
    retrain_on_drift: Mapped[bool] = mapped_column(server_default=text("false"))
    # Start a split A/B test of a challenger trained so; and let that test promote it.
    test_challenger: Mapped[bool] = mapped_column(server_default=text("false"))
    auto_promote: Mapped[bool] = mapped_column(server_default=text("false"))
