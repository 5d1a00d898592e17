"""Keyset pagination: stable pages over any ordered unique key, with opaque cursors.

Every list the API serves is a `Page` (`items`, `next_cursor`) taking `cursor` and `limit`
(default `DEFAULT_PAGE_SIZE`, at most `MAX_PAGE_SIZE`), so a client writes one pager.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kai.kit.errors import BadRequest

T = TypeVar("T")
ItemT = TypeVar("ItemT")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
CURSOR_HINT = "Pass back the `next_cursor` of a previous page unchanged."


class InvalidCursor(BadRequest):
    type, title = "invalid-cursor", "The pagination cursor is not valid"


class Page(BaseModel, Generic[ItemT]):
    """One page of results; pass `next_cursor` back as `cursor` for the next one."""

    items: list[ItemT]
    next_cursor: str | None = Field(description="Absent on the last page.")


class PageParams(BaseModel):
    cursor: str | None = None
    limit: int = DEFAULT_PAGE_SIZE


async def page_params(
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="`next_cursor` of the previous page, passed back unchanged.",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    ] = DEFAULT_PAGE_SIZE,
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
        if not isinstance(raw, str):
            raise ValueError("a tagged value is written as text")
        if tag == "t":
            moment = datetime.fromisoformat(raw)
            # Every moment a list orders by has its offset, and so has every cursor written.
            if moment.tzinfo is None:
                raise ValueError("a moment without its offset")
            return moment
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
        raise InvalidCursor(CURSOR_HINT) from exc


def decode_keyset(
    cursor: str, columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]]
) -> list[Any]:
    """The cursor's values, each of its column's type: another is no cursor of this list."""
    values = decode_cursor(cursor, len(columns))
    for column, value in zip(columns, values, strict=True):
        try:
            expected: Any = column.type.python_type
        except NotImplementedError:  # a type without a Python counterpart: the database says
            continue
        if expected is float:
            expected = (int, float)
        if value is not None and not isinstance(value, expected):
            raise InvalidCursor(CURSOR_HINT)
    return values


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
        after = decode_keyset(params.cursor, order_by)
        statement = statement.where(after_clause(order_by, after, descending=descending))
    ordering = [column.desc() if descending else column.asc() for column in order_by]
    rows = list(
        (await session.scalars(statement.order_by(*ordering).limit(params.limit + 1))).all()
    )
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1]
    return rows, encode_cursor([getattr(last, column.key) for column in order_by])


def after_clause(
    columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
    values: Sequence[Any],
    *,
    descending: bool,
) -> ColumnElement[bool]:
    """(a, b) beyond (x, y) without row-value comparison, so mixed types keep their indexes."""
    clauses = []
    for index, column in enumerate(columns):
        equal_prefix = [columns[i] == values[i] for i in range(index)]
        beyond = column < values[index] if descending else column > values[index]
        clauses.append(and_(*equal_prefix, beyond))
    return or_(*clauses)


def paginate_sequence(
    items: Sequence[T], *, key: Callable[[T], tuple[Any, ...]], params: PageParams
) -> tuple[list[T], str | None]:
    """One page of a list held in memory, in the ascending order of `key` (unique per item,
    made of values a cursor carries: numbers, strings, UUIDs, datetimes)."""
    ordered = sorted(items, key=key)
    if params.cursor and ordered:
        after = tuple(decode_cursor(params.cursor, len(key(ordered[0]))))
        try:
            ordered = [item for item in ordered if key(item) > after]
        except TypeError as exc:  # values of other types than the keys': not our cursor
            raise InvalidCursor(CURSOR_HINT) from exc
    if len(ordered) <= params.limit:
        return ordered, None
    page = ordered[: params.limit]
    return page, encode_cursor(list(key(page[-1])))


async def paginate_chained(
    fixed: Sequence[T],
    *,
    key: Callable[[T], str],
    then: Callable[[PageParams], Awaitable[tuple[Sequence[T], str | None]]],
    params: PageParams,
) -> tuple[list[T], str | None]:
    """One page of a list that starts with items defined in code (`fixed`, in their order,
    each with a unique `key`) and goes on with stored ones, which `then` pages through."""
    part, position = decode_cursor(params.cursor, 2) if params.cursor else ("fixed", None)
    if part == "stored" and isinstance(position, str):
        rows, following = await then(PageParams(cursor=position, limit=params.limit))
        return list(rows), encode_cursor(["stored", following]) if following else None
    keys = [key(item) for item in fixed]
    if part != "fixed" or (position is not None and position not in keys):
        raise InvalidCursor(CURSOR_HINT)
    start = 0 if position is None else keys.index(position) + 1
    taken = list(fixed[start : start + params.limit])
    if len(taken) == params.limit:
        beyond = start + params.limit < len(fixed)
        more = beyond or bool((await then(PageParams(limit=1)))[0])
        return taken, encode_cursor(["fixed", key(taken[-1])]) if more else None
    rows, following = await then(PageParams(limit=params.limit - len(taken)))
    return [*taken, *rows], encode_cursor(["stored", following]) if following else None
