"""API shapes of search."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from kai.catalog.schemas import MaterialRead

SearchMode = Literal["hybrid", "fulltext", "semantic"]
SearchSort = Literal["relevance", "name", "newest", "price_asc", "price_desc"]


class Highlight(BaseModel):
    """Fragments with the matched words in `<mark>`; everything else is HTML-escaped."""

    name: str | None = None
    description: str | None = None


class SearchHit(BaseModel):
    material: MaterialRead
    score: float | None = Field(
        description="Relevance, higher is better; None when not ranked (no words). Full-text: "
        "the weighted text rank; semantic: the cosine similarity of meanings (0 to 1); "
        "hybrid: the reciprocal-rank fusion of both (1 / (k + position) summed over the two)."
    )
    highlight: Highlight


class FacetCount(BaseModel):
    value: str
    label: str
    count: int


class CategoryFacet(BaseModel):
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    count: int = Field(description="Matches in this category and its subcategories.")


class RangeBucket(BaseModel):
    minimum: float = Field(description="Inclusive.")
    maximum: float = Field(description="Exclusive, except for the last bucket.")
    count: int


class RangeFacet(BaseModel):
    key: str
    label: str
    unit: str | None
    minimum: float
    maximum: float
    buckets: list[RangeBucket]


class PropertyFacet(BaseModel):
    key: str
    label: str
    values: list[FacetCount]


class Facets(BaseModel):
    categories: list[CategoryFacet]
    tags: list[FacetCount]
    statuses: list[FacetCount]
    properties: list[PropertyFacet]
    ranges: list[RangeFacet] = Field(description="Price and numeric properties, in buckets.")


class SearchResults(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None
    total: int = Field(description="Materials matching the query and filters.")
    facets: Facets | None = Field(description="Counts for the current query and filters.")
    mode: SearchMode
    corrected_query: str | None = Field(
        default=None,
        description="The query as searched when words of it found few or no materials and "
        "were corrected to words the catalog uses (`marbel` -> `marble`): results match the "
        'corrected words as well as the typed ones ("Showing results for ..."). Null when '
        "nothing was corrected.",
    )


class FacetCounts(BaseModel):
    total: int = Field(description="Materials matching the query and filters.")
    facets: Facets = Field(description="Counts for the query and filters.")
    mode: SearchMode
    corrected_query: str | None = Field(
        default=None, description="As in the search's answer: the words searched, if corrected."
    )


class Suggestion(BaseModel):
    kind: Literal["material", "category"]
    text: str
    id: uuid.UUID | None = None
    code: str | None = None
    score: float


class Suggestions(BaseModel):
    query: str
    suggestions: list[Suggestion]


# A property value similar materials must have (`finish:honed`): the image index filters by
# containment, so no ranges.
ValueFilter = Annotated[
    str, StringConstraints(max_length=200, pattern=r"^[a-z][a-z0-9_]{0,62}:[^\x00-\x1f\x7f]+$")
]
