"""HTTP routes of search."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from kai.catalog.models import MaterialStatus
from kai.catalog.schemas import UnitSystem
from kai.deps import DbSession, ReadSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.pagination import PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.search import service
from kai.search.schemas import FacetCounts, SearchMode, SearchResults, SearchSort, Suggestions

# Words typed into a search box hold no control characters (PostgreSQL refuses NUL anyway).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
FILTER = r"^[a-z][a-z0-9_]{0,62}(:|>=|<=|>|<)[^\x00-\x1f\x7f]+$"

TagText = Annotated[str, StringConstraints(max_length=50, pattern=PLAIN_TEXT)]
FilterText = Annotated[str, StringConstraints(max_length=200, pattern=FILTER)]

router = IndexedRouter(tags=["search"], responses=AUTH_RESPONSES)

MaterialsRead = Annotated[Actor, Depends(require(Permission.MATERIALS_READ))]
# The whole catalog in one response.
MaterialsExport = Annotated[
    Actor, Depends(require(Permission.MATERIALS_READ, rate_class="expensive"))
]


async def search_filters(
    q: Annotated[str | None, Query(max_length=500, pattern=PLAIN_TEXT)] = None,
    mode: Annotated[
        SearchMode,
        Query(
            description="`hybrid` (default): full-text and semantic results fused by "
            "reciprocal rank; `fulltext`: the words only; `semantic`: by meaning only (the "
            "nearest materials, at most `KAI_SEARCH__SEMANTIC_CANDIDATES`)."
        ),
    ] = "hybrid",
    sort: SearchSort = "relevance",
    category_id: Annotated[
        uuid.UUID | None, Query(description="This category and its subcategories.")
    ] = None,
    material_status: Annotated[list[MaterialStatus] | None, Query(alias="status")] = None,
    tag: Annotated[
        list[TagText] | None,
        Query(max_length=20, description="Every tag given must be present."),
    ] = None,
    supplier: Annotated[str | None, Query(max_length=200, pattern=PLAIN_TEXT)] = None,
    manufacturer: Annotated[str | None, Query(max_length=200, pattern=PLAIN_TEXT)] = None,
    price_min: Annotated[Decimal | None, Query(ge=0)] = None,
    price_max: Annotated[Decimal | None, Query(ge=0)] = None,
    filter: Annotated[
        list[FilterText] | None,
        Query(
            max_length=20,
            description="Property conditions: `finish:honed`, `thickness>=10`, "
            "`thickness<=0.5in`, `frost_resistant:true` (numbers in the property's unit "
            "unless one is given).",
        ),
    ] = None,
    facets: bool = True,
    units: UnitSystem | None = None,
) -> service.SearchRequest:
    """What to search for: the query and its filters, the search's and the export's."""
    return service.SearchRequest(
        text=q,
        mode=mode,
        sort=sort,
        category_id=category_id,
        statuses=[status.value for status in material_status or []],
        tags=[t.strip().lower() for t in tag or [] if t.strip()],
        supplier=supplier,
        manufacturer=manufacturer,
        price_min=price_min,
        price_max=price_max,
        filters=filter or [],
        facets=facets,
        units=units,
    )


Filters = Annotated[service.SearchRequest, Depends(search_filters)]


async def search_request(
    filters: Filters, page: Annotated[PageParams, Depends(page_params)]
) -> service.SearchRequest:
    return replace(filters, cursor=page.cursor, limit=page.limit)


Request = Annotated[service.SearchRequest, Depends(search_request)]


@router.get(
    "/search",
    summary="Search the catalog",
    description='`q` takes web-search syntax: `"exact phrase"`, `or`, `-excluded`. Accents and '
    "case do not matter; words are stemmed in the catalog's language. Filters narrow the "
    "matches and the facets count them.",
    responses=problem_responses(400, 422),
)
async def search(
    actor: MaterialsRead, session: ReadSession, runtime: RuntimeDep, request: Request
) -> SearchResults:
    return await service.search(
        session,
        actor=actor,
        request=request,
        settings=runtime.settings.search,
        driver=runtime.driver,
    )


@router.get(
    "/search/facets",
    summary="Count a search's matches and facets, without its results",
    description="Takes the search's query and filters. A page shows the results of "
    "`/search?facets=false` first and these counts when they come: counting every match of a "
    "common word, or of the whole catalog, takes longer than finding the first page.",
    responses=problem_responses(400, 422),
)
async def facets(
    actor: MaterialsRead, session: ReadSession, runtime: RuntimeDep, request: Filters
) -> FacetCounts:
    return await service.count(
        session,
        actor=actor,
        request=request,
        settings=runtime.settings.search,
        driver=runtime.driver,
    )


@router.get(
    "/catalog/exports",
    summary="Download the catalog, or a search result, as CSV or JSON",
    description="Takes the search's query and filters (without them: the whole catalog). "
    "Values are in the properties' own units, in the columns an import reads back.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}, "description": "The file."},
        **problem_responses(400, 422),
    },
)
async def export(
    actor: MaterialsExport,
    session: DbSession,
    runtime: RuntimeDep,
    request: Filters,
    format: Literal["csv", "json"] = "csv",
) -> StreamingResponse:
    pieces = await service.export(
        session,
        runtime.session_factory,
        actor=actor,
        request=request,
        fmt=format,
        settings=runtime.settings.search,
    )
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    return StreamingResponse(
        pieces,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="catalog.{format}"'},
    )


@router.get("/search/suggest", summary="Completions and corrections for a search box")
async def suggest(
    actor: MaterialsRead,
    session: ReadSession,
    runtime: RuntimeDep,
    q: Annotated[str, Query(min_length=1, max_length=100, pattern=PLAIN_TEXT)],
    limit: Annotated[
        int,
        Query(ge=1, le=50, description="How many suggestions, best first: a ranking, not a page."),
    ] = 10,
) -> Suggestions:
    return await service.suggest(session, actor=actor, typed=q, limit=limit, driver=runtime.driver)
