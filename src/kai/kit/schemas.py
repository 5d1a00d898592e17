"""What every domain's request schemas build on: the rules a client's input meets everywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError


class RequestModel(BaseModel):
    """A request body (JSON or a multipart form): a field it does not declare is refused with a
    422 naming it, never dropped, so a misspelt `prise` cannot pass for a price left out."""

    model_config = ConfigDict(extra="forbid")


_ISO_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}")
_INSTANT_EXAMPLE = "2030-01-01T09:30:00Z"


def _instant(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    # Only the form the API writes (ISO 8601, as in the OpenAPI `date-time` format, RFC 3339):
    # a number could be seconds or milliseconds since 1970, and a time without its offset
    # could be anyone's local time. What the code itself builds arrives as a datetime.
    if not isinstance(value, datetime) and not (isinstance(value, str) and _ISO_DATE.match(value)):
        raise PydanticCustomError(
            "datetime_format",
            "Give an ISO 8601 date and time with its offset, such as {example}",
            {"example": _INSTANT_EXAMPLE},
        )
    instant: datetime = handler(value)
    if instant.utcoffset() is None:
        raise PydanticCustomError(
            "timezone_aware",
            "Give the time's offset from UTC, such as {example} or 2030-01-01T10:30:00+01:00: "
            "without one the time is ambiguous",
            {"example": _INSTANT_EXAMPLE},
        )
    return instant.astimezone(UTC)


# The one type of every datetime a client sends, in a body or a query: read in UTC.
Instant = Annotated[datetime, WrapValidator(_instant)]
