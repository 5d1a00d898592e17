"""Which email job made each emailed link.

A job sends at most one link of a kind to an address every few minutes and keeps the last
few valid; to tell its own earlier attempts (whose message may never have left) from the
links other jobs sent, each link records the job that made it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_tokens", sa.Column("job_id", sa.Uuid(), nullable=True))
    # The job looks for recent links of one person and kind, and keeps the newest few.
    op.create_index(
        "ix_user_tokens_user_id_purpose_created_at",
        "user_tokens",
        ["user_id", "purpose", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_user_tokens_user_id_purpose_created_at", table_name="user_tokens")
    op.drop_column("user_tokens", "job_id")
