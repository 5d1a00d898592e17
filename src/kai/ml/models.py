"""Tables of model training: each organization's model versions and which one is active."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from kai.kit.db import Base, new_id

TENANT_TABLES = ("model_versions", "labeled_photos", "image_models")


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
    """An ONNX image model an organization uploaded, to train its recognizer on as a backbone
    (`custom:<name>`): the file in the organization's storage, and how to feed it."""

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
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
