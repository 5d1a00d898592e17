"""The `jobs` table: what users see of background work. The queue itself is procrastinate's."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from kai.kit.db import Base, TimestampedMixin, new_id


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class Job(TimestampedMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'retrying', 'cancelling', 'succeeded', 'failed',"
            " 'cancelled')",
            name="status_known",
        ),
        CheckConstraint(
            "progress_total IS NULL OR progress_done <= progress_total", name="progress_bounded"
        ),
        Index("ix_jobs_organization_created", "organization_id", "created_at", "id"),
        Index("ix_jobs_created", "created_at", "id"),
        # Jobs not started yet, by kind: "is one already waiting?" before queueing another.
        Index(
            "ix_jobs_waiting",
            "kind",
            "organization_id",
            postgresql_where=text("status IN ('queued', 'retrying')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Nullable: platform jobs (maintenance) belong to no organization.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(index=False)
    kind: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'queued'"))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    progress_done: Mapped[int] = mapped_column(server_default=text("0"))
    progress_total: Mapped[int | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    max_attempts: Mapped[int]
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
