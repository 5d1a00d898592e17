"""Catalog: categories and their property schemas, materials, versions, images; full-text
documents kept by a trigger; tenant walls.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TENANT_TABLES = (
    "catalog_settings",
    "categories",
    "materials",
    "material_versions",
    "material_images",
)
# Letters that carry no combining mark to strip, spelled out as a reader would type them.
_SPELLED = (
    ("ß", "ss"), ("ẞ", "ss"), ("æ", "ae"), ("Æ", "ae"), ("œ", "oe"), ("Œ", "oe"),
    ("ø", "o"), ("Ø", "o"), ("đ", "d"), ("Đ", "d"), ("ł", "l"), ("Ł", "l"), ("þ", "th"),
    ("Þ", "th"), ("ð", "d"), ("Ð", "d"), ("\u0131", "i"),
)  # fmt: skip


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _create_fold_function() -> None:
    """`kai_fold`: lower case without accents, what search documents and queries compare.

    PostgreSQL's `unaccent` is not in the bundled server. Decomposing (NFD) and dropping the
    combining marks does the same for accented letters, in C and fast (a character-by-
    character `translate` table was 36 times slower, on every row written).
    """
    expression = "regexp_replace(normalize(value, NFD), '[\\u0300-\\u036f]', '', 'g')"
    for char, spelled in _SPELLED:
        expression = f"replace({expression}, {_literal(char)}, {_literal(spelled)})"
    op.execute(
        f"""
        CREATE FUNCTION kai_fold(value text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT lower({expression}) $$
        """
    )


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _organization() -> sa.Column[Any]:
    return sa.Column("organization_id", sa.Uuid(), nullable=False)


def _create_tables() -> None:
    op.create_table(
        "catalog_settings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column(
            "search_language",
            postgresql.REGCONFIG(),
            server_default=sa.text("'english'"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_catalog_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_catalog_settings")),
    )
    op.create_table(
        "categories",
        sa.Column("id", sa.Uuid(), nullable=False),
        _organization(),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("path", sa.ARRAY(sa.Uuid()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_categories_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["categories.id"],
            name=op.f("fk_categories_parent_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
    )
    op.create_index(
        "uq_categories_sibling_name",
        "categories",
        [
            "organization_id",
            sa.text("coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            sa.text("lower(name)"),
        ],
        unique=True,
    )
    op.create_index("ix_categories_path", "categories", ["path"], postgresql_using="gin")
    op.create_index(
        "ix_categories_parent", "categories", ["organization_id", "parent_id", "position"]
    )
    op.create_table(
        "materials",
        sa.Column("id", sa.Uuid(), nullable=False),
        _organization(),
        sa.Column("category_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "manufacturer", sa.String(length=200), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("supplier", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("price", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column(
            "tags", sa.ARRAY(sa.String(length=50)), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'draft'"), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("updated_by", sa.String(length=100), nullable=True),
        sa.Column("properties_text", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True),
        sa.Column(
            "name_folded",
            sa.Text(),
            sa.Computed("kai_fold((name)::text)", persisted=True),
            nullable=True,
        ),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'discontinued')", name=op.f("ck_materials_status_known")
        ),
        sa.CheckConstraint(
            "(price IS NULL) = (currency IS NULL)", name=op.f("ck_materials_price_has_currency")
        ),
        sa.CheckConstraint(
            "price IS NULL OR price >= 0", name=op.f("ck_materials_price_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_materials_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_materials_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_materials")),
    )
    op.create_index(
        "uq_materials_org_code",
        "materials",
        ["organization_id", sa.text("lower(code)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_materials_org_created", "materials", ["organization_id", "created_at", "id"]
    )
    op.create_index("ix_materials_category", "materials", ["organization_id", "category_id"])
    op.create_index("ix_materials_search", "materials", ["search_vector"], postgresql_using="gin")
    op.create_index(
        "ix_materials_name_trgm",
        "materials",
        ["name_folded"],
        postgresql_using="gist",
        postgresql_ops={"name_folded": "gist_trgm_ops"},
    )
    op.create_index("ix_materials_tags", "materials", ["tags"], postgresql_using="gin")
    op.create_index(
        "ix_materials_properties",
        "materials",
        ["properties"],
        postgresql_using="gin",
        postgresql_ops={"properties": "jsonb_path_ops"},
    )
    op.create_table(
        "material_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        _organization(),
        sa.Column("material_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'deleted', 'restored', 'imported')",
            name=op.f("ck_material_versions_action_known"),
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_material_versions_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_material_versions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_material_versions")),
    )
    op.create_index(
        "uq_material_versions_material_version",
        "material_versions",
        ["material_id", "version"],
        unique=True,
    )
    op.create_table(
        "material_images",
        sa.Column("id", sa.Uuid(), nullable=False),
        _organization(),
        sa.Column("material_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'processing'"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("original_key", sa.String(length=1024), nullable=False),
        sa.Column("processed_key", sa.String(length=1024), nullable=True),
        sa.Column("thumbnail_key", sa.String(length=1024), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('processing', 'ready', 'failed')",
            name=op.f("ck_material_images_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_material_images_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_material_images_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_material_images")),
    )
    op.create_index(
        "uq_material_images_org_sha256",
        "material_images",
        ["organization_id", "sha256"],
        unique=True,
    )
    op.create_index("ix_material_images_material", "material_images", ["material_id", "position"])
    op.create_index(
        "uq_material_images_primary",
        "material_images",
        ["material_id"],
        unique=True,
        postgresql_where=sa.text("is_primary"),
    )


def _create_search_trigger() -> None:
    # Weights: name and code (A) above the description (B), then categories, tags and
    # properties (C), then maker and seller (D). The code is indexed unstemmed as well, so
    # `TL-600` finds TL-600 whatever the language's stemmer makes of it.
    op.execute(
        """
        CREATE FUNCTION kai_material_search_document() RETURNS trigger
        LANGUAGE plpgsql
        AS $$
        DECLARE
            language regconfig;
            category_words text;
        BEGIN
            SELECT s.search_language INTO language
              FROM catalog_settings s WHERE s.organization_id = NEW.organization_id;
            language := coalesce(language, 'english'::regconfig);
            IF NEW.category_id IS NOT NULL THEN
                SELECT string_agg(c.name, ' ') INTO category_words
                  FROM categories own
                  JOIN categories c ON c.id = own.id OR c.id = ANY (own.path)
                 WHERE own.id = NEW.category_id;
            END IF;
            NEW.search_vector :=
                setweight(to_tsvector(language, kai_fold(NEW.name || ' ' || NEW.code)), 'A')
                || setweight(to_tsvector('simple', kai_fold(NEW.code)), 'A')
                || setweight(to_tsvector(language, kai_fold(NEW.description)), 'B')
                || setweight(to_tsvector(language, kai_fold(
                       coalesce(category_words, '') || ' ' || array_to_string(NEW.tags, ' ')
                       || ' ' || NEW.properties_text)), 'C')
                || setweight(to_tsvector(language, kai_fold(
                       NEW.manufacturer || ' ' || NEW.supplier)), 'D');
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER materials_search_document BEFORE INSERT OR UPDATE ON materials"
        " FOR EACH ROW EXECUTE FUNCTION kai_material_search_document()"
    )


def _create_search_functions() -> None:
    # Row-level security lets an index serve only leakproof operators, and neither full-text
    # `@@` nor trigram `<%` is one: under the policy every search would read the whole table.
    # These functions run as the tables' owner, past the policy, and scope by the
    # transaction's organization themselves: a caller cannot name another organization.
    op.execute(
        """
        CREATE FUNCTION kai_text_matches(query tsquery) RETURNS TABLE (id uuid, rank real)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT m.id, ts_rank(m.search_vector, query) FROM materials m
             WHERE m.organization_id = kai_current_org() AND m.deleted_at IS NULL
               AND m.search_vector @@ query
        $$
        """
    )
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


def _tenant_walls() -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            " USING (organization_id = kai_current_org())"
            " WITH CHECK (organization_id = kai_current_org())"
        )


def upgrade() -> None:
    _create_fold_function()
    _create_tables()
    _create_search_trigger()
    _create_search_functions()
    _tenant_walls()


def downgrade() -> None:
    for table in ("material_images", "material_versions", "materials", "categories"):
        op.drop_table(table)
    op.drop_table("catalog_settings")
    op.execute("DROP FUNCTION IF EXISTS kai_nearest_names(text, integer)")
    op.execute("DROP FUNCTION IF EXISTS kai_text_matches(tsquery)")
    op.execute("DROP FUNCTION IF EXISTS kai_material_search_document()")
    op.execute("DROP FUNCTION IF EXISTS kai_fold(text)")
