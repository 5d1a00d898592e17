"""Semantic search: a sentence embedding of each material's text in pgvector, and the nearest
materials to a query's embedding.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DIMENSIONS = 384


def upgrade() -> None:
    op.create_index(
        "ix_jobs_waiting",
        "jobs",
        ["kind", "organization_id"],
        postgresql_where=sa.text("status IN ('queued', 'retrying')"),
    )
    op.create_table(
        "material_text_embeddings",
        sa.Column("material_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("document_hash", sa.String(length=32), nullable=False),
        sa.Column("embedding", HALFVEC(DIMENSIONS), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_material_text_embeddings_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_material_text_embeddings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("material_id", name=op.f("pk_material_text_embeddings")),
    )
    op.create_index(
        "ix_material_text_embeddings_hnsw",
        "material_text_embeddings",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "halfvec_cosine_ops"},
    )
    op.execute("ALTER TABLE material_text_embeddings ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON material_text_embeddings"
        " USING (organization_id = kai_current_org())"
        " WITH CHECK (organization_id = kai_current_org())"
    )
    # As with full-text matching (0003): the distance operator is not leakproof, so under the
    # policy the HNSW index would never be used. This function runs past the policy and scopes
    # by the transaction's organization itself. One index serves every organization, so the
    # organization is a filter on the index scan: iterative scans keep reading the graph until
    # enough of the organization's rows are found (pgvector >= 0.8), instead of returning the
    # few that happened to be among the global nearest.
    op.execute(
        f"""
        CREATE FUNCTION kai_semantic_matches(
            query halfvec({DIMENSIONS}), how_many integer, categories uuid[] DEFAULT NULL
        )
        RETURNS TABLE (id uuid, similarity double precision)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp
        SET hnsw.iterative_scan = 'relaxed_order'
        SET hnsw.ef_search = 100
        AS $$
            SELECT nearest.material_id, 1 - nearest.distance FROM (
                SELECT e.material_id, e.embedding <=> query AS distance
                  FROM material_text_embeddings e
                  JOIN materials m ON m.id = e.material_id
                 WHERE e.organization_id = kai_current_org() AND m.deleted_at IS NULL
                   AND (categories IS NULL OR m.category_id = ANY (categories))
                 ORDER BY e.embedding <=> query
                 LIMIT how_many
            ) nearest
            ORDER BY nearest.distance
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        f"DROP FUNCTION IF EXISTS kai_semantic_matches(halfvec({DIMENSIONS}), integer, uuid[])"
    )
    op.drop_table("material_text_embeddings")
    op.drop_index("ix_jobs_waiting", table_name="jobs")
