"""What a search process needs to keep the catalog's facet columns in memory and follow its
changes (see kai.search.facet_index):

- `materials.changed_xid`: the transaction that last wrote the row, set on every insert and
  update, with an index by organization, so that a process reads only the rows written by
  transactions it may not have seen (those at or past the oldest one running when it last
  read);
- a material removed for good (a purge, not a deletion, which is an update) moves the
  organization's category-tree version, which tells each process to read its columns again;
- `kai_text_ranked`: every material a full-text query matches, packed (its id's sixteen bytes
  and its rank), for the process to filter, count and order: one pass over the matches, reading
  the columns at the front of each row (whether a match is deleted, the columns know).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant first, so that adding the column rewrites no row of a large catalog (rows
    # written before count as older than any transaction since); then what new rows take.
    op.execute("ALTER TABLE materials ADD COLUMN changed_xid xid8 NOT NULL DEFAULT '1'")
    op.execute("ALTER TABLE materials ALTER COLUMN changed_xid SET DEFAULT pg_current_xact_id()")
    op.execute("CREATE INDEX ix_materials_changes ON materials (organization_id, changed_xid)")
    op.execute(
        """
        CREATE FUNCTION kai_material_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.changed_xid := pg_current_xact_id();
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER materials_changed BEFORE UPDATE ON materials"
        " FOR EACH ROW EXECUTE FUNCTION kai_material_changed()"
    )
    # As the owner, like the tree's own trigger: the version is the catalog's, whoever purges.
    op.execute(
        """
        CREATE FUNCTION kai_materials_removed() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
        BEGIN
            UPDATE category_tree_versions
               SET version = nextval('category_tree_version_seq')
             WHERE organization_id IN (SELECT DISTINCT organization_id FROM removed);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER materials_removed AFTER DELETE ON materials"
        " REFERENCING OLD TABLE AS removed FOR EACH STATEMENT"
        " EXECUTE FUNCTION kai_materials_removed()"
    )
    # Scoped like kai_text_matches: row-level security would keep the full-text index from
    # serving `@@`. The rank only when asked for: it costs more than the match itself.
    op.execute(
        """
        CREATE FUNCTION kai_text_ranked(query tsquery, ranked boolean) RETURNS bytea
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT coalesce(string_agg(
                       uuid_send(m.id)
                       || float4send(CASE WHEN ranked THEN ts_rank(m.search_vector, query)
                                          ELSE 0 END),
                       ''), '')
              FROM materials m
             WHERE m.organization_id = kai_current_org() AND m.search_vector @@ query
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION kai_text_ranked(tsquery, boolean)")
    op.execute("DROP TRIGGER materials_removed ON materials")
    op.execute("DROP FUNCTION kai_materials_removed()")
    op.execute("DROP TRIGGER materials_changed ON materials")
    op.execute("DROP FUNCTION kai_material_changed()")
    op.execute("DROP INDEX ix_materials_changes")
    op.execute("ALTER TABLE materials DROP COLUMN changed_xid")
