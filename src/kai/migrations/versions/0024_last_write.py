"""When each session and API key last wrote: with a read replica, a caller's reads go to the
primary for a while after its own writes, so that it sees them.

`kai_authenticate` returns the session's `last_write_at` too (its last column).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_COLUMNS = """
    member_role text, custom_permissions text[], session_revoked boolean,
    session_expires_at timestamptz, session_organization_id uuid,
    session_created_at timestamptz, user_disabled boolean,
    user_sessions_valid_after timestamptz, mfa_enrolled boolean, mfa_required boolean
"""
_SELECTED = """
    m.role::text, r.permissions::text[], s.revoked_at IS NOT NULL, s.expires_at,
    s.organization_id, s.created_at, u.disabled, u.sessions_valid_after,
    EXISTS (SELECT 1 FROM totp_credentials t
            WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL),
    coalesce(o.mfa_required, false)
"""


def _authenticate(columns: str, selected: str) -> str:
    return f"""
        CREATE FUNCTION kai_authenticate(p_session_id uuid, p_user_id uuid, p_organization_id uuid)
        RETURNS TABLE ({columns})
        LANGUAGE plpgsql VOLATILE
        AS $$
        BEGIN
            PERFORM set_config('kai.organization_id', coalesce(p_organization_id::text, ''), true),
                    set_config('kai.user_id', p_user_id::text, true);
            RETURN QUERY
            SELECT {selected}
            FROM auth_sessions s
            JOIN users u ON u.id = s.user_id
            LEFT JOIN organizations o ON o.id = p_organization_id
            LEFT JOIN memberships m
                   ON m.user_id = s.user_id AND m.organization_id = p_organization_id
            LEFT JOIN roles r ON r.organization_id = m.organization_id AND r.key = m.role
            WHERE s.id = p_session_id AND s.user_id = p_user_id;
        END $$
    """


def upgrade() -> None:
    op.add_column("auth_sessions", sa.Column("last_write_at", sa.DateTime(timezone=True)))
    op.add_column("api_keys", sa.Column("last_write_at", sa.DateTime(timezone=True)))
    op.execute("DROP FUNCTION kai_authenticate(uuid, uuid, uuid)")
    op.execute(
        _authenticate(
            _COLUMNS + ", session_last_write_at timestamptz", _SELECTED + ", s.last_write_at"
        )
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION kai_authenticate(uuid, uuid, uuid)")
    op.execute(_authenticate(_COLUMNS, _SELECTED))
    op.drop_column("api_keys", "last_write_at")
    op.drop_column("auth_sessions", "last_write_at")
