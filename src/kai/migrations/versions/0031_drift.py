"""Drift: each version's reference, what versions answered live, and the windows compared.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

TENANT_TABLES = ("served_predictions", "drift_windows")


def _references(table: str) -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f(f"fk_{table}_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f(f"fk_{table}_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("reference_key", sa.String(length=1024)))
    op.create_table(
        "served_predictions",
        sa.Column("recognition_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("image_key", sa.String(length=1024), nullable=False),
        sa.Column("label", sa.String(length=300)),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("unknown", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        *_references("served_predictions"),
        sa.PrimaryKeyConstraint("recognition_id", name=op.f("pk_served_predictions")),
    )
    op.create_index(
        "ix_served_predictions_window",
        "served_predictions",
        ["organization_id", "model_version_id", "created_at"],
    )
    op.create_table(
        "drift_windows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recognitions", sa.Integer(), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_references("drift_windows"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_windows")),
    )
    op.create_index("ix_drift_windows_listed", "drift_windows", ["organization_id", "id"])
    # The periodic drift check finds the organizations with recent recognitions across
    # tenants: as the owner, and only their ids.
    op.execute(
        """
        CREATE FUNCTION kai_organizations_serving_since(since timestamptz)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT DISTINCT organization_id FROM served_predictions WHERE created_at > since
        $$
        """
    )
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            " USING (organization_id = kai_current_org())"
            " WITH CHECK (organization_id = kai_current_org())"
        )


def downgrade() -> None:
    op.execute("DROP FUNCTION kai_organizations_serving_since(timestamptz)")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
    op.drop_column("model_versions", "reference_key")
