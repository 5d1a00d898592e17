"""All SQL of search: PostgreSQL full-text search over the materials' weighted documents,
filters, facet counts in one statement, and trigram suggestions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Numeric,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, REAL, REGCONFIG
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.models import CatalogSettings, Category, Material
from kai.catalog.settings import DEFAULT_LANGUAGE
from kai.kit.pagination import decode_keyset, encode_cursor
from kai.search.semantic_repository import nearest_materials

# Markers ts_headline puts around matches; the service escapes the text and makes them <mark>.
MARK_START = "\x02"
MARK_END = "\x03"
HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxFragments=2, MaxWords=24, MinWords=8,"
    " FragmentDelimiter= … "
)
BUCKETS = 5
# How alike a word must be to what was typed to be suggested (pg_trgm word similarity): low
# enough that "marbel" finds "marble", high enough that "oak" does not find "cloak". Names
# are matched in kai_nearest_names, which the search-at-scale migration sets to the same value.
SUGGEST_SIMILARITY = 0.35
TOP_TAGS = 20
# Full-text matches that hybrid search fuses with the nearest by meaning (a rank past this
# adds under 1/1000 to a fused score: the rest of the matches would only be its tail).
HYBRID_TEXT_WINDOW = 1000
_ARRAY: ColumnElement[Any] = literal_column("'array'")


@dataclass(frozen=True)
class PropertyFilter:
    key: str
    # "=": equals (enum, boolean, text) or contains (multi_enum); ">=", "<=", ">", "<": numbers.
    operator: str
    value: Any
    # Only materials of these categories (None: any): a number compared in their unit.
    category_ids: tuple[uuid.UUID, ...] | None = None


# Filters a material must meet one of (a number in each unit its categories keep it in).
PropertyCondition = tuple[PropertyFilter, ...]


@dataclass(frozen=True)
class NumericFacet:
    """A number counted in buckets, in one unit: the values of the categories listed are
    converted to it as `stored * factor + offset`."""

    key: str
    conversions: tuple[tuple[tuple[uuid.UUID, ...], float, float], ...] = ()


@dataclass(frozen=True)
class SemanticQuery:
    """What the query means, and how semantic and hybrid search use it."""

    vector: Sequence[float]
    # "semantic": the nearest materials by meaning; "hybrid": those fused with full-text's.
    mode: str
    candidates: int
    min_similarity: float
    rrf_k: int


@dataclass(frozen=True)
class SearchQuery:
    organization_id: uuid.UUID
    text: str | None = None
    category_ids: Sequence[uuid.UUID] | None = None
    statuses: Sequence[str] = ()
    tags: Sequence[str] = ()
    supplier: str | None = None
    manufacturer: str | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    properties: Sequence[PropertyCondition] = ()
    # Set for semantic and hybrid search of a text; None: full-text only.
    semantic: SemanticQuery | None = None
    # (typed word folded, catalog word): the text's words searched for with their corrections.
    corrections: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SpellingCandidate:
    """A catalog word near a typed word (the `ordinal`-th) that finds few materials."""

    ordinal: int
    word: str
    matches: int
    candidate: str
    uses: int


@dataclass
class Hit:
    material: Material
    score: float | None
    name_headline: str | None
    description_headline: str | None


@dataclass
class FacetRows:
    total: int = 0
    categories: dict[uuid.UUID, int] = field(default_factory=dict)
    tags: list[tuple[str, int]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    properties: dict[str, dict[str, int]] = field(default_factory=dict)
    # key -> (minimum, maximum, {bucket number: count})
    ranges: dict[str, tuple[float, float, dict[int, int]]] = field(default_factory=dict)


def _number(properties: Any, key: str) -> ColumnElement[Any]:
    value = properties[key]
    return case((func.jsonb_typeof(value) == "number", cast(value.astext, Float)), else_=None)


# What full-text matches come with (see the search-speed migration's kai_text_matched): the
# columns filters, sort keys and facets read, so that only a page's rows are looked up.
_MATCHED_COLUMNS = (
    column("id", Uuid),
    column("rank", REAL),
    column("category_id", Uuid),
    column("status", String),
    # PostgreSQL's ARRAY: the tag filter's `contains` (@>) needs it (the generic one was a 500).
    column("tags", ARRAY(String)),
    column("price", Numeric),
    column("properties", JSONB),
    column("supplier", String),
    column("manufacturer", String),
    column("name", String),
    column("created_at", DateTime(timezone=True)),
)


class SearchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Semantic and hybrid match sets by query: the page and the facets share one.
        self._fused_sets: dict[int, tuple[SearchQuery, tuple[list[Any], list[float]]]] = {}

    async def language(self, organization_id: uuid.UUID) -> str:
        statement = select(CatalogSettings.search_language).where(
            CatalogSettings.organization_id == organization_id
        )
        found = (await self.session.execute(statement)).scalar_one_or_none()
        return str(found) if found else DEFAULT_LANGUAGE

    def _tsquery(self, language: str, query: SearchQuery) -> ColumnElement[Any]:
        """The query's words as a tsquery; a corrected word matches its correction too."""
        assert query.text is not None
        config = cast(language, REGCONFIG)
        tsquery = func.websearch_to_tsquery(config, func.kai_fold(query.text))
        for typed, word in query.corrections:
            target = func.plainto_tsquery(config, typed)
            either = target.op("||")(func.plainto_tsquery(config, word))
            tsquery = func.ts_rewrite(tsquery, target, either)
        return tsquery

    async def spelling_candidates(
        self, language: str, words: Sequence[str], *, few: int, commoner: int, how_many: int
    ) -> list[SpellingCandidate]:
        """For each word matching fewer than `few` live materials, the catalog words nearest
        to it used by `commoner` times as many (see the migration's kai_spelling_candidates)."""
        found = func.kai_spelling_candidates(
            cast(language, REGCONFIG),
            bindparam("typed_words", list(words), type_=ARRAY(String())),
            few,
            commoner,
            how_many,
        ).table_valued("ordinal", "word", "matches", "candidate", "uses")
        rows = await self.session.execute(select(*found.c))
        return [SpellingCandidate(*row) for row in rows.all()]

    async def _fused(self, query: SearchQuery, language: str) -> tuple[list[Any], list[float]]:
        """The semantic or hybrid match set, as ids and ranks, worked out once per query.

        Semantic: the nearest materials by meaning, down to a minimum similarity. Hybrid:
        those and the best `HYBRID_TEXT_WINDOW` full-text matches (filters applied first),
        fused by reciprocal rank: a material's rank is the sum of 1 / (k + its position) in
        each list it is in. Read into the process (at most a thousand or so rows), the set
        then joins the page and the facets by primary key, which the planner cannot misjudge.
        """
        found = self._fused_sets.get(id(query))
        if found is not None and found[0] is query:
            return found[1]
        semantic = query.semantic
        assert semantic is not None
        nearest = nearest_materials(semantic.vector, semantic.candidates, query.category_ids)
        related = nearest.c.similarity >= semantic.min_similarity
        statement: Select[Any, Any]
        if semantic.mode == "semantic":
            statement = select(nearest.c.id, nearest.c.similarity).where(related)
        else:
            matched = self._text_matched(query, language, ranked=True)
            by_words = (
                select(
                    matched.c.id,
                    func.row_number()
                    .over(order_by=(matched.c.rank.desc(), matched.c.id))
                    .label("at"),
                )
                .where(*_filters(query, matched.c))
                .order_by(matched.c.rank.desc(), matched.c.id)
                .limit(HYBRID_TEXT_WINDOW)
                .subquery("by_words")
            )
            by_meaning = (
                select(
                    nearest.c.id,
                    func.row_number()
                    .over(order_by=(nearest.c.similarity.desc(), nearest.c.id))
                    .label("at"),
                )
                .where(related)
                .subquery("by_meaning")
            )
            k = float(semantic.rrf_k)
            fused = func.coalesce(1.0 / (k + by_words.c.at), 0.0) + func.coalesce(
                1.0 / (k + by_meaning.c.at), 0.0
            )
            statement = select(func.coalesce(by_words.c.id, by_meaning.c.id), fused).select_from(
                by_words.outerjoin(by_meaning, by_words.c.id == by_meaning.c.id, full=True)
            )
        rows = (await self.session.execute(statement)).all()
        result = ([row[0] for row in rows], [float(row[1]) for row in rows])
        self._fused_sets[id(query)] = (query, result)
        return result

    async def _matches(self, query: SearchQuery, language: str) -> Any:
        """The materials the words match, as a derived table (id, rank); None without words.

        Full-text: every material whose document matches (the full-text index serves only
        past row-level security: see the migration's kai_text_matches). Semantic and hybrid:
        the set `_fused` worked out.
        """
        if not query.text:
            return None
        if query.semantic is None:
            tsquery = self._tsquery(language, query)
            return (
                func.kai_text_matches(tsquery)
                .table_valued("id", "rank")
                .render_derived(name="matches")
            )
        ids, ranks = await self._fused(query, language)
        return (
            func.unnest(
                bindparam("fused_ids", ids, type_=ARRAY(Uuid()), unique=True),
                bindparam("fused_ranks", ranks, type_=ARRAY(DOUBLE_PRECISION), unique=True),
            )
            .table_valued("id", "rank")
            .render_derived(name="matches")
        )

    def _text_matched(self, query: SearchQuery, language: str, *, ranked: bool) -> Any:
        """Full-text matches with their filterable columns (no rank unless `ranked`)."""
        assert query.text is not None
        tsquery = self._tsquery(language, query)
        function = func.kai_text_matched(tsquery, literal(ranked))
        return function.table_valued(*_MATCHED_COLUMNS).render_derived(name="matched_text")

    def _conditions(self, query: SearchQuery) -> list[Any]:
        """The materials table's rows the query's filters keep, live and of its organization."""
        return [
            Material.organization_id == query.organization_id,
            Material.deleted_at.is_(None),
            *_filters(query, Material),
        ]

    async def search(
        self,
        query: SearchQuery,
        *,
        language: str,
        sort: str,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Hit], str | None]:
        tsquery = self._tsquery(language, query) if query.text else None
        sort = sort if tsquery is not None or sort != "relevance" else "newest"
        # The cursor's values checked against the sort's keys (a rank stands in for the rank).
        keys = [expression for expression, _ in _sort_keys(sort, literal(0.0), Material)]
        values = decode_keyset(cursor, keys) if cursor else None
        if tsquery is not None and query.semantic is None:
            statement = self._text_page(query, language, sort, limit, values)
        else:
            matches = await self._matches(query, language)
            statement = self._page(query, matches, sort, limit, values)
        if tsquery is not None:
            statement = statement.add_columns(
                func.ts_headline(
                    cast(language, REGCONFIG), Material.name, tsquery, HEADLINE_OPTIONS
                ).label("name_headline"),
                func.ts_headline(
                    cast(language, REGCONFIG), Material.description, tsquery, HEADLINE_OPTIONS
                ).label("description_headline"),
            )
        rows = (await self.session.execute(statement)).all()
        hits = [
            Hit(
                material=row[0],
                score=float(row.rank) if tsquery is not None else None,
                name_headline=row.name_headline if tsquery is not None else None,
                description_headline=row.description_headline if tsquery is not None else None,
            )
            for row in rows[:limit]
        ]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([last.key0, last.key1])
        return hits, next_cursor

    def _page(
        self, query: SearchQuery, matches: Any, sort: str, limit: int, after: list[Any] | None
    ) -> Select[Any]:
        """A page of the materials table's rows, joined to the match set if there are words."""
        # In double precision: a `real` rank would come back rounded, and a cursor holding
        # the rounded value would not compare equal to the row it came from.
        rank: ColumnElement[Any] = (
            cast(matches.c.rank, DOUBLE_PRECISION) if matches is not None else literal(0.0)
        )
        keys = _sort_keys(sort, rank, Material)
        # The sort keys ride along, so a page's cursor is the last row's own values.
        statement: Select[Any] = select(
            Material,
            rank.label("rank"),
            *(expression.label(f"key{index}") for index, (expression, _) in enumerate(keys)),
        ).where(*self._conditions(query))
        if matches is not None:
            statement = statement.join(matches, matches.c.id == Material.id)
        if after is not None:
            statement = statement.where(_after(keys, after))
        return statement.order_by(*_ordering(keys)).limit(limit + 1)

    def _text_page(
        self, query: SearchQuery, language: str, sort: str, limit: int, after: list[Any] | None
    ) -> Select[Any]:
        """A page of full-text matches: chosen among the matches' own columns, and only the
        page's rows looked up in the materials table."""
        matched = self._text_matched(query, language, ranked=True)
        rank = cast(matched.c.rank, DOUBLE_PRECISION)
        keys = _sort_keys(sort, rank, matched.c)
        top = select(
            matched.c.id,
            rank.label("rank"),
            *(expression.label(f"key{index}") for index, (expression, _) in enumerate(keys)),
        ).where(*_filters(query, matched.c))
        if after is not None:
            top = top.where(_after(keys, after))
        page = top.order_by(*_ordering(keys)).limit(limit + 1).subquery("page")
        kept = [(page.c[f"key{index}"], descending) for index, (_, descending) in enumerate(keys)]
        return (
            select(Material, page.c.rank, *(expression for expression, _ in kept))
            .join(page, page.c.id == Material.id)
            .where(Material.organization_id == query.organization_id)
            .order_by(*_ordering(kept))
        )

    async def facets(
        self,
        query: SearchQuery,
        *,
        language: str,
        enum_keys: Sequence[str],
        numeric: Sequence[NumericFacet],
    ) -> FacetRows:
        """Counts of the whole match set (the rows `search` pages through), in one statement.

        The match set is read once, narrowed to the columns facets need; one pass finds the
        total and each number's bounds, and one grouped pass (grouping sets) counts
        categories, statuses, property values and range buckets together.
        """
        source: Any = Material
        matches = None
        conditions = self._conditions(query)
        if query.text and query.semantic is None:
            # Full-text matches come with the columns counted: no lookup of each.
            source = self._text_matched(query, language, ranked=False).c
            conditions = _filters(query, source)
        else:
            matches = await self._matches(query, language)
        numbers: list[tuple[str, ColumnElement[Any]]] = [("price", cast(source.price, Float))]
        numbers += [(f"properties.{facet.key}", _in_one_unit(source, facet)) for facet in numeric]
        selected = select(
            source.category_id.label("category_id"),
            source.status.label("status"),
            source.tags.label("tags"),
            *(source.properties[key].label(f"p{i}") for i, key in enumerate(enum_keys)),
            *(expression.label(f"n{i}") for i, (_, expression) in enumerate(numbers)),
        ).where(*conditions)
        if matches is not None:
            selected = selected.join(matches, matches.c.id == Material.id)
        matched = selected.cte("matched").prefix_with("MATERIALIZED")
        bounds = (
            select(
                func.count().label("total"),
                *(func.min(matched.c[f"n{i}"]).label(f"low{i}") for i in range(len(numbers))),
                *(func.max(matched.c[f"n{i}"]).label(f"high{i}") for i in range(len(numbers))),
            )
            .select_from(matched)
            .cte("bounds")
        )
        # Each grouping set counts one facet: (kind, key) says which. Values are grouped as
        # stored and turned into text once per group, not once per row.
        facets: list[tuple[str, str, ColumnElement[Any]]] = [
            ("category", "", matched.c.category_id),
            ("status", "", matched.c.status),
        ]
        shown: list[ColumnElement[Any]] = [func.text(matched.c.category_id), matched.c.status]
        # A property's values grouped as JSON: a multi_enum's arrays are counted element by
        # element afterwards, over the groups (a few) rather than the matches.
        raw: list[ColumnElement[Any]] = []
        for i, key in enumerate(enum_keys):
            facets.append(("property", key, matched.c[f"p{i}"]))
            raw.append(matched.c[f"p{i}"])
        for i, (name, _) in enumerate(numbers):
            low, high = bounds.c[f"low{i}"], bounds.c[f"high{i}"]
            # Literal constants, not bound parameters: the expression must read the same in
            # the grouping sets as in grouping() for PostgreSQL to see it is grouped.
            tiny: ColumnElement[Any] = literal_column("1e-9")
            buckets: ColumnElement[Any] = literal_column(str(BUCKETS))
            number = matched.c[f"n{i}"]
            # least() passes over NULLs: a material without the number has no bucket.
            bucket = case(
                (
                    number.is_not(None),
                    func.least(
                        func.width_bucket(
                            number, low, high + func.greatest((high - low) * tiny, tiny), buckets
                        ),
                        buckets,
                    ),
                )
            )
            facets.append(("bucket", name, bucket))
            shown.append(func.text(bucket))
        which = case(
            *((func.grouping(expression) == 0, i) for i, (_, _, expression) in enumerate(facets))
        )
        per_facet = (
            select(
                which.label("facet"),
                func.coalesce(*shown).label("value"),
                (func.coalesce(*raw) if raw else cast(null(), JSONB)).label("raw"),
                func.count().label("n"),
            )
            .select_from(matched.join(bounds, literal(True)))
            .group_by(func.grouping_sets(*(tuple_(expression) for _, _, expression in facets)))
            .subquery()
        )
        stored = per_facet.c.raw
        is_array = func.jsonb_typeof(stored) == _ARRAY
        element = (
            func.jsonb_array_elements_text(case((is_array, stored)))
            .table_valued("value")
            .alias("element")
        )
        value = case(
            (stored.is_(None), per_facet.c.value),
            (is_array, element.c.value),
            else_=stored.op("#>>")(literal_column("'{}'")),
        )
        parts: list[Any] = [
            select(
                literal("facet"), func.text(per_facet.c.facet), value, per_facet.c.n
            ).select_from(per_facet.outerjoin(element, literal(True))),
            select(literal("total"), literal(None), literal(None), bounds.c.total),
        ]
        parts += [
            select(
                literal("range"),
                literal(name),
                func.text(bounds.c[f"low{i}"]) + "|" + func.text(bounds.c[f"high{i}"]),
                literal(-1),
            )
            for i, (name, _) in enumerate(numbers)
        ]
        # Tags counted per distinct set of tags (a few hundred), then tag by tag.
        tag_sets = (
            select(matched.c.tags.label("tags"), func.count().label("n"))
            .group_by(matched.c.tags)
            .subquery("tag_sets")
        )
        tag = func.unnest(tag_sets.c.tags).table_valued("tag").alias("tag")
        total = func.sum(tag_sets.c.n)
        tag_counts = (
            select(tag.c.tag.label("tag"), total.label("n"))
            .select_from(tag_sets.join(tag, literal(True)))
            .group_by(tag.c.tag)
            .order_by(total.desc(), tag.c.tag)
            .limit(TOP_TAGS)
            .subquery()
        )
        parts.append(select(literal("tag"), tag_counts.c.tag, literal(None), tag_counts.c.n))
        union = parts[0].union_all(*parts[1:])
        rows = (await self.session.execute(union)).all()
        return _facet_rows(rows, [(kind, key) for kind, key, _ in facets])

    async def suggest_materials(
        self, organization_id: uuid.UUID, typed: str, limit: int
    ) -> list[tuple[uuid.UUID, str, str, float]]:
        """The names nearest to what was typed (typos forgiven: trigram word similarity, each
        distinct name once, in the order of its GiST index) with one live material of each,
        and codes that start with it."""
        nearest = (
            func.kai_nearest_names(func.kai_fold(typed), limit)
            .table_valued("name_folded", "score")
            .render_derived(name="nearest")
        )
        live = (Material.organization_id == organization_id, Material.deleted_at.is_(None))
        bearer = (
            select(Material.id, Material.name, Material.code)
            .where(*live, Material.name_folded == nearest.c.name_folded)
            .order_by(Material.id)
            .limit(1)
            .lateral("bearer")
        )
        by_name = (
            select(bearer.c.id, bearer.c.name, bearer.c.code, nearest.c.score)
            .select_from(nearest.join(bearer, literal(True)))
            .order_by(nearest.c.score.desc(), nearest.c.name_folded)
        )
        # Codes by their beginning, from the code index past row-level security (see the
        # search-at-scale migration's kai_codes_starting).
        starting = (
            func.kai_codes_starting(typed, limit).table_valued("id").render_derived(name="codes")
        )
        by_code = (
            select(Material.id, Material.name, Material.code, literal(1.0))
            .join(starting, starting.c.id == Material.id)
            .where(*live)
            .order_by(func.lower(Material.code))
        )
        rows = [*(await self.session.execute(by_code)).all()] if typed else []
        rows += (await self.session.execute(by_name)).all()
        return [(row[0], row[1], row[2], float(row[3] or 0)) for row in rows]

    async def suggest_categories(
        self, organization_id: uuid.UUID, typed: str, limit: int
    ) -> list[tuple[uuid.UUID, str, float]]:
        score = func.word_similarity(func.kai_fold(typed), func.kai_fold(Category.name))
        statement = (
            select(Category.id, Category.name, score)
            .where(Category.organization_id == organization_id, score >= SUGGEST_SIMILARITY)
            .order_by(score.desc(), Category.name)
            .limit(limit)
        )
        return [(row[0], row[1], float(row[2])) for row in (await self.session.execute(statement))]


def _filters(query: SearchQuery, source: Any) -> list[Any]:
    """The query's filters on `source`'s columns (the materials table or full-text matches)."""
    conditions: list[Any] = []
    if query.category_ids is not None:
        conditions.append(source.category_id.in_(query.category_ids))
    if query.statuses:
        conditions.append(source.status.in_(query.statuses))
    if query.tags:
        conditions.append(source.tags.contains(list(query.tags)))
    if query.supplier:
        conditions.append(func.lower(source.supplier) == query.supplier.lower())
    if query.manufacturer:
        conditions.append(func.lower(source.manufacturer) == query.manufacturer.lower())
    if query.price_min is not None:
        conditions.append(source.price >= query.price_min)
    if query.price_max is not None:
        conditions.append(source.price <= query.price_max)
    for alternatives in query.properties:
        met = [_property_filter(condition, source) for condition in alternatives]
        conditions.append(met[0] if len(met) == 1 else or_(*met))
    return conditions


def _property_filter(condition: PropertyFilter, source: Any) -> ColumnElement[bool]:
    compare: ColumnElement[bool]
    if condition.operator == "=":
        # Containment, so the GIN index on properties answers it.
        compare = source.properties.contains(cast({condition.key: condition.value}, JSONB))
    else:
        number = _number(source.properties, condition.key)
        compare = {
            ">=": number >= condition.value,
            "<=": number <= condition.value,
            ">": number > condition.value,
            "<": number < condition.value,
        }[condition.operator]
    if condition.category_ids is not None:
        compare = and_(source.category_id.in_(condition.category_ids), compare)
    return compare


def _in_one_unit(source: Any, facet: NumericFacet) -> ColumnElement[Any]:
    number = _number(source.properties, facet.key)
    if not facet.conversions:
        return number
    return case(
        *(
            (source.category_id.in_(ids), number * factor + offset)
            for ids, factor, offset in facet.conversions
        ),
        else_=number,
    )


def _sort_keys(sort: str, rank: ColumnElement[Any], source: Any) -> list[tuple[Any, bool]]:
    """Expressions to order by, each with whether it descends; the id makes them unique."""
    if sort == "relevance":
        return [(rank, True), (source.id, True)]
    if sort == "name":
        return [(func.lower(source.name), False), (source.id, False)]
    if sort == "price_asc":
        return [(func.coalesce(cast(source.price, Float), 1e15), False), (source.id, False)]
    if sort == "price_desc":
        return [(func.coalesce(cast(source.price, Float), -1.0), True), (source.id, True)]
    return [(source.created_at, True), (source.id, True)]


def _ordering(keys: list[tuple[Any, bool]]) -> list[Any]:
    return [key.desc() if descending else key.asc() for key, descending in keys]


def _after(keys: list[tuple[Any, bool]], values: list[Any]) -> ColumnElement[bool]:
    """Rows beyond the cursor's, key by key, each in its own direction."""
    clauses = []
    for index, (expression, descending) in enumerate(keys):
        equal_prefix = [keys[i][0] == values[i] for i in range(index)]
        beyond = expression < values[index] if descending else expression > values[index]
        clauses.append(and_(*equal_prefix, beyond))
    return or_(*clauses)


def _facet_rows(rows: Sequence[Any], facets: Sequence[tuple[str, str]]) -> FacetRows:
    """The facet statement's rows as counts; `facets`: what each grouping set counts."""
    facets_found = FacetRows()
    bounds: dict[str, tuple[float, float]] = {}
    buckets: dict[str, dict[int, int]] = {}
    for kind, key, value, count in rows:
        if kind == "facet":
            kind, key = facets[int(key)]
            if value is None:
                # Materials without the value (no category, no such property): not a facet.
                continue
            key, value = (value, None) if kind in ("category", "status") else (key, value)
        if kind == "total":
            facets_found.total = int(count)
        elif kind == "category":
            facets_found.categories[uuid.UUID(key)] = int(count)
        elif kind == "status":
            facets_found.statuses[str(key)] = int(count)
        elif kind == "tag":
            facets_found.tags.append((str(key), int(count)))
        elif kind == "property" and value is not None:
            counts = facets_found.properties.setdefault(str(key), {})
            counts[str(value)] = counts.get(str(value), 0) + int(count)
        elif kind == "range" and value:
            lowest, _, highest = str(value).partition("|")
            bounds[str(key)] = (float(lowest), float(highest))
        elif kind == "bucket":
            buckets.setdefault(str(key), {})[int(value)] = int(count)
    for key, (low, high) in bounds.items():
        facets_found.ranges[key] = (low, high, buckets.get(key, {}))
    return facets_found
