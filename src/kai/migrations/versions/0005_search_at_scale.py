"""Search at scale: each organization's distinct material names, kept by triggers, for
suggestions.

Thousands of materials share a name (sizes, finishes), and the trigram index over every
material's name could not prune: the nearest names to a few typed letters were found by
visiting most of it (300 ms at 100,000 materials). Suggestions now rank each distinct name
once, in a GiST index that holds the organization too (btree_gist) and a longer trigram
signature, and then take one live material of each name.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# What pg_trgm word similarity a name needs to be suggested (search.repository says why).
SUGGEST_SIMILARITY = 0.35


def _names_table() -> None:
    op.create_table(
        "material_names",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name_folded", sa.Text(), nullable=False),
        sa.Column("materials", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_material_names_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "name_folded", name=op.f("pk_material_names")),
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_index(
        "ix_material_names_trgm",
        "material_names",
        ["organization_id", "name_folded"],
        postgresql_using="gist",
        postgresql_ops={"name_folded": "gist_trgm_ops(siglen=256)"},
    )
    # One live material of a suggested name, found without reading the others.
    op.create_index(
        "ix_materials_org_name",
        "materials",
        ["organization_id", "name_folded"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.execute("ALTER TABLE material_names ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON material_names"
        " USING (organization_id = kai_current_org())"
        " WITH CHECK (organization_id = kai_current_org())"
    )


# Each event's live names, +1 for a row that came and -1 for one that went. PostgreSQL names a
# transition table only where the statement has one, hence a function per event.
_CHANGES = {
    "insert": "SELECT organization_id, name_folded, 1 AS delta FROM new_rows"
    " WHERE deleted_at IS NULL",
    "update": "SELECT organization_id, name_folded, 1 AS delta FROM new_rows"
    " WHERE deleted_at IS NULL"
    " UNION ALL SELECT organization_id, name_folded, -1 FROM old_rows WHERE deleted_at IS NULL",
    "delete": "SELECT organization_id, name_folded, -1 AS delta FROM old_rows"
    " WHERE deleted_at IS NULL",
}
_TRANSITIONS = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}


def _names_triggers() -> None:
    # Statement-level, over the transition tables: an import of thousands of rows adjusts
    # each name once, in one order (no deadlock between two writers). The functions run as
    # the owner: the counts are the catalog's, whoever writes.
    for event, changes in _CHANGES.items():
        op.execute(
            f"""
            CREATE FUNCTION kai_material_names_on_{event}() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
            AS $$
            BEGIN
                INSERT INTO material_names AS n (organization_id, name_folded, materials)
                SELECT organization_id, name_folded, sum(delta)::integer FROM ({changes}) c
                 GROUP BY organization_id, name_folded HAVING sum(delta) <> 0
                 ORDER BY organization_id, name_folded
                ON CONFLICT (organization_id, name_folded)
                DO UPDATE SET materials = n.materials + excluded.materials;
                DELETE FROM material_names n
                 WHERE n.materials <= 0 AND (n.organization_id, n.name_folded) IN (
                       SELECT organization_id, name_folded FROM ({changes}) c);
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER material_names_{event} AFTER {event.upper()} ON materials"
            f" REFERENCING {_TRANSITIONS[event]} FOR EACH STATEMENT"
            f" EXECUTE FUNCTION kai_material_names_on_{event}()"
        )


def _nearest_names_function() -> None:
    op.execute("DROP FUNCTION kai_nearest_names(text, integer)")
    op.execute(
        f"""
        CREATE FUNCTION kai_nearest_names(typed text, how_many integer)
        RETURNS TABLE (name_folded text, score real)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp
        SET pg_trgm.word_similarity_threshold = {SUGGEST_SIMILARITY}
        AS $$
            SELECT n.name_folded, word_similarity(typed, n.name_folded) FROM material_names n
             WHERE n.organization_id = kai_current_org() AND typed <% n.name_folded
             ORDER BY n.name_folded <->> typed
             LIMIT how_many
        $$
        """
    )


def _codes_function() -> None:
    # lower() is not leakproof: under row-level security the code index could not serve
    # `lower(code) LIKE 'x%'` and every suggestion read all the organization's codes. A
    # range over the index's own expression, past the policy, scoped like the others.
    op.execute(
        """
        CREATE FUNCTION kai_codes_starting(typed text, how_many integer)
        RETURNS TABLE (id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT m.id FROM materials m
             WHERE m.organization_id = kai_current_org() AND m.deleted_at IS NULL
               AND lower(m.code) >= lower(typed) AND lower(m.code) < lower(typed) || chr(1114111)
             ORDER BY lower(m.code)
             LIMIT how_many
        $$
        """
    )


def upgrade() -> None:
    _names_table()
    _names_triggers()
    _nearest_names_function()
    _codes_function()
    op.execute(
        "INSERT INTO material_names (organization_id, name_folded, materials)"
        " SELECT organization_id, name_folded, count(*) FROM materials"
        " WHERE deleted_at IS NULL GROUP BY organization_id, name_folded"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION kai_codes_starting(text, integer)")
    for event in _CHANGES:
        op.execute(f"DROP TRIGGER material_names_{event} ON materials")
        op.execute(f"DROP FUNCTION kai_material_names_on_{event}()")
    op.execute("DROP FUNCTION kai_nearest_names(text, integer)")
    op.execute(
        """
        CREATE FUNCTION kai_nearest_names(typed text, how_many integer)
        RETURNS TABLE (id uuid, score real)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT m.id, word_similarity(typed, m.name_folded) FROM materials m
             WHERE m.organization_id = kai_current_org() AND m.deleted_at IS NULL
               AND typed <% m.name_folded
             ORDER BY m.name_folded <->> typed
             LIMIT how_many
        $$
        """
    )
    op.drop_index("ix_materials_org_name", table_name="materials")
    op.drop_table("material_names")
    op.execute("DROP EXTENSION IF EXISTS btree_gist")
