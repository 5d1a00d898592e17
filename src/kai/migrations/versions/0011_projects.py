"""Projects: client jobs grouping recognitions and chosen materials, shared with teams.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TENANT_TABLES = ("projects", "project_materials")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _now(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("client", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "description", sa.String(length=2000), server_default=sa.text("''"), nullable=False
        ),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'active'"), nullable=False
        ),
        sa.Column(
            "shared_with",
            sa.ARRAY(sa.Uuid()),
            server_default=sa.text("'{}'::uuid[]"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint(
            "status IN ('active', 'archived')", name=op.f("ck_projects_status_known")
        ),
        _organization("projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index("ix_projects_listed", "projects", ["organization_id", "created_at", "id"])
    op.create_table(
        "project_materials",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("material_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=3), nullable=True),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("note", sa.String(length=1000), server_default=sa.text("''"), nullable=False),
        sa.Column("recognition_id", sa.Uuid(), nullable=True),
        sa.Column("added_by", sa.String(length=100), nullable=True),
        _now("added_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_materials_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_project_materials_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recognition_id"],
            ["recognitions.id"],
            name=op.f("fk_project_materials_recognition_id_recognitions"),
            ondelete="SET NULL",
        ),
        _organization("project_materials"),
        sa.PrimaryKeyConstraint("project_id", "material_id", name=op.f("pk_project_materials")),
    )
    op.create_index(
        "ix_project_materials_material", "project_materials", ["organization_id", "material_id"]
    )
    for table in ("recognitions", "recognition_batches"):
        op.add_column(table, sa.Column("project_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_project_id_projects"),
            table,
            "projects",
            ["project_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index("ix_recognitions_project", "recognitions", ["project_id", "created_at", "id"])
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            " USING (organization_id = kai_current_org())"
            " WITH CHECK (organization_id = kai_current_org())"
        )


def downgrade() -> None:
    op.drop_index("ix_recognitions_project", table_name="recognitions")
    for table in ("recognition_batches", "recognitions"):
        op.drop_constraint(op.f(f"fk_{table}_project_id_projects"), table, type_="foreignkey")
        op.drop_column(table, "project_id")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
