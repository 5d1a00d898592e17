"""Which organizations have catalog images the image model has not embedded (yet, or since it
changed): a housekeeping lookup across every organization.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs as the tables' owner, past the policy; it tells only which organizations need a
    # refresh, which the caller then queues acting for each.
    op.execute(
        """
        CREATE FUNCTION kai_organizations_with_stale_images(fingerprint text)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT DISTINCT images.organization_id
            FROM material_images AS images
            JOIN materials ON materials.id = images.material_id
            LEFT JOIN image_embeddings AS embedded ON embedded.image_id = images.id
            WHERE images.status = 'ready'
              AND materials.deleted_at IS NULL
              AND (embedded.image_id IS NULL OR embedded.backbone <> fingerprint)
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION kai_organizations_with_stale_images(text)")
