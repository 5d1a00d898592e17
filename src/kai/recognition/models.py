"""Tables of recognition: each photo recognized, what KAI answered, what people said of it,
and each organization's recognition settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    Float,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from kai.kit.db import Base, new_id

TENANT_TABLES = (
    "projects",
    "project_materials",
    "recognitions",
    "recognition_feedback",
    "recognition_settings",
    "recognition_batches",
    "recognition_batch_items",
)


class Project(Base):
    """A client job: the photos recognized for it and the materials chosen. Shared with some
    teams (their members, owners and admins see it) or with none (everyone who may read
    recognitions sees it)."""

    __tablename__ = "projects"
    __table_args__ = (
        Index("ix_projects_listed", "organization_id", "created_at", "id"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    client: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    description: Mapped[str] = mapped_column(String(2000), server_default=text("''"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'active'"))
    # Team ids; empty: not restricted to any team. (A deleted team's id stays, harmlessly.)
    shared_with: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid()), server_default=text("'{}'::uuid[]")
    )
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ProjectMaterial(Base):
    """A catalog material chosen for a project, how much of it, and from which recognition."""

    __tablename__ = "project_materials"
    __table_args__ = (Index("ix_project_materials_material", "organization_id", "material_id"),)

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    material_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    unit: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(1000), server_default=text("''"))
    recognition_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recognitions.id", ondelete="SET NULL")
    )
    added_by: Mapped[str | None] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class Recognition(Base):
    __tablename__ = "recognitions"
    __table_args__ = (
        Index("ix_recognitions_listed", "organization_id", "created_at", "id"),
        Index("ix_recognitions_label", "organization_id", "label_folded"),
        Index("ix_recognitions_project", "project_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    model_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    # The client job it was taken for, if any; its sharing decides who sees the recognition.
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL")
    )
    # The photo as uploaded (organization uploads), and what it is.
    image_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(50))
    width: Mapped[int]
    height: Mapped[int]
    file_name: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    # The best prediction (None when unknown) and all of them:
    # [{"label", "category_id", "confidence"}], best first.
    label: Mapped[str | None] = mapped_column(String(200))
    # The label as the label filter compares it, folded as search folds words (`?label=tiles`
    # finds Tiles, `creme` Crème): a column, so that its index serves past row-level security.
    label_folded: Mapped[str | None] = mapped_column(
        Text, Computed("kai_fold((label)::text)", persisted=True)
    )
    category_id: Mapped[uuid.UUID | None]
    confidence: Mapped[float | None] = mapped_column(Float)
    unknown: Mapped[bool]
    # Why unknown: "low_confidence" or "unlike_training"; None when known.
    unknown_reason: Mapped[str | None] = mapped_column(String(30))
    predictions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # [{"material_id", "name", "score", "image_id"}], most similar first.
    similar: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # Milliseconds per step of the recognition.
    timings: Mapped[dict[str, float]] = mapped_column(JSONB)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class RecognitionFeedback(Base):
    """What a person said of a recognition: right, or wrong and what it really is. The latest
    word per recognition counts; it becomes labeled data for the next training."""

    __tablename__ = "recognition_feedback"
    __table_args__ = (
        CheckConstraint(
            "correct OR category_id IS NOT NULL OR material_id IS NOT NULL",
            name="wrong_says_what_is_right",
        ),
    )

    recognition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recognitions.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    correct: Mapped[bool]
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL")
    )
    material_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("materials.id", ondelete="SET NULL")
    )
    comment: Mapped[str] = mapped_column(String(1000), server_default=text("''"))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class RecognitionSettings(Base):
    """An organization's thresholds; absent means the defaults."""

    __tablename__ = "recognition_settings"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # Under this confidence the answer is "unknown".
    confidence_threshold: Mapped[float] = mapped_column(Float, server_default=text("0.5"))
    # Catalog images at least this similar (cosine) are reported as near-duplicates.
    near_duplicate_threshold: Mapped[float] = mapped_column(Float, server_default=text("0.95"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class RecognitionBatch(Base):
    """Many photos recognized by a job; each photo's result is an item."""

    __tablename__ = "recognition_batches"
    __table_args__ = (
        Index("ix_recognition_batches_listed", "organization_id", "created_at", "id"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name="status_known"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(20), server_default=text("'queued'"))
    total: Mapped[int]
    done: Mapped[int] = mapped_column(server_default=text("0"))
    failed: Mapped[int] = mapped_column(server_default=text("0"))
    # top_k, similar_k, category_id, filters: as for one recognition.
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Its recognitions are filed in this project (and the batch is seen as the project is).
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    finished_at: Mapped[datetime | None]


class RecognitionBatchItem(Base):
    __tablename__ = "recognition_batch_items"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'recognized', 'failed')", name="status_known"),
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recognition_batches.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    file_name: Mapped[str] = mapped_column(String(255))
    # The photo as uploaded, until it is recognized (then it is the recognition's).
    image_key: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    recognition_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recognitions.id", ondelete="SET NULL")
    )
    error: Mapped[str | None] = mapped_column(String(2000))
