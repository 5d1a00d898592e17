"""Each model version's MLflow run and registered model version, once recorded.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("mlflow_run_id", sa.String(length=64)))
    op.add_column("model_versions", sa.Column("registered_version", sa.Integer()))


def downgrade() -> None:
    op.drop_column("model_versions", "registered_version")
    op.drop_column("model_versions", "mlflow_run_id")
