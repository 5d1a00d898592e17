"""Semantic search within categories: a bounded walk of the index.

The HNSW index serves one organization's whole catalog well. Within a category subtree whose
materials lie far from the query, its filtered (iterative) scan walks most of the graph
before it has enough of them: up to 20,000 tuples, each looked up in materials, 250-600 ms at
100,000 materials. Bounded at `MAX_SCAN_TUPLES`, such a search returns what it found by then;
those materials are the ones far from the query, which the minimum similarity drops anyway.
(Exact distances over the subtree were tried and were slower: 150-900 ms for 16,000 rows.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DIMENSIONS = 384
MAX_SCAN_TUPLES = 4000


def _function(extra_settings: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION kai_semantic_matches(
            query halfvec({DIMENSIONS}), how_many integer, categories uuid[] DEFAULT NULL
        )
        RETURNS TABLE (id uuid, similarity double precision)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp
        SET hnsw.iterative_scan = 'relaxed_order'
        SET hnsw.ef_search = 100
        {extra_settings}
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


def upgrade() -> None:
    op.execute(_function(f"SET hnsw.max_scan_tuples = {MAX_SCAN_TUPLES}"))


def downgrade() -> None:
    op.execute(_function(""))
