"""An index on procrastinate's job locks, for per-organization heavy-job slots.

Every heavy job of an organization carries one of its lock slots. Procrastinate's fetch
passes over a job whose lock has a running or earlier waiting job, and queueing one counts
the organization's jobs per slot; both look jobs up by lock among those not finished, which
procrastinate's own indexes (by id, or by lock among running jobs only) do not serve.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_procrastinate_jobs_active_lock ON procrastinate_jobs (lock, id)"
        " WHERE status IN ('todo', 'doing') AND lock IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_procrastinate_jobs_active_lock")
