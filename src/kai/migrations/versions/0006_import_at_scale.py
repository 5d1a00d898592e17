"""Import at scale: a material's search document from functions a bulk insert shares with the
trigger, so that an import computes it set-based (category words once per category) and the
trigger keeps a document given with a new row; `kai_fold` lower-cases ASCII text directly.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Letters that carry no combining mark to strip, as 0003 spells them out.
_SPELLED = (
    ("ß", "ss"), ("ẞ", "ss"), ("æ", "ae"), ("Æ", "ae"), ("œ", "oe"), ("Œ", "oe"),
    ("ø", "o"), ("Ø", "o"), ("đ", "d"), ("Đ", "d"), ("ł", "l"), ("Ł", "l"), ("þ", "th"),
    ("Þ", "th"), ("ð", "d"), ("Ð", "d"), ("\u0131", "i"),
)  # fmt: skip


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _unaccented() -> str:
    """0003's folding of `value`: decomposed, combining marks dropped, letters spelled out."""
    expression = "regexp_replace(normalize(value, NFD), '[\\u0300-\\u036f]', '', 'g')"
    for char, spelled in _SPELLED:
        expression = f"replace({expression}, {_literal(char)}, {_literal(spelled)})"
    return expression


# Text that is all ASCII (as many catalogs are) has nothing to decompose, strip or spell out:
# lower() alone gives the same result, without the normalisation and the eighteen passes that
# were nearly half of a search document's cost. Not STRICT, so that it is still inlined (a
# STRICT function whose body is not strict is not); NULL still folds to NULL.
_FOLD = f"""
CREATE OR REPLACE FUNCTION kai_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
AS $$
    SELECT CASE WHEN octet_length(value) = char_length(value) THEN lower(value)
                ELSE lower({_unaccented()}) END
$$
"""
_PREVIOUS_FOLD = f"""
CREATE OR REPLACE FUNCTION kai_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lower({_unaccented()}) $$
"""
# Weights: name and code (A) above the description (B), then categories, tags and properties
# (C), then maker and seller (D). The code is indexed unstemmed as well, so `TL-600` finds
# TL-600 whatever the language's stemmer makes of it. SQL, not PL/pgSQL, so that it is inlined
# into the statements that call it; STABLE, not IMMUTABLE, because array_to_string is: an
# IMMUTABLE function with a STABLE call inside is never inlined (a call each row costs a
# quarter more).
_DOCUMENT = """
CREATE FUNCTION kai_material_document(
    language regconfig, category_words text, name text, code text, description text,
    tags text[], properties_text text, manufacturer text, supplier text
) RETURNS tsvector
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT setweight(to_tsvector(language, kai_fold(name || ' ' || code)), 'A')
        || setweight(to_tsvector('simple', kai_fold(code)), 'A')
        || setweight(to_tsvector(language, kai_fold(description)), 'B')
        || setweight(to_tsvector(language, kai_fold(
               coalesce(category_words, '') || ' ' || array_to_string(tags, ' ')
               || ' ' || properties_text)), 'C')
        || setweight(to_tsvector(language, kai_fold(manufacturer || ' ' || supplier)), 'D')
$$
"""
# The names of a category's ancestors, root first, then its own: three index lookups where the
# trigger used to join every category of the organization for each row.
_CATEGORY_WORDS = """
CREATE FUNCTION kai_category_words(category uuid) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT string_agg(c.name, ' ' ORDER BY step.depth)
      FROM categories own
     CROSS JOIN LATERAL unnest(own.path || own.id) WITH ORDINALITY AS step(id, depth)
      JOIN categories c ON c.id = step.id
     WHERE own.id = category
$$
"""
_LANGUAGE = """
CREATE FUNCTION kai_search_language(organization uuid) RETURNS regconfig
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT s.search_language FROM catalog_settings s WHERE s.organization_id = organization),
        'english'::regconfig)
$$
"""
# A new row that comes with its document keeps it: a bulk insert computes it in the same
# statement with kai_material_document (the API never sets it). Every update recomputes it,
# so renaming a category still rewrites its materials' documents.
_TRIGGER = """
CREATE OR REPLACE FUNCTION kai_material_search_document() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.search_vector IS NOT NULL THEN
        RETURN NEW;
    END IF;
    NEW.search_vector := kai_material_document(
        kai_search_language(NEW.organization_id), kai_category_words(NEW.category_id),
        NEW.name, NEW.code, NEW.description, NEW.tags, NEW.properties_text,
        NEW.manufacturer, NEW.supplier);
    RETURN NEW;
END $$
"""
# 0003's body, for the way down.
_PREVIOUS_TRIGGER = """
CREATE OR REPLACE FUNCTION kai_material_search_document() RETURNS trigger
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


def upgrade() -> None:
    op.execute(_FOLD)
    op.execute(_DOCUMENT)
    op.execute(_CATEGORY_WORDS)
    op.execute(_LANGUAGE)
    op.execute(_TRIGGER)


def downgrade() -> None:
    op.execute(_PREVIOUS_TRIGGER)
    op.execute("DROP FUNCTION kai_search_language(uuid)")
    op.execute("DROP FUNCTION kai_category_words(uuid)")
    op.execute(
        "DROP FUNCTION kai_material_document("
        "regconfig, text, text, text, text, text[], text, text, text)"
    )
    op.execute(_PREVIOUS_FOLD)
