"""Take `webhooks:manage` and `analytics:read` out of stored roles and API keys.

Roles offered them although no route asked for either; they are gone from the permissions
until the routes that need them come. Stored ones are removed too, so that a role or key
made before does not gain those powers, unasked, the day they start to mean something.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

NOT_YET_IN_USE = ("webhooks:manage", "analytics:read")


def upgrade() -> None:
    for table in ("roles", "api_keys"):
        for permission in NOT_YET_IN_USE:
            op.execute(
                f"UPDATE {table} SET permissions = array_remove(permissions, '{permission}')"
                f" WHERE '{permission}' = ANY(permissions)"
            )


def downgrade() -> None:
    # Which roles and keys held them is not kept; they meant nothing while held.
    pass
