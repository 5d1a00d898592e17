"""Search of an organization's catalog: full-text with web-search syntax, filters, facets,
highlighted snippets, and typo-tolerant suggestions."""

from __future__ import annotations

import dataclasses
import functools
import html
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.catalog import categories, materials, transfers
from kai.catalog.categories import CategoryView
from kai.catalog.models import MaterialRow
from kai.catalog.properties import PropertyDefinition
from kai.catalog.schemas import UnitSystem
from kai.catalog.settings import DEFAULT_LANGUAGE
from kai.catalog.units import UnitError, convert, preferred
from kai.config import SearchSettings
from kai.identity.actor import Actor
from kai.kit.db import scoped_transaction
from kai.kit.driver import Driver
from kai.kit.errors import ServiceUnavailable, Unprocessable
from kai.kit.pagination import DEFAULT_PAGE_SIZE
from kai.kit.replica import on_replica
from kai.search import facet_index, semantic, spelling
from kai.search.repository import (
    BUCKETS,
    MARK_END,
    MARK_START,
    FacetRows,
    NumericFacet,
    PropertyCondition,
    PropertyFilter,
    SearchQuery,
    SearchRepository,
    SemanticQuery,
)
from kai.search.schemas import (
    CategoryFacet,
    FacetCount,
    FacetCounts,
    Facets,
    Highlight,
    PropertyFacet,
    RangeBucket,
    RangeFacet,
    SearchHit,
    SearchMode,
    SearchResults,
    SearchSort,
    Suggestion,
    Suggestions,
)

log = structlog.get_logger(__name__)

# `finish:honed`, `thickness>=10`, `thickness<0.5in`, `frost_resistant:true`.
FILTER_PATTERN = re.compile(r"^(?P<key>[a-z][a-z0-9_]{0,62})(?P<op>:|>=|<=|>|<)(?P<value>.+)$")
NUMBER_WITH_UNIT = re.compile(r"^\s*(?P<number>-?\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z%/0-9_]*)\s*$")
FACETED_TYPES = frozenset({"enum", "multi_enum", "boolean"})
RANGED_TYPES = frozenset({"number", "integer"})
MAX_RANGE_FACETS = 8
EXPORT_BATCH = 1000


class InvalidFilter(Unprocessable):
    type, title = "invalid-filter", "A search filter cannot be applied"


class SemanticSearchUnavailable(ServiceUnavailable):
    type, title = "semantic-search-unavailable", "The language model is not installed"


@dataclass(frozen=True)
class SearchRequest:
    text: str | None
    mode: SearchMode
    sort: SearchSort
    category_id: uuid.UUID | None = None
    statuses: Sequence[str] = ()
    tags: Sequence[str] = ()
    supplier: str | None = None
    manufacturer: str | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    filters: Sequence[str] = field(default_factory=tuple)
    facets: bool = True
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None
    units: UnitSystem | None = None


@dataclass(frozen=True)
class PropertyKey:
    """A property key as the categories searched define it: one type and, for measures, one
    dimension across the catalog, though each category may keep it in its own unit."""

    key: str
    # Each category's effective definition of the key, in the tree's order.
    definitions: Mapping[uuid.UUID, PropertyDefinition]
    names: Mapping[uuid.UUID, str]

    @property
    def first(self) -> PropertyDefinition:
        return next(iter(self.definitions.values()))

    @functools.cached_property
    def options(self) -> list[str]:
        """Every category's options, each spelling once, in the order first met."""
        found: dict[str, None] = {}
        for definition in self.definitions.values():
            found.update(dict.fromkeys(definition.options or []))
        return list(found)

    def by_unit(self) -> dict[str | None, tuple[uuid.UUID, ...]]:
        """The categories keeping the key in each unit (the first category's unit first)."""
        groups: dict[str | None, list[uuid.UUID]] = {}
        for category_id, definition in self.definitions.items():
            groups.setdefault(definition.unit, []).append(category_id)
        return {unit: tuple(ids) for unit, ids in groups.items()}


def _keys(
    views: Sequence[CategoryView], scope: Sequence[uuid.UUID] | None = None
) -> dict[str, PropertyKey]:
    """Every property key of the categories searched (all of them when `scope` is None)."""
    wanted = None if scope is None else set(scope)
    found: dict[str, dict[uuid.UUID, PropertyDefinition]] = {}
    names = {view.category.id: view.category.name for view in views}
    for view in views:
        if wanted is not None and view.category.id not in wanted:
            continue
        for definition in view.effective:
            found.setdefault(definition.key, {})[view.category.id] = definition
    return {key: PropertyKey(key, definitions, names) for key, definitions in found.items()}


_T = TypeVar("_T")


class _Remembered:
    """What is worked out from objects that stay as they are while a cache holds them (the
    category tree of `cached_categories`, the facet index's counts), kept by those objects'
    identity and an extra key: the next search with the same objects reuses it. Callers only
    read what it returns."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._held: OrderedDict[Any, tuple[tuple[object, ...], Any]] = OrderedDict()

    def get(self, owners: tuple[object, ...], extra: Any, make: Callable[[], _T]) -> _T:
        key = (tuple(id(owner) for owner in owners), extra)
        found = self._held.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], owners, strict=True)):
            self._held.move_to_end(key)
            kept: _T = found[1]
            return kept
        made = make()
        # The owners are held too, so that no other object takes one's identity meanwhile.
        self._held[key] = (owners, made)
        self._held.move_to_end(key)
        while len(self._held) > self._most:
            self._held.popitem(last=False)
        return made


_remembered = _Remembered(1024)


def _keys_of(
    views: Sequence[CategoryView], scope: Sequence[uuid.UUID] | None
) -> dict[str, PropertyKey]:
    """`_keys`, worked out once per cached tree and scope (every search needs them, and the
    tree has hundreds of categories)."""
    wanted = tuple(scope) if scope is not None else None
    return _remembered.get((views,), ("keys", wanted), lambda: _keys(views, scope))


def _subtree(
    views: Sequence[CategoryView], category_id: uuid.UUID | None
) -> list[uuid.UUID] | None:
    """The category and every category under it; None when no category is asked for. Worked
    out once per cached tree and category (callers only read it)."""
    if category_id is None:
        return None
    return _remembered.get(
        (views,),
        ("subtree", category_id),
        lambda: [
            view.category.id
            for view in views
            if view.category.id == category_id or category_id in view.category.path
        ],
    )


def _schemas(views: Sequence[CategoryView]) -> dict[uuid.UUID, list[PropertyDefinition]]:
    """Each category's effective definitions, by id: once per cached tree."""
    return _remembered.get(
        (views,), "schemas", lambda: {view.category.id: view.effective for view in views}
    )


def _filter_problem(raw: str, message: str) -> InvalidFilter:
    return InvalidFilter(
        f"`{raw}`: {message}",
        errors=[{"loc": ["query", "filter"], "msg": f"{raw}: {message}", "type": "filter"}],
    )


def parse_filter(raw: str, keys: Mapping[str, PropertyKey]) -> list[PropertyCondition]:
    """One `filter=` value as conditions on stored values, each in its category's unit."""
    match = FILTER_PATTERN.fullmatch(raw.strip())
    if match is None:
        raise _filter_problem(raw, "write it as key:value, key>=number or key<=number")
    name, operator, value = match["key"], match["op"], match["value"].strip()
    key = keys.get(name)
    if key is None:
        raise _filter_problem(raw, f"no category searched defines a property {name!r}")
    kind = key.first.type
    if kind in RANGED_TYPES:
        numbers = _numbers(raw, value, key)
        if operator == ":":
            # Equal within float noise: 0.75 in is 19.049999999999997 mm.
            return [
                tuple(PropertyFilter(name, ">=", n - _slack(n), ids) for n, ids in numbers),
                tuple(PropertyFilter(name, "<=", n + _slack(n), ids) for n, ids in numbers),
            ]
        return [tuple(PropertyFilter(name, operator, n, ids) for n, ids in numbers)]
    if operator != ":":
        raise _filter_problem(raw, f"{name} is not a number: use {name}:value")
    if kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise _filter_problem(raw, "use true or false")
        return [(PropertyFilter(name, "=", value.lower() == "true"),)]
    if kind in ("enum", "multi_enum"):
        # Each spelling the categories use (siblings may write "Honed" and "honed").
        spellings = [option for option in key.options if option.casefold() == value.casefold()]
        if not spellings:
            raise _filter_problem(raw, f"one of {', '.join(key.options)}")
        return [
            tuple(
                PropertyFilter(name, "=", [option] if kind == "multi_enum" else option)
                for option in spellings
            )
        ]
    if kind in ("text", "colour"):
        return [(PropertyFilter(name, "=", value.upper() if kind == "colour" else value),)]
    raise _filter_problem(raw, f"{kind} properties cannot be filtered on")


def _slack(number: float) -> float:
    return max(abs(number) * 1e-9, 1e-12)


def _numbers(
    raw: str, value: str, key: PropertyKey
) -> list[tuple[float, tuple[uuid.UUID, ...] | None]]:
    """The filter's number in each unit the key is kept in, with the categories keeping it
    so (None: every category searched keeps it in one unit)."""
    match = NUMBER_WITH_UNIT.fullmatch(value)
    if match is None:
        raise _filter_problem(raw, "expected a number, optionally with a unit (12mm, 0.5in)")
    number = float(match["number"])
    unit = match["unit"]
    groups = key.by_unit()
    if not unit:
        if len(groups) > 1:
            kept = "; ".join(
                f"in {canonical} in {_named(key, ids)}" for canonical, ids in groups.items()
            )
            examples = " or ".join(f"{number:g}{canonical}" for canonical in groups)
            raise _filter_problem(raw, f"{key.key} is kept {kept}: give the unit, as {examples}")
        return [(number, None)]
    if None in groups:
        raise _filter_problem(raw, f"{key.key} has no unit")
    converted = []
    for canonical, ids in groups.items():
        try:
            shown = number if unit == canonical else convert(number, unit, str(canonical))
        except UnitError as exc:
            raise _filter_problem(raw, str(exc)) from exc
        converted.append((shown, ids if len(groups) > 1 else None))
    return converted


def _named(key: PropertyKey, ids: Sequence[uuid.UUID]) -> str:
    names = [key.names[category_id] for category_id in ids[:3]]
    return ", ".join(names) + (", ..." if len(ids) > 3 else "")


def _marked(fragment: str | None) -> str | None:
    """ts_headline's fragment, HTML-escaped, with its matches in <mark>."""
    if not fragment or MARK_START not in fragment:
        return None
    escaped = html.escape(fragment, quote=False)
    return escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


@dataclass(frozen=True)
class Prepared:
    """A request made ready: the query (with its meaning, for semantic and hybrid search),
    the catalog's language, its categories, the property keys of those searched, and the
    query as corrected when words of it were misspelt."""

    query: SearchQuery
    language: str
    views: Sequence[CategoryView]
    keys: dict[str, PropertyKey]
    corrected_text: str | None


async def _prepared(
    session: AsyncSession,
    actor: Actor,
    request: SearchRequest,
    settings: SearchSettings,
    repository: SearchRepository | None = None,
) -> Prepared:
    organization_id = actor.tenant_id
    repository = repository or SearchRepository(session)
    # The tree (every search needs it whole) and the facet columns, caught up.
    views, columns = await _tree_and_columns(session, actor, repository)
    category_ids = _subtree(views, request.category_id)
    keys = _keys_of(views, category_ids)
    conditions = [condition for raw in request.filters for condition in parse_filter(raw, keys)]
    text = request.text.strip() if request.text else None
    language = columns.language or DEFAULT_LANGUAGE
    corrected = spelling.Spelling()
    if text and request.mode != "semantic":
        corrected = await _corrected(repository, columns, language, text)
    query = SearchQuery(
        organization_id=organization_id,
        text=text or None,
        category_ids=category_ids,
        statuses=request.statuses,
        tags=request.tags,
        supplier=request.supplier,
        manufacturer=request.manufacturer,
        price_min=request.price_min,
        price_max=request.price_max,
        properties=conditions,
        corrections=corrected.corrections,
    )
    meant = corrected.corrected_text or text
    return Prepared(
        await _with_meaning(query, request, settings, meant),
        language,
        views,
        keys,
        corrected.corrected_text,
    )


async def _tree_and_columns(
    session: AsyncSession, actor: Actor, repository: SearchRepository
) -> tuple[Sequence[CategoryView], facet_index.Columns]:
    """The category tree and the organization's facet columns, caught up. Where the process
    holds both, one statement: the columns' catch-up reads the tree's version too, and the
    tree comes from memory while that version stands. Else the tree's version and the tree
    (`cached_categories`), then the columns in its shape."""
    held = await _held_tree_and_columns(actor, repository)
    if held is not None:
        return held
    views = await categories.cached_categories(session, actor=actor)
    return views, await repository.columns(actor.tenant_id, _shape(views))


async def _held_tree_and_columns(
    actor: Actor, repository: SearchRepository
) -> tuple[Sequence[CategoryView], facet_index.Columns] | None:
    """`_tree_and_columns` where the process holds both as they stand; None otherwise."""
    columns = await repository.caught_up(actor.tenant_id)
    if columns is None:
        return None
    views = categories.tree_at(actor.tenant_id, columns.tree_version)
    if views is None or _shape(views) != columns.shape:
        return None
    return views, columns


async def _corrected(
    repository: SearchRepository, columns: facet_index.Columns, language: str, text: str
) -> spelling.Spelling:
    """The query's spelling corrections. The catalog's own words decide them: kept with the
    columns until those change (the same words are searched again and again)."""
    remembered = ("spelling", language, text)
    found: spelling.Spelling | None = columns.recall(remembered)
    if found is None:
        found = await spelling.correct(repository, language=language, text=text)
        if not on_replica(repository.session):
            columns.remember(remembered, found)
    return found


async def _with_meaning(
    query: SearchQuery, request: SearchRequest, settings: SearchSettings, meant: str | None
) -> SearchQuery:
    """The query with the embedding of what it means (the corrected words, if any), for
    semantic and hybrid search of words."""
    if request.mode == "fulltext" or not meant:
        return query
    try:
        vector = await semantic.query_embeddings().embed(meant)
    except semantic.ModelUnavailable as exc:
        if request.mode == "semantic":
            raise SemanticSearchUnavailable(str(exc)) from exc
        # Hybrid degrades to the words alone rather than failing the search.
        log.warning("search.semantic_unavailable", error=str(exc))
        return query
    meaning = SemanticQuery(
        vector=vector,
        mode=request.mode,
        candidates=settings.semantic_candidates,
        min_similarity=settings.semantic_min_similarity,
        rrf_k=settings.rrf_k,
    )
    return dataclasses.replace(query, semantic=meaning)


async def search(
    session: AsyncSession,
    *,
    actor: Actor,
    request: SearchRequest,
    settings: SearchSettings | None = None,
    driver: Driver | None = None,
) -> SearchResults:
    """A page of the request's results, with their count and facets unless it asks for none.
    `driver`: the primary's (`kai.kit.driver`), for the statements every search makes."""
    repository = SearchRepository(session, driver)
    prepared = await _prepared(session, actor, request, settings or SearchSettings(), repository)
    query, language, views = prepared.query, prepared.language, prepared.views
    hits, next_cursor = await repository.search(
        query,
        language=language,
        sort=request.sort,
        limit=request.limit,
        cursor=request.cursor,
    )
    units = await materials.unit_system(session, actor, request.units)
    shown = await materials.present(
        session,
        actor=actor,
        materials=[hit.material for hit in hits],
        units=units,
        schemas=_schemas(views),
        shown={hit.material.id: hit.shown_image for hit in hits},
    )
    items = [
        SearchHit(
            material=read,
            score=hit.score,
            highlight=Highlight(
                name=_marked(hit.name_headline), description=_marked(hit.description_headline)
            ),
        )
        for hit, read in zip(hits, shown, strict=True)
    ]
    facets = None
    total = len(items)
    if request.facets:
        total, facets = await _counted(repository, prepared, units)
    return SearchResults(
        items=items,
        next_cursor=next_cursor,
        total=total,
        facets=facets,
        mode=request.mode,
        corrected_query=prepared.corrected_text,
    )


async def _counted(
    repository: SearchRepository, prepared: Prepared, units: UnitSystem
) -> tuple[int, Facets]:
    """How many materials the query matches, and its facets' counts."""
    keys = prepared.keys
    enum_keys = [name for name, key in keys.items() if key.first.type in FACETED_TYPES]
    numeric = [_numeric_facet(key) for key in keys.values() if key.first.type in RANGED_TYPES]
    rows = await repository.facets(
        prepared.query,
        language=prepared.language,
        enum_keys=enum_keys,
        numeric=numeric[:MAX_RANGE_FACETS],
    )
    if not repository.keeps_counts(prepared.query):
        # Counts the repository did not keep: shown once.
        return rows.total, _facets(rows, prepared.views, keys, units)
    # The same counts (kept by the repository while the catalog stands) are shown the same
    # way.
    return rows.total, _remembered.get(
        (rows, prepared.views),
        ("facets", units),
        lambda: _facets(rows, prepared.views, keys, units),
    )


def _shape(views: Sequence[CategoryView]) -> facet_index.Shape:
    """The property keys the facet columns hold: any category's enum, multi_enum and boolean
    keys (counted and compared), and its numbers. Worked out once per cached tree."""
    return _remembered.get((views,), "shape", lambda: _shape_of(views))


def _shape_of(views: Sequence[CategoryView]) -> facet_index.Shape:
    faceted: set[str] = set()
    numeric: set[str] = set()
    for view in views:
        for definition in view.effective:
            if definition.type in FACETED_TYPES:
                faceted.add(definition.key)
            if definition.type in RANGED_TYPES:
                numeric.add(definition.key)
    return facet_index.Shape(tuple(sorted(faceted)), tuple(sorted(numeric)))


async def count(
    session: AsyncSession,
    *,
    actor: Actor,
    request: SearchRequest,
    settings: SearchSettings | None = None,
    driver: Driver | None = None,
) -> FacetCounts:
    """The total and the facets of a search, without its results: a page asks for these
    beside the results, so the results show without waiting for counts over every match."""
    repository = SearchRepository(session, driver)
    prepared = await _prepared(session, actor, request, settings or SearchSettings(), repository)
    units = await materials.unit_system(session, actor, request.units)
    total, facets = await _counted(repository, prepared, units)
    return FacetCounts(
        total=total,
        facets=facets,
        mode=request.mode,
        corrected_query=prepared.corrected_text,
    )


async def export(
    session: AsyncSession,
    factory: async_sessionmaker[AsyncSession],
    *,
    actor: Actor,
    request: SearchRequest,
    fmt: str,
    settings: SearchSettings | None = None,
) -> AsyncIterator[str]:
    """Every material the request matches, as CSV or JSON pieces.

    The pieces are read after the request's own transaction has ended (a response streams
    after its endpoint returns), so they come from a transaction of their own.
    """
    organization_id = actor.tenant_id
    prepared = await _prepared(session, actor, request, settings or SearchSettings())
    query, language = prepared.query, prepared.language
    sort = request.sort if query.text or request.sort != "relevance" else "name"
    described = {"q": request.text, "category_id": request.category_id}
    await transfers.record_export(
        session,
        actor=actor,
        fmt=fmt,
        description={**described, "filters": ",".join(request.filters)},
    )

    async def pieces() -> AsyncIterator[str]:
        async with scoped_transaction(factory, organization_id=organization_id) as own:
            repository = SearchRepository(own)

            async def pages(cursor: str | None) -> tuple[list[MaterialRow], str | None]:
                hits, following = await repository.search(
                    query, language=language, sort=sort, limit=EXPORT_BATCH, cursor=cursor
                )
                return [hit.material for hit in hits], following

            async for piece in transfers.export_pieces(own, actor=actor, fmt=fmt, pages=pages):
                yield piece

    return pieces()


def _numeric_facet(key: PropertyKey) -> NumericFacet:
    """A number's facet, counted in the unit of the first category keeping it: the values of
    categories keeping it in another unit are converted (`stored * factor + offset`)."""
    groups = key.by_unit()
    target = next(iter(groups))
    conversions = []
    for unit, ids in list(groups.items())[1:]:
        if unit is None or target is None:
            continue
        offset = convert(0.0, unit, target)
        conversions.append((ids, convert(1.0, unit, target) - offset, offset))
    return NumericFacet(key.key, tuple(conversions))


def _facets(
    rows: FacetRows,
    views: Sequence[CategoryView],
    keys: Mapping[str, PropertyKey],
    units: UnitSystem,
) -> Facets:
    # A category counts its own matches and those of every subcategory.
    rolled: dict[uuid.UUID, int] = {}
    by_id = {view.category.id: view.category for view in views}
    for category_id, count in rows.categories.items():
        category = by_id.get(category_id)
        if category is None:
            continue
        for member in (*category.path, category.id):
            rolled[member] = rolled.get(member, 0) + count
    category_facets = [
        CategoryFacet(
            id=view.category.id,
            name=view.category.name,
            parent_id=view.category.parent_id,
            count=rolled[view.category.id],
        )
        for view in views
        if rolled.get(view.category.id)
    ]
    properties = []
    for name, counts in rows.properties.items():
        key = keys[name]
        order = {option: index for index, option in enumerate(key.options)}
        values = sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        properties.append(
            PropertyFacet(
                key=name,
                label=key.first.label,
                values=[FacetCount(value=v, label=v, count=n) for v, n in values],
            )
        )
    ranges = []
    for name, (low, high, buckets) in rows.ranges.items():
        ranged_key = keys.get(name.removeprefix("properties."))
        ranged = ranged_key.first if ranged_key else None
        unit = ranged.unit if ranged and name != "price" else None
        shown_unit = preferred(unit, units) if unit else None

        def show(value: float, unit: str | None = unit, shown: str | None = shown_unit) -> float:
            if unit and shown and shown != unit:
                return round(convert(value, unit, shown), 3)
            return round(value, 6)

        width = (high - low) / BUCKETS if high > low else 0.0
        ranges.append(
            RangeFacet(
                key=name,
                label="Price" if name == "price" else ranged.label if ranged else name,
                unit=shown_unit,
                minimum=show(low),
                maximum=show(high),
                buckets=[
                    RangeBucket(
                        minimum=show(low + (index - 1) * width),
                        maximum=show(high if index == BUCKETS else low + index * width),
                        count=count,
                    )
                    for index, count in sorted(buckets.items())
                ],
            )
        )
    return Facets(
        categories=category_facets,
        tags=[FacetCount(value=tag, label=tag, count=count) for tag, count in rows.tags],
        statuses=[
            FacetCount(value=status, label=status, count=count)
            for status, count in sorted(rows.statuses.items())
        ],
        properties=properties,
        ranges=ranges,
    )


async def suggest(
    session: AsyncSession, *, actor: Actor, typed: str, limit: int, driver: Driver | None = None
) -> Suggestions:
    """Completions and corrections for a search box: materials, categories and tags.

    Kept with the catalog's facet columns (and category tree) until they change, where this
    process holds them for searching: search boxes send the same first letters for everyone,
    and the nearest names by trigrams cost up to tens of milliseconds of the database's time
    each. (A keystroke never reads a whole catalog into memory, and an answer read on the
    replica, a moment behind, is not kept.) `driver`: the primary's, for the columns'
    catch-up and the suggestions' one statement.
    """
    typed = typed.strip()
    organization_id = actor.tenant_id
    repository = SearchRepository(session, driver)
    held = None if on_replica(session) else await _held_tree_and_columns(actor, repository)
    if held is None:
        return await _suggested(repository, organization_id, typed, limit)
    # Columns are read whole again when the tree changes: what they keep is of their tree.
    _, columns = held
    remembered = ("suggest", typed, limit)
    found: Suggestions | None = columns.recall(remembered)
    if found is None:
        found = await _suggested(repository, organization_id, typed, limit)
        columns.remember(remembered, found)
    return found


async def _suggested(
    repository: SearchRepository, organization_id: uuid.UUID, typed: str, limit: int
) -> Suggestions:
    found: list[Suggestion] = []
    categories, named = await repository.suggestions(organization_id, typed, limit)
    for category_id, name, score in categories:
        found.append(Suggestion(kind="category", text=name, id=category_id, score=score))
    for material_id, name, code, score in named:
        found.append(Suggestion(kind="material", text=name, id=material_id, code=code, score=score))
    # Many materials share a name (sizes, finishes): each name once.
    seen: set[tuple[str, str]] = set()
    unique = []
    for suggestion in sorted(found, key=lambda suggestion: -suggestion.score):
        if suggestion.kind == "material" and (suggestion.kind, suggestion.text) in seen:
            continue
        seen.add((suggestion.kind, suggestion.text))
        unique.append(suggestion)
    return Suggestions(query=typed, suggestions=unique[:limit])


async def visual_filter(
    session: AsyncSession,
    *,
    actor: Actor,
    category_id: uuid.UUID | None,
    filters: Sequence[str],
) -> tuple[list[uuid.UUID] | None, dict[str, Any] | None]:
    """What visually similar materials must be: in a category's subtree, and with property
    values (`key:value` only: the image index filters by containment, not ranges).

    A filter narrows: a category that is not the organization's matches nothing, as every
    filter by id does (an empty list, not a 404).
    """
    if category_id is None and not filters:
        return None, None
    views = await categories.cached_categories(session, actor=actor)
    subtree = _subtree(views, category_id)
    keys = _keys(views, subtree)
    wanted: dict[str, Any] = {}
    for raw in filters:
        for alternatives in parse_filter(raw, keys):
            condition = alternatives[0]
            if condition.operator != "=" or len(alternatives) > 1:
                raise _filter_problem(
                    raw, "similar materials are filtered by key:value of a text, option or yes/no"
                )
            wanted[condition.key] = condition.value
    return subtree, wanted or None
