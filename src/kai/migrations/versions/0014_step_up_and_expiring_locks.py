"""Password step-up on sessions; login locks that expire and grow.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "auth_sessions",
        sa.Column("password_verified_at", sa.DateTime(timezone=True), nullable=True),
    )
    # Sessions opened before stay without a proof: each steps up once for account changes.
    op.add_column(
        "login_throttles", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "login_throttles",
        sa.Column("locks", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    # A lock of before (until a reset) becomes a first lock of 15 minutes from now.
    op.execute(
        "UPDATE login_throttles SET locked_until = now() + interval '15 minutes', locks = 1"
        " WHERE locked_at IS NOT NULL"
    )
    op.drop_column("login_throttles", "locked_at")


def downgrade() -> None:
    op.add_column(
        "login_throttles", sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE login_throttles SET locked_at = last_failure_at"
        " WHERE locked_until IS NOT NULL AND locked_until > now()"
    )
    op.drop_column("login_throttles", "locks")
    op.drop_column("login_throttles", "locked_until")
    op.drop_column("auth_sessions", "password_verified_at")
