"""A version made by restoring an earlier one names it: `restored_from`, the number of the
version whose values it brought back (null for every other change).

History is never rewritten: a restore is one more version, and without this column it would
read as an ordinary edit that happens to undo others.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("material_versions", sa.Column("restored_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("material_versions", "restored_from")
