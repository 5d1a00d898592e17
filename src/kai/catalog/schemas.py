"""API shapes of the catalog, apart from the tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    model_validator,
)

from kai.catalog.models import MaterialStatus
from kai.catalog.properties import PropertyDefinition
from kai.identity.actor import AUTHOR
from kai.kit.money import fits_currency, format_amount, minor_digits
from kai.kit.schemas import RequestModel

UnitSystem = Literal["metric", "imperial"]
CategoryName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
MaterialName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)
]
# Codes are what ERPs and price lists key on: printable, no surrounding space.
MaterialCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
Description = Annotated[str, StringConstraints(max_length=20_000)]
CompanyName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Currency = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")
]
Price = Annotated[Decimal, Field(ge=0, le=Decimal("9999999999"), decimal_places=4)]
PRICE_INPUT = (
    "A number or a decimal string, with no more decimals than the currency has (ISO 4217: "
    "2 for EUR, 0 for JPY, 3 for KWD): finer amounts are refused, never rounded."
)
# A spreadsheet cell lists tags separated by these (the export writes them so, the import
# splits on them): a tag holding one would come back from an export as two.
TAG_SEPARATORS = (";", "|")


def _no_separator(tag: str) -> str:
    if any(separator in tag for separator in TAG_SEPARATORS):
        raise ValueError("a tag cannot contain ';' or '|': they separate tags in a CSV cell")
    return tag


Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50),
    AfterValidator(_no_separator),
    # Said in the API's document too (the check above words the refusal).
    Field(json_schema_extra={"pattern": "^[^;|]+$"}),
]


def _unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=50), AfterValidator(_unique_tags)]
PropertyValues = Annotated[dict[str, Any], Field(max_length=200)]


def _price_fits(price: Decimal | None, info: ValidationInfo) -> Decimal | None:
    """A price with more decimals than its currency has is refused, never rounded (the
    currency is declared first, so it is read by then)."""
    currency = info.data.get("currency")
    if price is not None and currency is not None and not fits_currency(price, currency):
        raise ValueError(
            f"{currency} has {minor_digits(currency)} decimals: {price} {currency} is no amount"
            " of money, and is not rounded"
        )
    return price


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- categories -----------------------------------------------------------------------------


class CategoryCreate(RequestModel):
    name: CategoryName
    parent_id: uuid.UUID | None = Field(default=None, description="None: a top-level category.")
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        default=None, description="Order among siblings; last when omitted."
    )
    properties: Annotated[list[PropertyDefinition], Field(max_length=100)] = Field(
        default_factory=list,
        description="This category's own property definitions; subcategories inherit them.",
    )


class CategoryUpdate(RequestModel):
    name: CategoryName | None = None
    parent_id: uuid.UUID | None = Field(
        default=None, description="Move under this category; `null` moves it to the top."
    )
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    properties: Annotated[list[PropertyDefinition], Field(max_length=100)] | None = Field(
        default=None, description="Replaces this category's own definitions."
    )


class CategoryRead(BaseModel):
    id: uuid.UUID
    parent_id: uuid.UUID | None
    name: str
    description: str
    position: int
    path: list[uuid.UUID] = Field(description="Ancestors' ids, the top-level one first.")
    properties: list[PropertyDefinition] = Field(description="Defined on this category.")
    effective_properties: list[PropertyDefinition] = Field(
        description="Inherited from the ancestors and defined here: what materials must follow."
    )
    created_at: datetime
    updated_at: datetime


# --- materials ------------------------------------------------------------------------------


class MaterialCreate(RequestModel):
    name: MaterialName
    code: MaterialCode = Field(description="SKU: unique among the organization's materials.")
    category_id: uuid.UUID | None = None
    description: Description = ""
    properties: PropertyValues = Field(
        default_factory=dict,
        description="Values for the category's properties; a number may be given with a unit,"
        ' as `{"value": 12, "unit": "in"}`.',
    )
    manufacturer: CompanyName = ""
    supplier: CompanyName = ""
    currency: Currency | None = Field(default=None, description="ISO 4217, with the price.")
    price: Annotated[Price | None, AfterValidator(_price_fits)] = Field(
        default=None, description=PRICE_INPUT
    )
    tags: Tags = Field(default_factory=list)
    status: MaterialStatus = MaterialStatus.DRAFT

    @model_validator(mode="after")
    def _price_has_currency(self) -> MaterialCreate:
        if (self.price is None) != (self.currency is None):
            raise ValueError("give price and currency together")
        return self


class MaterialRestore(RequestModel):
    """How a deleted material comes back."""

    code: MaterialCode | None = Field(
        default=None,
        description="A new code, for when another material has taken its own meanwhile.",
    )


class MaterialUpdate(RequestModel):
    """Only the fields sent change; in `properties`, only the keys sent (`null` removes one)."""

    name: MaterialName | None = None
    code: MaterialCode | None = None
    category_id: uuid.UUID | None = None
    description: Description | None = None
    properties: PropertyValues | None = None
    manufacturer: CompanyName | None = None
    supplier: CompanyName | None = None
    currency: Currency | None = None
    price: Annotated[Price | None, AfterValidator(_price_fits)] = Field(
        default=None, description=PRICE_INPUT
    )
    tags: Tags | None = None
    status: MaterialStatus | None = None


class MaterialRead(BaseModel):
    id: uuid.UUID
    category_id: uuid.UUID | None
    name: str
    code: str
    description: str
    properties: dict[str, Any]
    manufacturer: str
    supplier: str
    price: Decimal | None = Field(
        description="A decimal string with exactly the currency's decimals (ISO 4217): "
        "`39.90` EUR, `4500` JPY, `12.500` KWD."
    )
    currency: str | None
    tags: list[str]
    status: MaterialStatus
    version: int = Field(description="Send it back as `If-Match` to change this version only.")
    units: UnitSystem = Field(description="The unit system the properties are given in.")
    thumbnail_url: str | None = Field(
        description="The thumbnail a list shows the material by: its primary image once "
        "ready, otherwise its first ready image; null without one."
    )
    deleted_at: datetime | None
    created_by: str | None = Field(description=AUTHOR)
    updated_by: str | None = Field(description=AUTHOR)
    created_at: datetime
    updated_at: datetime

    @field_serializer("price")
    def _price_as_written(self, price: Decimal | None) -> str | None:
        return None if price is None else format_amount(price, self.currency)


class MaterialVersionRead(BaseModel):
    version: int
    action: str
    changes: dict[str, Any] = Field(
        description='Each changed field: {"old": ..., "new": ...}; a price as the material '
        "shows it, with its currency's decimals."
    )
    restored_from: int | None = Field(
        description="Set when this version restored an earlier one: that version's number.",
    )
    changed_by: str = Field(description=AUTHOR)
    changed_at: datetime


class CatalogSettingsRead(BaseModel):
    search_language: str = Field(
        description="The text-search configuration that stems the catalog's words."
    )
    available_languages: list[str] = Field(description="The configurations this server has.")
    reindex_job_id: uuid.UUID | None = Field(
        default=None,
        description="Set when a change started rewriting every material's search document.",
    )


SearchLanguage = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,63}$")]


class CatalogSettingsUpdate(RequestModel):
    search_language: SearchLanguage


class CatalogSettingsChange(RequestModel):
    """The settings sent change; the others stay as they are."""

    search_language: SearchLanguage | None = None
