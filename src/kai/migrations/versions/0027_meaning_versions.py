"""Where an organization's text embeddings stand: a number that moves with every change to them.

A search process keeps a query's answers with the catalog's columns until the catalog changes
(`kai.search.facet_index`), but answers by meaning also depend on the materials' embeddings,
which the embedding job writes after the materials themselves. With this number read before
the nearest materials are asked for, answers by meaning are kept under it too: an embedding
written later moves it, and they are worked out again.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# One statement moves each organization it touched once (a job writes hundreds of rows a
# statement). As the owner: the number is the catalog's, whoever writes. A removal only moves
# an existing number: an organization being deleted takes its embeddings with it.
_MOVED = """
CREATE FUNCTION kai_meanings_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE material_meaning_versions
           SET version = nextval('material_meaning_version_seq')
         WHERE organization_id IN (SELECT DISTINCT organization_id FROM changed);
        RETURN NULL;
    END IF;
    INSERT INTO material_meaning_versions AS v (organization_id, version)
    SELECT touched.organization_id, nextval('material_meaning_version_seq')
      FROM (SELECT DISTINCT organization_id FROM changed) AS touched
    ON CONFLICT (organization_id)
    DO UPDATE SET version = nextval('material_meaning_version_seq');
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE material_meaning_version_seq")
    op.create_table(
        "material_meaning_versions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_material_meaning_versions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_material_meaning_versions")),
    )
    op.execute("ALTER TABLE material_meaning_versions ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON material_meaning_versions"
        " USING (organization_id = kai_current_org())"
        " WITH CHECK (organization_id = kai_current_org())"
    )
    op.execute(_MOVED)
    for event, table in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        op.execute(
            f"CREATE TRIGGER material_meanings_{event.lower()} AFTER {event}"
            f" ON material_text_embeddings REFERENCING {table} TABLE AS changed"
            " FOR EACH STATEMENT EXECUTE FUNCTION kai_meanings_changed()"
        )
    op.execute(
        "INSERT INTO material_meaning_versions (organization_id, version)"
        " SELECT organization_id, nextval('material_meaning_version_seq')"
        " FROM (SELECT DISTINCT organization_id FROM material_text_embeddings) AS held"
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER material_meanings_{event} ON material_text_embeddings")
    op.execute("DROP FUNCTION kai_meanings_changed()")
    op.drop_table("material_meaning_versions")
    op.execute("DROP SEQUENCE material_meaning_version_seq")
