"""Image models that fine-tuning made, beside those organizations uploaded.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "image_models",
        sa.Column(
            "origin", sa.String(length=20), server_default=sa.text("'uploaded'"), nullable=False
        ),
    )
    op.add_column("image_models", sa.Column("details", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("image_models", "details")
    op.drop_column("image_models", "origin")
