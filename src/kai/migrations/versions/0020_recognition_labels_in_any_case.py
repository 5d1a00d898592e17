"""Recognitions are filtered by label in any case: `?label=tiles` finds those labelled Tiles.

The filter compares labels folded as search folds words (`kai_fold`: lower case, accents
off), so that `crème marfil` finds `Crème Marfil` too (`lower()` alone changes only ASCII
letters under the embedded server's C locale). The folded label is a stored column, indexed:
under row-level security an index on an expression of non-leakproof functions (`lower`,
`kai_fold`) cannot serve a query's condition, while one on a column can.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "recognitions",
        sa.Column(
            "label_folded",
            sa.Text(),
            sa.Computed("kai_fold((label)::text)", persisted=True),
            nullable=True,
        ),
    )
    op.drop_index("ix_recognitions_label", table_name="recognitions")
    op.create_index("ix_recognitions_label", "recognitions", ["organization_id", "label_folded"])


def downgrade() -> None:
    op.drop_index("ix_recognitions_label", table_name="recognitions")
    op.drop_column("recognitions", "label_folded")
    op.create_index("ix_recognitions_label", "recognitions", ["organization_id", "label"])
