"""The review queue, and each organization's rules for training and testing challengers.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

TENANT_TABLES = ("review_items", "model_settings")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("recognition_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("image_key", sa.String(length=1024), nullable=False),
        sa.Column("features_of", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("margin", sa.Float()),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("resolved_by", sa.String(length=100)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "reason IN ('unknown', 'low_margin', 'disagreement')",
            name=op.f("ck_review_items_reason_known"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'labelled', 'skipped')",
            name=op.f("ck_review_items_status_known"),
        ),
        _organization("review_items"),
        sa.PrimaryKeyConstraint("recognition_id", name=op.f("pk_review_items")),
    )
    op.create_index(
        "ix_review_items_pending", "review_items", ["organization_id", "status", "created_at"]
    )
    op.create_table(
        "model_settings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("retrain_after_labels", sa.Integer()),
        sa.Column(
            "retrain_on_drift", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("test_challenger", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("auto_promote", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _organization("model_settings"),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_model_settings")),
    )
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            " USING (organization_id = kai_current_org())"
            " WITH CHECK (organization_id = kai_current_org())"
        )


def downgrade() -> None:
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
