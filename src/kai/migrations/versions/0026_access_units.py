"""`kai_authenticate` returns the person's unit system too (its last column): every search and
material read shows values in it, and reading it took a statement of its own per request.

The access check's answer is kept a moment per process and emptied when `users` changes (see
`kai.identity.authentication.access_cache`), so a change of units shows at once.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_before = importlib.import_module("kai.migrations.versions.0024_last_write")
_COLUMNS = _before._COLUMNS + ", session_last_write_at timestamptz"
_SELECTED = _before._SELECTED + ", s.last_write_at"


def upgrade() -> None:
    op.execute("DROP FUNCTION kai_authenticate(uuid, uuid, uuid)")
    op.execute(_before._authenticate(_COLUMNS + ", user_units text", _SELECTED + ", u.units::text"))


def downgrade() -> None:
    op.execute("DROP FUNCTION kai_authenticate(uuid, uuid, uuid)")
    op.execute(_before._authenticate(_COLUMNS, _SELECTED))
