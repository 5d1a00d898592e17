"""All SQL of search: PostgreSQL full-text search over the materials' weighted documents,
filters and pages over the facet columns in memory (`kai.search.facet_index`), the nearest
by meaning, and trigram suggestions. The statements every search makes are fixed ones, run on
the primary's driver when the session allows (`SearchRepository._fixed_rows`)."""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import (
    ARRAY,
    DOUBLE_PRECISION,
    JSONB,
    REAL,
    REGCONFIG,
    TSQUERY,
)
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.models import ROW_COLUMNS, Category, Material, MaterialRow, shown_image
from kai.kit.driver import Driver
from kai.kit.pagination import CURSOR_HINT, InvalidCursor, decode_keyset, encode_cursor
from kai.kit.replica import on_replica
from kai.search import facet_index, words
from kai.search.embeddings import EMBEDDING_DIMENSIONS
from kai.search.models import MaterialMeaningVersion
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
# Browsing's orders that the facet columns hold the keys of: its page is chosen in memory.
BROWSED_IN_MEMORY = frozenset({"newest", "price_asc", "price_desc"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Full-text matches that hybrid search fuses with the nearest by meaning (a rank past this
# adds under 1/1000 to a fused score: the rest of the matches would only be its tail).
HYBRID_TEXT_WINDOW = 1000


# A number filter's operators (a material without the number meets none of them).
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


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
    material: MaterialRow
    score: float | None
    name_headline: str | None
    description_headline: str | None
    # The image a list shows the material by (as ImageRepository.shown_of chooses it).
    shown_image: uuid.UUID | None


@dataclass
class FacetRows:
    total: int = 0
    categories: dict[uuid.UUID, int] = field(default_factory=dict)
    tags: list[tuple[str, int]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    properties: dict[str, dict[str, int]] = field(default_factory=dict)
    # key -> (minimum, maximum, {bucket number: count})
    ranges: dict[str, tuple[float, float, dict[int, int]]] = field(default_factory=dict)


# A page's materials by id, their matches highlighted: the tsquery as PostgreSQL writes it
# (`SearchRepository._tsquery_text`), so that the statement's text is always the same.
_PAGE_BY_IDS = select(
    *ROW_COLUMNS,
    *(
        func.ts_headline(
            cast(bindparam("language", type_=String()), REGCONFIG),
            field,
            cast(bindparam("tsquery", type_=String()), TSQUERY),
            HEADLINE_OPTIONS,
        )
        for field in (Material.name, Material.description)
    ),
    shown_image(),
).where(
    Material.organization_id == bindparam("organization_id", type_=Uuid()),
    Material.id == func.any(bindparam("page_ids", type_=ARRAY(Uuid()))),
)

# The same without highlights, for a page of browsing (the same columns, so read alike).
_ROWS_BY_IDS = select(
    *ROW_COLUMNS, null().label("name_headline"), null().label("description_headline"), shown_image()
).where(
    Material.organization_id == bindparam("organization_id", type_=Uuid()),
    Material.id == func.any(bindparam("page_ids", type_=ARRAY(Uuid()))),
)

# The nearest materials by meaning, most alike first (`nearest_materials`' function), the
# query's vector in pgvector's text form.
_NEAREST = func.kai_semantic_matches(
    cast(bindparam("query_vector", type_=String()), HALFVEC(EMBEDDING_DIMENSIONS)),
    bindparam("how_many", type_=Integer()),
    bindparam("category_ids", type_=ARRAY(Uuid())),
).table_valued("id", "similarity")
_NEAREST_FOUND = (
    select(_NEAREST.c.id, _NEAREST.c.similarity)
    .where(_NEAREST.c.similarity >= bindparam("min_similarity", type_=Float()))
    .order_by(_NEAREST.c.similarity.desc(), _NEAREST.c.id)
)

# Where an organization's text embeddings stand.
_MEANING_VERSION = select(MaterialMeaningVersion.version).where(
    MaterialMeaningVersion.organization_id == bindparam("organization_id", type_=Uuid())
)


def _vector_text(vector: Sequence[float]) -> str:
    """A vector as pgvector reads it: `[0.25,-1.5,...]`. Written once per vector the query
    embeddings' cache holds (the same words searched again bring the same list)."""
    found = _vector_texts.get(id(vector))
    if found is not None and found[0] is vector:
        return found[1]
    written = "[" + ",".join(map(repr, map(float, vector))) + "]"
    # The vector is held too, so that no other object takes its identity meanwhile.
    _vector_texts[id(vector)] = (vector, written)
    while len(_vector_texts) > 256:
        _vector_texts.pop(next(iter(_vector_texts)))
    return written


_vector_texts: dict[int, tuple[Sequence[float], str]] = {}


def _suggestions() -> Select[Any]:
    """`SearchRepository.suggestions`' statement: categories (branch 0), materials by code
    (1) and by name (2), each row with its place in its branch (the union keeps no order)."""
    typed = bindparam("typed", type_=String())
    how_many = bindparam("how_many", type_=Integer())
    organization_id = bindparam("organization_id", type_=Uuid())
    similar = func.word_similarity(func.kai_fold(typed), func.kai_fold(Category.name))
    categories = (
        select(
            literal(0).label("branch"), Category.id, Category.name,
            null().label("code"), cast(similar, Float).label("score"),
            func.row_number().over(order_by=(similar.desc(), Category.name)).label("at"),
        )
        .where(Category.organization_id == organization_id, similar >= SUGGEST_SIMILARITY)
        .order_by(similar.desc(), Category.name)
        .limit(how_many)
    )  # fmt: skip
    live = (Material.organization_id == organization_id, Material.deleted_at.is_(None))
    # Codes by their beginning, from the code index past row-level security (see the
    # search-at-scale migration's kai_codes_starting); spaces alone name no code.
    starting = (
        func.kai_codes_starting(typed, how_many).table_valued("id").render_derived(name="codes")
    )
    by_code = (
        select(
            literal(1), Material.id, Material.name, Material.code, literal(1.0),
            func.row_number().over(order_by=func.lower(Material.code)),
        )
        .join(starting, starting.c.id == Material.id)
        .where(*live, typed != "")
    )  # fmt: skip
    nearest = (
        func.kai_nearest_names(func.kai_fold(typed), how_many)
        .table_valued("name_folded", "score")
        .render_derived(name="nearest")
    )
    bearer = (
        select(Material.id, Material.name, Material.code)
        .where(*live, Material.name_folded == nearest.c.name_folded)
        .order_by(Material.id)
        .limit(1)
        .lateral("bearer")
    )
    by_name = select(
        literal(2), bearer.c.id, bearer.c.name, bearer.c.code, cast(nearest.c.score, Float),
        func.row_number().over(order_by=(nearest.c.score.desc(), nearest.c.name_folded)),
    ).select_from(nearest.join(bearer, literal(True)))  # fmt: skip
    return select(union_all(categories, by_code, by_name).subquery("suggested"))


_SUGGESTIONS = _suggestions()


@functools.cache
def _driver_text(statement: Select[Any]) -> tuple[str, dict[str, Any]]:
    """One of this module's fixed statements as the driver takes it: its SQL, with named
    placeholders, and the values of the parameters it binds itself."""
    dialect = postgresql_psycopg.dialect()  # type: ignore[no-untyped-call]
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


def best_ranked(
    ids: NDArray[np.bytes_], ranks: NDArray[np.float64], how_many: int
) -> NDArray[np.bytes_]:
    """The `how_many` ids ranked highest, highest first, equal ranks by id: without sorting
    more than those ranked at least as high as the last of them."""
    if len(ranks) > how_many:
        edge = np.partition(ranks, len(ranks) - how_many)[len(ranks) - how_many]
        near = ranks >= edge
        ids, ranks = ids[near], ranks[near]
    best: NDArray[np.bytes_] = ids[np.lexsort((ids, -ranks))[:how_many]]
    return best


def extreme_ids(ids: NDArray[np.bytes_], how_many: int, largest: bool) -> NDArray[np.int64]:
    """Where in `ids` the `how_many` largest (or smallest) are, in no order: compared by
    their first eight bytes as a number, and only those tied on the last of them in full."""
    halves = np.ascontiguousarray(ids).view(np.dtype([("high", ">u8"), ("low", ">u8")]))
    high = halves["high"].astype(np.uint64)
    if len(ids) > how_many:
        at = len(ids) - how_many if largest else how_many - 1
        edge = np.partition(high, at)[at]
        candidates = np.flatnonzero(high >= edge if largest else high <= edge)
    else:
        candidates = np.arange(len(ids))
    order = np.lexsort((halves["low"][candidates], high[candidates]))
    chosen: NDArray[np.int64] = candidates[order[::-1] if largest else order][:how_many]
    return chosen


def _micros(moment: datetime) -> int:
    """A moment as the facet columns keep it: microseconds since 1970."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _words_key(query: SearchQuery, language: str) -> str:
    """The query's words and filters, as answers worked out from them are kept under."""
    return repr(
        (
            query.text, query.corrections, language, query.category_ids, query.statuses,
            query.tags, query.supplier, query.manufacturer, query.price_min, query.price_max,
            query.properties,
        )
    )  # fmt: skip


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


_tsqueries: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], str] = {}


@dataclass
class _Kept:
    """The materials a query keeps, as slots of the facet columns, with their ids and ranks."""

    columns: facet_index.Columns
    slots: NDArray[np.int64]
    ids: NDArray[np.bytes_]
    ranks: NDArray[np.float64]
    ranked: bool

    def mask(self) -> NDArray[np.bool_]:
        kept = np.zeros(self.columns.capacity, bool)
        kept[self.slots] = True
        return kept


class SearchRepository:
    def __init__(self, session: AsyncSession, driver: Driver | None = None) -> None:
        self.session = session
        # The primary's driver, for the statements every search makes (the columns' catch-up,
        # the page): one round trip each, without a transaction to begin, scope and end. Only
        # while the session reads the primary and has begun nothing: no write of its own
        # that the driver could not see.
        self._driver = (
            driver
            if driver is not None and not on_replica(session) and not session.in_transaction()
            else None
        )
        # Semantic and hybrid match sets by query: the page and the facets share one.
        self._fused_sets: dict[
            int, tuple[SearchQuery, tuple[NDArray[np.bytes_], NDArray[np.float64]]]
        ] = {}
        # What the facet columns keep of a query, and the columns as this request read them.
        self._kept_sets: dict[int, tuple[SearchQuery, _Kept]] = {}
        self._read_columns: facet_index.Columns | None = None
        # Where the embeddings stood when this request first needed them (`_meaning`).
        self._meaning_version: int | None = None
        self._meaning_read = False
        self._filter_masks: dict[int, tuple[SearchQuery, NDArray[np.bool_]]] = {}

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

    async def _tsquery_text(self, language: str, query: SearchQuery) -> str:
        """The query's tsquery as PostgreSQL writes it (kept per process: the same words are
        searched again and again)."""
        key = (language, query.text, query.corrections)
        found = _tsqueries.get(key)
        if found is None:
            found = str(
                await self.session.scalar(select(cast(self._tsquery(language, query), Text))) or ""
            )
            if len(_tsqueries) >= 4096:
                _tsqueries.clear()
            _tsqueries[key] = found
        return found

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

    async def _fused(
        self, query: SearchQuery, language: str
    ) -> tuple[NDArray[np.bytes_], NDArray[np.float64]]:
        """The semantic or hybrid match set, as ids (sixteen raw bytes each) and ranks, worked
        out once per query.

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
        # Kept with the columns under the embeddings' version, like the counts.
        remembered = None
        if self._read_columns is not None and self.keeps_counts(query):
            remembered = ("fused", self._answer_key(query, language))
            kept: tuple[NDArray[np.bytes_], NDArray[np.float64]] | None
            kept = self._read_columns.recall(remembered)
            if kept is not None:
                self._fused_sets[id(query)] = (query, kept)
                return kept
        tree = None
        if semantic.mode == "hybrid" and self._read_columns is not None:
            tree = words.parse(await self._tsquery_text(language, query))
        if tree is not None:
            result = await self._fused_in_memory(query, language, tree)
            self._fused_sets[id(query)] = (query, result)
            if remembered is not None:
                self._held().remember(remembered, result)
            return result
        rows: Sequence[Sequence[Any]]
        if semantic.mode == "semantic":
            rows = await self._nearest(query, semantic)
        else:
            nearest = nearest_materials(semantic.vector, semantic.candidates, query.category_ids)
            related = nearest.c.similarity >= semantic.min_similarity
            matched = self._text_matched(query, language)
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
        result = (
            np.array([row[0].bytes for row in rows], dtype="S16"),
            np.array([float(row[1]) for row in rows], dtype=np.float64),
        )
        self._fused_sets[id(query)] = (query, result)
        if remembered is not None:
            self._held().remember(remembered, result)
        return result

    async def _nearest(
        self, query: SearchQuery, semantic: SemanticQuery
    ) -> Sequence[Sequence[Any]]:
        """The nearest materials by meaning, alike enough, most alike first: (id, similarity)."""
        params = {
            "query_vector": _vector_text(semantic.vector),
            "how_many": semantic.candidates,
            "category_ids": query.category_ids,
            "min_similarity": semantic.min_similarity,
        }
        return await self._fixed_rows(_NEAREST_FOUND, params, query.organization_id)

    async def _best_by_words(
        self, query: SearchQuery, language: str, tree: words.Node
    ) -> NDArray[np.bytes_]:
        """The ids of the words' best `HYBRID_TEXT_WINDOW` matches that the filters keep,
        highest rank first (equal ranks by id): hybrid's list by words. It depends on
        the catalog alone, so it is kept with the columns until they change (not from the
        replica, where a filter may ask the database a moment behind them)."""
        columns = self._held()
        remembered = ("best by words", _words_key(query, language))
        keep = not on_replica(self.session)
        found: NDArray[np.bytes_] | None = columns.recall(remembered) if keep else None
        if found is not None:
            return found
        slots, ranks = await self._matched_in_memory(query, tree)
        best = best_ranked(columns.slot_ids[slots], ranks, HYBRID_TEXT_WINDOW)
        if keep:
            columns.remember(remembered, best)
        return best

    async def _fused_in_memory(
        self,
        query: SearchQuery,
        language: str,
        tree: words.Node,
    ) -> tuple[NDArray[np.bytes_], NDArray[np.float64]]:
        """Hybrid's fusion with the words' best matches taken from the postings in memory:
        the same lists (the words' in rank order, filters applied first; the nearest by
        meaning in similarity order), fused by the same reciprocal rank."""
        semantic = query.semantic
        assert semantic is not None
        by_words = await self._best_by_words(query, language, tree)
        nearest = await self._nearest(query, semantic)
        by_meaning = np.array([row[0].bytes for row in nearest], dtype="S16")
        # Each list's ids with 1 / (k + position); an id in both lists adds the two up.
        k = float(semantic.rrf_k)
        both = np.concatenate([by_words, by_meaning])
        shares = np.concatenate(
            [1.0 / (k + np.arange(1, len(ranking) + 1)) for ranking in (by_words, by_meaning)]
        )
        fused, where = np.unique(both, return_inverse=True)
        summed = np.bincount(where, weights=shares, minlength=len(fused))
        return fused, summed.astype(np.float64, copy=False)

    async def _matches(self, query: SearchQuery, language: str) -> Any:
        """The semantic or hybrid match set `_fused` worked out, as a derived table (id, rank);
        None without words (full-text matches are paged by `_ranked_page` or `_text_page`)."""
        if not query.text:
            return None
        ids, ranks = await self._fused(query, language)
        return (
            func.unnest(
                bindparam(
                    "fused_ids",
                    [facet_index.as_uuid(each) for each in ids],
                    type_=ARRAY(Uuid()),
                    unique=True,
                ),
                bindparam(
                    "fused_ranks", ranks.tolist(), type_=ARRAY(DOUBLE_PRECISION), unique=True
                ),
            )
            .table_valued("id", "rank")
            .render_derived(name="matches")
        )

    def _text_matched(self, query: SearchQuery, language: str) -> Any:
        """Full-text matches, ranked, with their filterable columns."""
        assert query.text is not None
        tsquery = self._tsquery(language, query)
        function = func.kai_text_matched(tsquery, literal(True))
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
        """A page of the query's results. Once this repository has read the facet columns
        (`columns`), results by relevance (`_ranked_page`, sharing the match set with the
        facets) and browsing newest first or by price (`_browsed_page`) are chosen in memory,
        kept there until the catalog changes (`_page_key`), and only the page's materials are
        read (`_hits`); the other orders are paged in SQL."""
        worded = bool(query.text)
        if query.semantic is not None and self._read_columns is not None:
            # Answers by meaning are kept with the columns: under the embeddings' version.
            await self._meaning(query.organization_id)
        sort = sort if worded or sort != "relevance" else "newest"
        values = None
        if cursor:
            # The cursor's values checked against the sort's keys (a rank stands in for the
            # rank).
            keys = [expression for expression, _ in _sort_keys(sort, literal(0.0), Material)]
            values = decode_keyset(cursor, keys)
        kept = self._page_key(query, language, sort, limit, cursor)
        if kept is not None and (found := self._held().recall(kept)) is not None:
            page, next_cursor = found
            return await self._hits(query, language, page), next_cursor
        if self._read_columns is not None and (
            (worded and sort == "relevance") or (not worded and sort in BROWSED_IN_MEMORY)
        ):
            if worded:
                page, next_cursor = await self._ranked_page(query, language, limit, values)
            else:
                page, next_cursor = await self._browsed_page(query, sort, limit, values)
            if kept is not None:
                self._held().remember(kept, (page, next_cursor))
            return await self._hits(query, language, page), next_cursor
        tsquery = self._tsquery(language, query) if worded else None
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
        rows = (await self.session.execute(statement.add_columns(shown_image()))).all()
        hits = [
            Hit(
                material=MaterialRow(*row[: len(ROW_COLUMNS)]),
                score=float(row.rank) if tsquery is not None else None,
                name_headline=row.name_headline if tsquery is not None else None,
                description_headline=row.description_headline if tsquery is not None else None,
                shown_image=row.shown_image,
            )
            for row in rows[:limit]
        ]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([last.key0, last.key1])
        if kept is not None:
            self._held().remember(
                kept, ([(hit.material.id, hit.score) for hit in hits], next_cursor)
            )
        return hits, next_cursor

    def _page_key(
        self, query: SearchQuery, language: str, sort: str, limit: int, cursor: str | None
    ) -> tuple[Any, ...] | None:
        """What a page of the query is kept under with the columns this repository read,
        until the catalog changes (the same first pages are asked for again and again, as
        their counts are); None when it is not kept: without columns, by meaning without the
        embeddings' version (`_answer_key`), or read on the replica (a moment behind them).
        Only the page's choice and order are kept: its materials are read anew."""
        if self._read_columns is None or on_replica(self.session):
            return None
        key = self._answer_key(query, language)
        return None if key is None else ("page", key, sort, limit, cursor)

    async def _hits(
        self, query: SearchQuery, language: str, page: Sequence[tuple[uuid.UUID, float | None]]
    ) -> list[Hit]:
        """The page's materials, in the page's order, with their matches highlighted when
        the query has words."""
        if not page:
            return []
        params: dict[str, Any] = {
            "organization_id": query.organization_id,
            "page_ids": [material_id for material_id, _ in page],
        }
        statement = _ROWS_BY_IDS
        if query.text:
            statement = _PAGE_BY_IDS
            params["language"] = language
            params["tsquery"] = await self._tsquery_text(language, query)
        fields = len(ROW_COLUMNS)
        rows = {
            row[0]: row for row in await self._fixed_rows(statement, params, query.organization_id)
        }
        hits = [
            Hit(
                material=MaterialRow(*row[:fields]),
                score=rank,
                name_headline=row[fields],
                description_headline=row[fields + 1],
                shown_image=row[fields + 2],
            )
            for material_id, rank in page
            if (row := rows.get(material_id)) is not None
        ]
        return hits

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
            *ROW_COLUMNS,
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
        matched = self._text_matched(query, language)
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
            select(*ROW_COLUMNS, page.c.rank, *(expression for expression, _ in kept))
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
        """Counts of the whole match set (the rows `search` pages through), over the
        organization's columns in this process's memory (see kai.search.facet_index), which
        this repository has read (`columns`)."""
        columns = self._held()
        if query.semantic is not None:
            await self._meaning(query.organization_id)
        keep = self.keeps_counts(query)
        remembered = ("counts", self._answer_key(query, language), repr((enum_keys, numeric)))
        found: FacetRows | None = columns.recall(remembered) if keep else None
        if found is not None:
            return found
        if query.text:
            kept = (await self._kept(query, language, ranked=False)).mask()
        else:
            kept = columns.live & await self._kept_by_filters(columns, query)
        counted = _counted(columns, kept, enum_keys, numeric)
        if keep:
            columns.remember(remembered, counted)
        return counted

    def keeps_counts(self, query: SearchQuery) -> bool:
        """Whether `facets` keeps the query's counts with the columns until the catalog
        changes: the same counts are asked for again and again (browsing, each page of a
        search, the same words from many people). Those of meaning only under the version
        of the embeddings `_meaning` read (they change without the columns); on the read
        replica (a moment behind the columns), none of those, nor those that ask the database
        (words, which may be a phrase, and property filters, which may be on text)."""
        if query.semantic is not None:
            return self._meaning_version is not None
        return not (on_replica(self.session) and (query.text or query.properties))

    async def _meaning(self, organization_id: uuid.UUID) -> int | None:
        """Where the organization's text embeddings stand (`MaterialMeaningVersion`), read
        once per repository (that is, per request) before any answer by meaning is worked
        out, so that one kept under it was worked out from embeddings at least that new: by
        the columns' catch-up on the driver (`caught_up`), else here. None on the replica, or
        before the organization has any embedding."""
        if not self._meaning_read:
            self._meaning_read = True
            if not on_replica(self.session):
                rows = await self._fixed_rows(
                    _MEANING_VERSION, {"organization_id": organization_id}, organization_id
                )
                self._meaning_version = int(rows[0][0]) if rows else None
        return self._meaning_version

    def _answer_key(self, query: SearchQuery, language: str) -> tuple[Any, ...] | None:
        """What answers worked out from the query are kept under with the columns: its words
        and filters, and for answers by meaning the embeddings' version `_meaning` read (None
        without one: not kept)."""
        words = _words_key(query, language)
        semantic = query.semantic
        if semantic is None:
            return (words,)
        if self._meaning_version is None:
            return None
        return (
            words, semantic.mode, semantic.candidates, semantic.min_similarity,
            semantic.rrf_k, self._meaning_version,
        )  # fmt: skip

    async def columns(
        self, organization_id: uuid.UUID, shape: facet_index.Shape
    ) -> facet_index.Columns:
        """The organization's columns in `shape`, caught up once per repository (that is, per
        request)."""
        if self._read_columns is None or self._read_columns.shape != shape:
            self._read_columns = await facet_index.current(
                self.session, organization_id, shape=shape
            )
        return self._read_columns

    async def caught_up(self, organization_id: uuid.UUID) -> facet_index.Columns | None:
        """`facet_index.caught_up`: the columns held, caught up while the tree stands."""
        self._read_columns, standing = await facet_index.caught_up(
            self.session, organization_id, self._driver
        )
        if standing is not None and not self._meaning_read:
            # Read in the same statement, before any answer by meaning is worked out.
            self._meaning_read = True
            self._meaning_version = standing.meaning_version
        return self._read_columns

    async def _fixed_rows(
        self, statement: Select[Any], params: dict[str, Any], organization_id: uuid.UUID
    ) -> Sequence[Sequence[Any]]:
        """One of this module's fixed statements (`_PAGE_BY_IDS`): on the driver when this
        repository has it, else in the session."""
        if self._driver is None:
            rows: Sequence[Sequence[Any]] = (await self.session.execute(statement, params)).all()
            return rows
        sql, bound = _driver_text(statement)
        return await self._driver.scoped_rows(
            sql, {**bound, **params}, organization_id=organization_id
        )

    def _held(self) -> facet_index.Columns:
        """The columns `columns` read for this request."""
        if self._read_columns is None:
            raise RuntimeError("the facet columns are read (`columns`) before they are used")
        return self._read_columns

    async def _matched_in_memory(
        self, query: SearchQuery, tree: words.Node
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The slots the words match (from the postings) that the filters keep, and their
        relevance."""
        columns = self._held()
        slots, ranks = columns.matched(tree)
        kept = (await self._kept_by_filters(columns, query))[slots]
        return slots[kept], ranks[kept]

    async def _kept(self, query: SearchQuery, language: str, *, ranked: bool) -> _Kept:
        """The live materials the words match and the filters keep, with their ranks when
        `ranked`: worked out once per query (the page and the facets share it)."""
        found = self._kept_sets.get(id(query))
        if found is not None and found[0] is query and (found[1].ranked or not ranked):
            return found[1]
        columns = self._held()
        tree = None
        if query.semantic is None:
            tree = words.parse(await self._tsquery_text(language, query))
        if tree is not None:
            # Lexemes and &, |, !: answered from the postings in memory.
            slots, ranks = await self._matched_in_memory(query, tree)
            result = _Kept(columns, slots, columns.slot_ids[slots], ranks, True)
            self._kept_sets[id(query)] = (query, result)
            return result
        if query.semantic is None:
            # A phrase (or a prefix, a weight): one pass over the matches in PostgreSQL.
            packed = await self.session.scalar(
                select(func.kai_text_ranked(self._tsquery(language, query), literal(ranked)))
            )
            ids, ranks = facet_index.unpack_ranked(packed)
        else:
            ids, ranks = await self._fused(query, language)
        slots, held = columns.found(ids)
        ids, ranks = ids[held], ranks[held]
        kept = columns.live & await self._kept_by_filters(columns, query)
        keep = kept[slots]
        result = _Kept(columns, slots[keep], ids[keep], ranks[keep], ranked)
        self._kept_sets[id(query)] = (query, result)
        return result

    async def _ranked_page(
        self,
        query: SearchQuery,
        language: str,
        limit: int,
        after: list[Any] | None,
    ) -> tuple[list[tuple[uuid.UUID, float | None]], str | None]:
        """A page of full-text matches by relevance (rank, then id, both descending) chosen
        in memory among the matches' ranks; and the next page's cursor when more follow."""
        kept = await self._kept(query, language, ranked=True)
        ids, ranks = kept.ids, kept.ranks
        if after is not None:
            if any(value is None for value in after):
                raise InvalidCursor(CURSOR_HINT)
            rank, last = float(after[0]), np.array([after[1].bytes], dtype="S16")[0]
            beyond = (ranks < rank) | ((ranks == rank) & (ids < last))
            ids, ranks = ids[beyond], ranks[beyond]
        if len(ranks) > limit + 1:
            # Only those ranked at least as high as the page's last need ordering.
            floor = np.partition(ranks, len(ranks) - limit - 1)[len(ranks) - limit - 1]
            near = ranks >= floor
            ids, ranks = ids[near], ranks[near]
        order = np.lexsort((ids, ranks))[::-1][: limit + 1]
        page: list[tuple[uuid.UUID, float | None]] = [
            (facet_index.as_uuid(ids[i]), float(ranks[i])) for i in order
        ]
        if len(page) <= limit:
            return page, None
        last_id, last_rank = page[limit - 1]
        return page[:limit], encode_cursor([last_rank, last_id])

    async def _browsed_page(
        self, query: SearchQuery, sort: str, limit: int, after: list[Any] | None
    ) -> tuple[list[tuple[uuid.UUID, float | None]], str | None]:
        """A page of browsing (no words) in one of `BROWSED_IN_MEMORY`'s orders, chosen in
        memory among the live materials the filters keep, in `_sort_keys`' order (its key,
        then the id, both the same way), and the next page's cursor when more follow."""
        columns = self._held()
        slots = np.flatnonzero(columns.live & await self._kept_by_filters(columns, query))
        descending = sort != "price_asc"
        if sort == "newest":
            keys: NDArray[Any] = columns.created[slots]
        else:
            # As `_sort_keys` puts a material without a price: last.
            keys = np.nan_to_num(columns.price[slots], nan=1e15 if sort == "price_asc" else -1.0)
        # Ids (sixteen bytes each) are only gathered for the few that need them: a catalog
        # imported in one transaction shares one creation moment.
        if after is not None:
            if any(value is None for value in after):
                raise InvalidCursor(CURSOR_HINT)
            key = _micros(after[0]) if sort == "newest" else float(after[0])
            last = np.array([after[1].bytes], dtype="S16")[0]
            beyond = keys < key if descending else keys > key
            level = np.flatnonzero(keys == key)
            level_ids = columns.slot_ids[slots[level]]
            beyond[level[level_ids < last if descending else level_ids > last]] = True
            slots, keys = slots[beyond], keys[beyond]
        if len(keys) > limit + 1:
            # The page's last key, those past it, and as many as are wanted of those with
            # the last key itself, by id.
            if descending:
                edge = np.partition(keys, len(keys) - limit - 1)[len(keys) - limit - 1]
                past = np.flatnonzero(keys > edge)
            else:
                edge = np.partition(keys, limit)[limit]
                past = np.flatnonzero(keys < edge)
            level = np.flatnonzero(keys == edge)
            wanted = limit + 1 - len(past)
            if len(level) > wanted:
                level = level[extreme_ids(columns.slot_ids[slots[level]], wanted, descending)]
            near = np.concatenate((past, level))
            slots, keys = slots[near], keys[near]
        ids = columns.slot_ids[slots]
        order = np.lexsort((ids, keys))
        chosen = (order[::-1] if descending else order)[: limit + 1]
        page: list[tuple[uuid.UUID, float | None]] = [
            (facet_index.as_uuid(ids[i]), None) for i in chosen
        ]
        if len(page) <= limit:
            return page, None
        last_key = keys[chosen[limit - 1]]
        shown = _moment(int(last_key)) if sort == "newest" else float(last_key)
        return page[:limit], encode_cursor([shown, page[limit - 1][0]])

    async def _kept_by_filters(
        self, columns: facet_index.Columns, query: SearchQuery
    ) -> NDArray[np.bool_]:
        """What `_filters` keeps, over the columns; a property condition on values not held
        there (a text property) is asked of the database. Worked out once per query (a hybrid
        search's words and its facets both filter)."""
        found = self._filter_masks.get(id(query))
        if found is not None and found[0] is query:
            return found[1]
        kept = np.ones(columns.capacity, bool)
        if query.category_ids is not None:
            kept &= columns.in_categories(query.category_ids)
        if query.statuses:
            kept &= columns.single_in("status", query.statuses)
        for tag in query.tags:
            kept &= columns.tagged(tag)
        if query.supplier:
            kept &= columns.single_in("supplier", [query.supplier.lower()])
        if query.manufacturer:
            kept &= columns.single_in("manufacturer", [query.manufacturer.lower()])
        with np.errstate(invalid="ignore"):
            if query.price_min is not None:
                kept &= columns.price >= float(query.price_min)
            if query.price_max is not None:
                kept &= columns.price <= float(query.price_max)
        for alternatives in query.properties:
            met: NDArray[np.bool_] | None = np.zeros(columns.capacity, bool)
            for condition in alternatives:
                one = _condition_met(columns, condition)
                if one is None or met is None:
                    met = None
                    break
                met |= one
            if met is None:
                met = await self._met_in_database(columns, query.organization_id, alternatives)
            kept &= met
        self._filter_masks[id(query)] = (query, kept)
        return kept

    async def _met_in_database(
        self,
        columns: facet_index.Columns,
        organization_id: uuid.UUID,
        alternatives: PropertyCondition,
    ) -> NDArray[np.bool_]:
        met = [_property_filter(condition, Material) for condition in alternatives]
        packed = await self.session.scalar(
            select(func.coalesce(func.string_agg(func.uuid_send(Material.id), b""), b"")).where(
                Material.organization_id == organization_id,
                Material.deleted_at.is_(None),
                or_(*met),
            )
        )
        found = np.zeros(columns.capacity, bool)
        found[columns.slots_of(facet_index.unpack_ids(packed))] = True
        return found

    async def suggestions(
        self, organization_id: uuid.UUID, typed: str, limit: int
    ) -> tuple[list[tuple[uuid.UUID, str, float]], list[tuple[uuid.UUID, str, str, float]]]:
        """What was typed may name: the categories whose names are like it (best first), and
        materials: those whose codes start with it, then the names nearest to it (typos
        forgiven: trigram word similarity, each distinct name once, in the order of its GiST
        index) with one live material of each. One statement (`_SUGGESTIONS`)."""
        params = {"organization_id": organization_id, "typed": typed, "how_many": limit}
        rows = sorted(
            await self._fixed_rows(_SUGGESTIONS, params, organization_id),
            key=lambda row: (row[0], row[5]),
        )
        categories = [(row[1], row[2], float(row[4])) for row in rows if row[0] == 0]
        found = [(row[1], row[2], row[3], float(row[4] or 0)) for row in rows if row[0] > 0]
        return categories, found


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
        compare = COMPARISONS[condition.operator](number, condition.value)
    if condition.category_ids is not None:
        compare = and_(source.category_id.in_(condition.category_ids), compare)
    return compare


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


def _condition_met(
    columns: facet_index.Columns, condition: PropertyFilter
) -> NDArray[np.bool_] | None:
    """`_property_filter` over the columns; None when they do not hold the key's values."""
    found: NDArray[np.bool_] | None
    if condition.operator == "=":
        found = columns.holding(condition.key, condition.value)
    else:
        numbers = columns.number(condition.key)
        if numbers is None:
            return None
        with np.errstate(invalid="ignore"):
            found = COMPARISONS[condition.operator](numbers, condition.value)
    if found is not None and condition.category_ids is not None:
        found &= columns.in_categories(condition.category_ids)
    return found


def _counted(
    columns: facet_index.Columns,
    kept: NDArray[np.bool_],
    enum_keys: Sequence[str],
    numeric: Sequence[NumericFacet],
) -> FacetRows:
    """The facets of the kept materials, as the facet statement counted them."""
    found = FacetRows(total=int(kept.sum()))
    categories = np.bincount(columns.category[kept], minlength=len(columns.categories.labels))
    for code in np.flatnonzero(categories):
        if code:
            found.categories[columns.categories.labels[code]] = int(categories[code])
    column, labels = columns.single["status"]
    statuses = column[kept]
    statuses = np.bincount(statuses[statuses != facet_index.NONE], minlength=len(labels.labels))
    found.statuses = {labels.labels[c]: int(statuses[c]) for c in np.flatnonzero(statuses)}
    pairs, labels = columns.tags
    tags = pairs.counts(kept, len(labels.labels))
    ranked = sorted((-int(tags[c]), labels.labels[c]) for c in np.flatnonzero(tags))
    found.tags = [(tag, -count) for count, tag in ranked[:TOP_TAGS]]
    for key in enum_keys:
        if key not in columns.values:
            continue
        values = columns.value_counts(key, kept)
        if values:
            found.properties[key] = values
    numbers: list[tuple[str, NDArray[np.float64] | None, NumericFacet | None]] = [
        ("price", columns.price, None)
    ]
    numbers += [(f"properties.{facet.key}", columns.number(facet.key), facet) for facet in numeric]
    for name, stored, facet in numbers:
        if stored is None:
            continue
        values_kept = stored[kept]
        if facet is not None and facet.conversions:
            size = len(columns.categories.labels)
            factor, offset = np.ones(size), np.zeros(size)
            for ids, times, plus in facet.conversions:
                codes = columns.category_codes(ids)
                factor[codes], offset[codes] = times, plus
            of = columns.category[kept]
            values_kept = values_kept * factor[of] + offset[of]
        values_kept = values_kept[~np.isnan(values_kept)]
        if not len(values_kept):
            continue
        low, high = float(values_kept.min()), float(values_kept.max())
        counts = np.bincount(facet_index.buckets(values_kept, low, high), minlength=BUCKETS + 1)
        found.ranges[name] = (
            low,
            high,
            {int(b): int(counts[b]) for b in np.flatnonzero(counts) if b},
        )
    return found
