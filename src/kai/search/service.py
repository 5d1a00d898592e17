"""Search of an organization's catalog: full-text with web-search syntax, filters, facets,
highlighted snippets, and typo-tolerant suggestions."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.catalog import categories, materials, transfers
from kai.catalog.categories import CategoryView
from kai.catalog.models import Material
from kai.catalog.properties import PropertyDefinition
from kai.catalog.schemas import UnitSystem
from kai.catalog.units import UnitError, convert, preferred
from kai.config import SearchSettings
from kai.identity.actor import Actor
from kai.kit.db import scoped_transaction
from kai.kit.errors import ServiceUnavailable, Unprocessable
from kai.search import semantic
from kai.search.repository import (
    BUCKETS,
    MARK_END,
    MARK_START,
    FacetRows,
    PropertyFilter,
    SearchQuery,
    SearchRepository,
    SemanticQuery,
)
from kai.search.schemas import (
    CategoryFacet,
    FacetCount,
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
    limit: int = 20
    cursor: str | None = None
    units: UnitSystem | None = None


def _definitions(views: Sequence[CategoryView]) -> dict[str, PropertyDefinition]:
    """Every property key of the organization's schemas (the first definition of a key wins)."""
    found: dict[str, PropertyDefinition] = {}
    for view in views:
        for definition in view.effective:
            found.setdefault(definition.key, definition)
    return found


def _subtree(
    views: Sequence[CategoryView], category_id: uuid.UUID | None
) -> list[uuid.UUID] | None:
    """The category and every category under it; None when no category is asked for."""
    if category_id is None:
        return None
    return [
        view.category.id
        for view in views
        if view.category.id == category_id or category_id in view.category.path
    ]


def _filter_problem(raw: str, message: str) -> InvalidFilter:
    return InvalidFilter(
        f"`{raw}`: {message}",
        errors=[{"loc": ["query", "filter"], "msg": f"{raw}: {message}", "type": "filter"}],
    )


def parse_filter(raw: str, definitions: dict[str, PropertyDefinition]) -> list[PropertyFilter]:
    """One `filter=` value as conditions on stored (canonical) property values."""
    match = FILTER_PATTERN.fullmatch(raw.strip())
    if match is None:
        raise _filter_problem(raw, "write it as key:value, key>=number or key<=number")
    key, operator, value = match["key"], match["op"], match["value"].strip()
    definition = definitions.get(key)
    if definition is None:
        raise _filter_problem(raw, f"no category defines a property {key!r}")
    if definition.type in RANGED_TYPES:
        number = _number(raw, value, definition)
        if operator == ":":
            return [PropertyFilter(key, ">=", number), PropertyFilter(key, "<=", number)]
        return [PropertyFilter(key, operator, number)]
    if operator != ":":
        raise _filter_problem(raw, f"{key} is not a number: use {key}:value")
    if definition.type == "boolean":
        if value.lower() not in ("true", "false"):
            raise _filter_problem(raw, "use true or false")
        return [PropertyFilter(key, "=", value.lower() == "true")]
    if definition.type in ("enum", "multi_enum"):
        options = {option.lower(): option for option in definition.options or []}
        option = options.get(value.lower())
        if option is None:
            raise _filter_problem(raw, f"one of {', '.join(definition.options or [])}")
        stored: Any = [option] if definition.type == "multi_enum" else option
        return [PropertyFilter(key, "=", stored)]
    if definition.type in ("text", "colour"):
        return [PropertyFilter(key, "=", value.upper() if definition.type == "colour" else value)]
    raise _filter_problem(raw, f"{definition.type} properties cannot be filtered on")


def _number(raw: str, value: str, definition: PropertyDefinition) -> float:
    match = NUMBER_WITH_UNIT.fullmatch(value)
    if match is None:
        raise _filter_problem(raw, "expected a number, optionally with a unit (12mm, 0.5in)")
    number = float(match["number"])
    unit = match["unit"]
    if unit and definition.unit and unit != definition.unit:
        try:
            number = convert(number, unit, definition.unit)
        except UnitError as exc:
            raise _filter_problem(raw, str(exc)) from exc
    elif unit and not definition.unit:
        raise _filter_problem(raw, f"{definition.key} has no unit")
    return number


def _marked(fragment: str | None) -> str | None:
    """ts_headline's fragment, HTML-escaped, with its matches in <mark>."""
    if not fragment or MARK_START not in fragment:
        return None
    escaped = html.escape(fragment, quote=False)
    return escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


async def _prepared(
    session: AsyncSession, actor: Actor, request: SearchRequest, settings: SearchSettings
) -> tuple[SearchQuery, str, Sequence[CategoryView], dict[str, PropertyDefinition]]:
    """The request as a query (with its meaning, for semantic and hybrid search), the
    catalog's language, its categories and properties."""
    organization_id = actor.tenant_id
    # The tree from memory while its version stands (every search needs it whole).
    views = await categories.cached_categories(session, actor=actor)
    definitions = _definitions(views)
    conditions = [
        condition for raw in request.filters for condition in parse_filter(raw, definitions)
    ]
    category_ids = _subtree(views, request.category_id)
    text = request.text.strip() if request.text else None
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
    )
    language = await SearchRepository(session).language(organization_id)
    return await _with_meaning(query, request, settings), language, views, definitions


async def _with_meaning(
    query: SearchQuery, request: SearchRequest, settings: SearchSettings
) -> SearchQuery:
    """The query with its embedding, for semantic and hybrid search of words."""
    if request.mode == "fulltext" or not query.text:
        return query
    try:
        vector = await semantic.query_embeddings().embed(query.text)
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
) -> SearchResults:
    repository = SearchRepository(session)
    query, language, views, definitions = await _prepared(
        session, actor, request, settings or SearchSettings()
    )
    hits, next_cursor = await repository.search(
        query, language=language, sort=request.sort, limit=request.limit, cursor=request.cursor
    )
    units = await materials.unit_system(session, actor, request.units)
    shown = await materials.present(
        session,
        actor=actor,
        materials=[hit.material for hit in hits],
        units=units,
        schemas={view.category.id: view.effective for view in views},
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
        enum_keys = [key for key, d in definitions.items() if d.type in FACETED_TYPES]
        numeric_keys = [key for key, d in definitions.items() if d.type in RANGED_TYPES]
        rows = await repository.facets(
            query,
            language=language,
            enum_keys=enum_keys,
            numeric_keys=numeric_keys[:MAX_RANGE_FACETS],
        )
        total = rows.total
        facets = _facets(rows, views, definitions, units)
    return SearchResults(
        items=items, next_cursor=next_cursor, total=total, facets=facets, mode=request.mode
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
    query, language, _, _ = await _prepared(session, actor, request, settings or SearchSettings())
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

            async def pages(cursor: str | None) -> tuple[list[Material], str | None]:
                hits, following = await repository.search(
                    query, language=language, sort=sort, limit=EXPORT_BATCH, cursor=cursor
                )
                return [hit.material for hit in hits], following

            async for piece in transfers.export_pieces(own, actor=actor, fmt=fmt, pages=pages):
                yield piece

    return pieces()


def _facets(
    rows: FacetRows,
    views: Sequence[CategoryView],
    definitions: dict[str, PropertyDefinition],
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
    for key, counts in rows.properties.items():
        definition = definitions[key]
        order = {option: index for index, option in enumerate(definition.options or [])}
        values = sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        properties.append(
            PropertyFacet(
                key=key,
                label=definition.label,
                values=[FacetCount(value=v, label=v, count=n) for v, n in values],
            )
        )
    ranges = []
    for name, (low, high, buckets) in rows.ranges.items():
        ranged = definitions.get(name.removeprefix("properties."))
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


async def suggest(session: AsyncSession, *, actor: Actor, typed: str, limit: int) -> Suggestions:
    """Completions and corrections for a search box: materials, categories and tags."""
    organization_id = actor.tenant_id
    repository = SearchRepository(session)
    typed = typed.strip()
    found: list[Suggestion] = []
    for category_id, name, score in await repository.suggest_categories(
        organization_id, typed, limit
    ):
        found.append(Suggestion(kind="category", text=name, id=category_id, score=score))
    for material_id, name, code, score in await repository.suggest_materials(
        organization_id, typed, limit
    ):
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
    definitions = _definitions(views)
    wanted: dict[str, Any] = {}
    for raw in filters:
        for condition in parse_filter(raw, definitions):
            if condition.operator != "=":
                raise _filter_problem(raw, "similar materials are filtered by key:value only")
            wanted[condition.key] = condition.value
    return subtree, wanted or None
