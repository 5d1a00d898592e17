"""API shapes of jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kai.kit.jobs.models import JobStatus


class JobProgress(BaseModel):
    done: int = Field(description="Units of work finished.")
    total: int | None = Field(description="Units of work in all, when known.")


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID | None
    kind: str = Field(description="What the job does, as a dotted name: `catalog.import_csv`.")
    status: JobStatus
    progress: JobProgress
    result: dict[str, Any] | None = Field(
        description="Summary of what a finished job did; of a failed one, what it found when "
        "it says (a refused import: its report)."
    )
    error: str | None = Field(description="Why the last attempt failed.")
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_job(cls, job: Any) -> JobRead:
        return cls.model_validate(
            {
                **{name: getattr(job, name) for name in cls.model_fields if name != "progress"},
                "progress": {"done": job.progress_done, "total": job.progress_total},
            }
        )
