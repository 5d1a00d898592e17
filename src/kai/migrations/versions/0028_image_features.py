"""The feature store: each stored photo's embedding per backbone fingerprint and preparation.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_features",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("features_of", sa.String(length=200), nullable=False),
        sa.Column("image_key", sa.String(length=1024), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_image_features_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "features_of", "image_key", name=op.f("pk_image_features")
        ),
    )
    op.execute("ALTER TABLE image_features ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON image_features"
        " USING (organization_id = kai_current_org())"
        " WITH CHECK (organization_id = kai_current_org())"
    )


def downgrade() -> None:
    op.drop_table("image_features")
