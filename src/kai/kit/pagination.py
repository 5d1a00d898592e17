"""Keyset pagination: stable pages over any ordered unique key, with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kai.kit.errors import BadRequest

T = TypeVar("T")
ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 200


class InvalidCursor(BadRequest):
    type, title = "invalid-cursor", "The pagination cursor is not valid"


class Page(BaseModel, Generic[ItemT]):
    """One page of results; pass `next_cursor` back as `cursor` for the next one."""

    items: list[ItemT]
    next_cursor: str | None = Field(description="Absent on the last page.")


class PageParams(BaseModel):
    cursor: str | None = None
    limit: int = 50


async def page_params(
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="`next_cursor` of the previous page, passed back unchanged.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")] = 50,
) -> PageParams:
    return PageParams(cursor=cursor, limit=limit)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "t":
            return datetime.fromisoformat(raw)
        if tag == "u":
            return uuid.UUID(raw)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise ValueError("unexpected value in cursor")


def encode_cursor(values: Sequence[Any]) -> str:
    raw = orjson.dumps([_encode_value(value) for value in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
        if not isinstance(values, list) or len(values) != width:
            raise ValueError("wrong number of values")
        return [_decode_value(value) for value in values]
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("Pass back the `next_cursor` of a previous page unchanged.") from exc


async def paginate(
    session: AsyncSession,
    statement: Select[T],
    *,
    order_by: Sequence[InstrumentedAttribute[Any]],
    params: PageParams,
    descending: bool = True,
) -> tuple[list[T], str | None]:
    """Run `statement` one page at a time, ordered by `order_by` (the last column unique)."""
    if params.cursor:
        after = decode_cursor(params.cursor, len(order_by))
        statement = statement.where(_after(order_by, after, descending))
    ordering = [column.desc() if descending else column.asc() for column in order_by]
    rows = list(
        (await session.scalars(statement.order_by(*ordering).limit(params.limit + 1))).all()
    )
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1]
    return rows, encode_cursor([getattr(last, column.key) for column in order_by])


def _after(
    columns: Sequence[InstrumentedAttribute[Any]], values: list[Any], descending: bool
) -> Any:
    """(a, b) beyond (x, y) without row-value comparison, so mixed types keep their indexes."""
    clauses = []
    for index, column in enumerate(columns):
        equal_prefix = [columns[i] == values[i] for i in range(index)]
        beyond = column < values[index] if descending else column > values[index]
        clauses.append(and_(*equal_prefix, beyond))
    return or_(*clauses)
