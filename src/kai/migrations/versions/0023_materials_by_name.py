"""An index for browsing a catalog by name: the catalog's first page, sorted by name, read 49
rows of it instead of sorting every live material of the organization (98 ms at 100,000
materials, most of a first paint).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_materials_org_lower_name ON materials "
        "(organization_id, lower(name), id) WHERE deleted_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_materials_org_lower_name", table_name="materials")
