"""Search vocabulary: each organization's catalog words, kept by triggers, so that the main
search corrects a misspelt word ("marbel") to one the catalog uses ("marble").

A word is a token of a live material's name, description, tags, property words, manufacturer
or supplier, or of a category's name, folded as search folds (`kai_fold`) and unstemmed (the
`simple` configuration), three to forty letters with no digit or punctuation (codes and sizes
are not words to correct towards). `uses` counts the materials and categories holding it.
Statement-level triggers over transition tables keep the counts, as they keep
`material_names`: an import of thousands of rows adjusts each word once; an update that
changes none of those fields (a price, a status) costs a comparison per row.

Corrections come from `kai_spelling_candidates`: for each typed word that matches fewer than
`few` live materials (a word the vocabulary holds `few` times is not counted), the nearest
catalog words by trigram distance (a GiST index holding the
organization too), used by more materials than the typed word matches; the service picks
among them by edit distance.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# How alike (pg_trgm similarity) a catalog word must be to a typed word to be a candidate: low,
# since the service then keeps only those a few edits away ("marbel" and "marble" are 0.4).
CANDIDATE_SIMILARITY = 0.3

# The words of a text: folded, unstemmed, distinct, letters only.
_WORDS = """
CREATE FUNCTION kai_words(value text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT word FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig, kai_fold(value))))
           AS word
     WHERE char_length(word) BETWEEN 3 AND 40 AND word !~ '[[:digit:][:punct:]]'
$$
"""

_MATERIAL_TEXT = (
    "{r}.name || ' ' || {r}.description || ' ' || array_to_string({r}.tags, ' ') || ' ' || "
    "{r}.properties_text || ' ' || {r}.manufacturer || ' ' || {r}.supplier"
)
_MATERIAL_FIELDS = (
    "({r}.organization_id, {r}.deleted_at IS NULL, {r}.name, {r}.description, {r}.tags, "
    "{r}.properties_text, {r}.manufacturer, {r}.supplier)"
)
# table: (the text of a row, whether a row counts, what its words depend on)
_SOURCES = {
    "materials": (_MATERIAL_TEXT, "{r}.deleted_at IS NULL", _MATERIAL_FIELDS),
    "categories": ("{r}.name", "true", "({r}.organization_id, {r}.name)"),
}
_TRANSITIONS = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}


def _changes(table: str, event: str) -> str:
    """The texts whose words come (+1) and go (-1) with one statement's rows."""
    body, counts, fields = _SOURCES[table]
    came = f"SELECT n.organization_id, {body.format(r='n')} AS body, 1 AS delta FROM new_rows n"
    went = f"SELECT o.organization_id, {body.format(r='o')} AS body, -1 AS delta FROM old_rows o"
    if event == "insert":
        return f"{came} WHERE {counts.format(r='n')}"
    if event == "delete":
        return f"{went} WHERE {counts.format(r='o')}"
    # Only rows whose words may have changed: an update of a price reads no text.
    changed = f"{fields.format(r='n')} IS DISTINCT FROM {fields.format(r='o')}"
    return (
        f"{came} JOIN old_rows o ON o.id = n.id WHERE {counts.format(r='n')} AND {changed}"
        f" UNION ALL {went} JOIN new_rows n ON n.id = o.id"
        f" WHERE {counts.format(r='o')} AND {changed}"
    )


def _triggers() -> None:
    # As the owner: the vocabulary is the catalog's, whoever writes. Words whose count falls
    # to zero go (and so does a count for an organization being deleted, whose words the
    # cascade has taken already).
    for table in _SOURCES:
        for event in _TRANSITIONS:
            op.execute(
                f"""
                CREATE FUNCTION kai_search_words_on_{table}_{event}() RETURNS trigger
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
                AS $$
                DECLARE
                    gone_organizations uuid[];
                    gone_words text[];
                BEGIN
                    WITH counted AS (
                        INSERT INTO search_words AS w (organization_id, word, uses)
                        SELECT c.organization_id, k.word, sum(c.delta)::integer
                          FROM ({_changes(table, event)}) c
                         CROSS JOIN LATERAL kai_words(c.body) AS k(word)
                         GROUP BY c.organization_id, k.word HAVING sum(c.delta) <> 0
                         ORDER BY c.organization_id, k.word
                        ON CONFLICT (organization_id, word)
                        DO UPDATE SET uses = w.uses + excluded.uses
                        RETURNING w.organization_id, w.word, w.uses
                    )
                    SELECT array_agg(organization_id), array_agg(word)
                      INTO gone_organizations, gone_words
                      FROM counted WHERE uses <= 0;
                    IF gone_words IS NOT NULL THEN
                        DELETE FROM search_words w
                         USING unnest(gone_organizations, gone_words) AS g(organization_id, word)
                         WHERE w.organization_id = g.organization_id AND w.word = g.word
                           AND w.uses <= 0;
                    END IF;
                    RETURN NULL;
                END $$
                """
            )
            op.execute(
                f"CREATE TRIGGER search_words_{event} AFTER {event.upper()} ON {table}"
                f" REFERENCING {_TRANSITIONS[event]} FOR EACH STATEMENT"
                f" EXECUTE FUNCTION kai_search_words_on_{table}_{event}()"
            )


def _words_table() -> None:
    op.create_table(
        "search_words",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("word", sa.Text(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_search_words_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "word", name=op.f("pk_search_words")),
    )
    op.create_index(
        "ix_search_words_trgm",
        "search_words",
        ["organization_id", "word"],
        postgresql_using="gist",
        postgresql_ops={"word": "gist_trgm_ops"},
    )
    op.execute("ALTER TABLE search_words ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON search_words"
        " USING (organization_id = kai_current_org())"
        " WITH CHECK (organization_id = kai_current_org())"
    )


def _candidates_function() -> None:
    # Past row-level security, scoped like the other search functions (neither `@@` nor the
    # trigram operators are leakproof, so the policy would keep the indexes from serving).
    # Bitmap scans only: to count "up to `few`" matches the planner preferred reading the
    # table in order until it found them, which for a misspelt word (no match) is the whole
    # table (15 ms at 10,000 materials); the full-text index's bitmap answers in 1-2 ms, a
    # common word's too.
    op.execute(
        f"""
        CREATE FUNCTION kai_spelling_candidates(
            language regconfig, typed text[], few integer, commoner integer, how_many integer
        )
        RETURNS TABLE (ordinal integer, word text, matches integer, candidate text, uses integer)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp
        SET pg_trgm.similarity_threshold = {CANDIDATE_SIMILARITY}
        SET enable_seqscan = off
        SET enable_indexscan = off
        AS $$
            SELECT t.ordinal::integer, t.folded, found.matches, near.word, near.uses
              FROM (SELECT u.ordinal, kai_fold(u.word) AS folded
                      FROM unnest(typed) WITH ORDINALITY AS u(word, ordinal)) t
             CROSS JOIN LATERAL (
                 -- A word the catalog spells so often needs no count (most words typed).
                 SELECT CASE WHEN EXISTS (
                     SELECT 1 FROM search_words s
                      WHERE s.organization_id = kai_current_org() AND s.word = t.folded
                        AND s.uses >= few
                 ) THEN few ELSE (
                     SELECT count(*)::integer FROM (
                         SELECT 1 FROM materials m
                          WHERE m.organization_id = kai_current_org() AND m.deleted_at IS NULL
                            AND m.search_vector @@ plainto_tsquery(language, t.folded)
                          LIMIT few
                     ) hits
                 ) END AS matches
                 OFFSET 0  -- counted once, not once per place the count is read
             ) found
             CROSS JOIN LATERAL (
                 SELECT w.word, w.uses FROM search_words w
                  WHERE w.organization_id = kai_current_org() AND w.word % t.folded
                    AND w.uses > found.matches * commoner
                    AND plainto_tsquery(language, w.word) <> plainto_tsquery(language, t.folded)
                  ORDER BY w.word <-> t.folded
                  LIMIT how_many
             ) near
             WHERE found.matches < few AND numnode(plainto_tsquery(language, t.folded)) > 0
        $$
        """
    )


def upgrade() -> None:
    op.execute(_WORDS)
    _words_table()
    _triggers()
    _candidates_function()
    op.execute(
        f"""
        INSERT INTO search_words (organization_id, word, uses)
        SELECT organization_id, word, count(*) FROM (
            SELECT m.organization_id, k.word FROM materials m
             CROSS JOIN LATERAL kai_words({_MATERIAL_TEXT.format(r="m")}) AS k(word)
             WHERE m.deleted_at IS NULL
            UNION ALL
            SELECT c.organization_id, k.word FROM categories c
             CROSS JOIN LATERAL kai_words(c.name) AS k(word)
        ) found
        GROUP BY organization_id, word
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION kai_spelling_candidates(regconfig, text[], integer, integer, integer)"
    )
    for table in _SOURCES:
        for event in _TRANSITIONS:
            op.execute(f"DROP TRIGGER search_words_{event} ON {table}")
            op.execute(f"DROP FUNCTION kai_search_words_on_{table}_{event}()")
    op.drop_table("search_words")
    op.execute("DROP FUNCTION kai_words(text)")
