"""A/B tests between an organization's active model version and a challenger, what each
recognition during one showed, and the events of an organization's models.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

TENANT_TABLES = ("model_experiments", "experiment_observations", "model_events")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _now(name: str, *, nullable: bool = False) -> sa.Column[object]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True))
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "model_experiments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("champion_version_id", sa.Uuid(), nullable=False),
        sa.Column("challenger_version_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("challenger_share", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column(
            "status", sa.String(length=12), server_default=sa.text("'running'"), nullable=False
        ),
        sa.Column("decision", sa.String(length=12)),
        sa.Column("reason", sa.Text()),
        sa.Column("auto_promote", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("min_feedback", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("max_recognitions", sa.Integer()),
        _now("ends_at", nullable=True),
        sa.Column("loss_threshold", sa.Float(), server_default=sa.text("0.005"), nullable=False),
        sa.Column(
            "results",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=100)),
        _now("created_at"),
        _now("concluded_at", nullable=True),
        sa.CheckConstraint(
            "mode IN ('split', 'shadow')", name=op.f("ck_model_experiments_mode_known")
        ),
        sa.CheckConstraint(
            "status IN ('running', 'concluded')", name=op.f("ck_model_experiments_status_known")
        ),
        sa.CheckConstraint(
            "decision IS NULL OR decision IN ('promoted', 'kept')",
            name=op.f("ck_model_experiments_decision_known"),
        ),
        sa.CheckConstraint(
            "challenger_share > 0 AND challenger_share < 1",
            name=op.f("ck_model_experiments_challenger_share_between"),
        ),
        _organization("model_experiments"),
        sa.ForeignKeyConstraint(
            ["champion_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_experiments_champion_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["challenger_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_experiments_challenger_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_experiments")),
    )
    op.create_index(
        "uq_model_experiments_running",
        "model_experiments",
        ["organization_id"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "experiment_observations",
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("recognition_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("variant", sa.String(length=12), nullable=False),
        sa.Column("label", sa.String(length=300)),
        sa.Column("category_id", sa.Uuid()),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("unknown", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("shadow_label", sa.String(length=300)),
        sa.Column("shadow_category_id", sa.Uuid()),
        sa.Column("shadow_unknown", sa.Boolean()),
        sa.Column("shadow_confidence", sa.Float()),
        sa.Column("correct", sa.Boolean()),
        sa.Column("shadow_correct", sa.Boolean()),
        _now("created_at"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["model_experiments.id"],
            name=op.f("fk_experiment_observations_experiment_id_model_experiments"),
            ondelete="CASCADE",
        ),
        _organization("experiment_observations"),
        sa.PrimaryKeyConstraint(
            "experiment_id", "recognition_id", name=op.f("pk_experiment_observations")
        ),
    )
    op.create_table(
        "model_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        _now("created_at"),
        _organization("model_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_events")),
    )
    op.create_index("ix_model_events_listed", "model_events", ["organization_id", "id"])
    # The periodic judge finds the organizations with a test running across tenants: as the
    # owner, and only their ids.
    op.execute(
        """
        CREATE FUNCTION kai_organizations_with_running_experiments()
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT DISTINCT organization_id FROM model_experiments WHERE status = 'running'
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
    op.execute("DROP FUNCTION kai_organizations_with_running_experiments()")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
