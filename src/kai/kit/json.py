"""Fast JSON encoding shared by responses and logs."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str)
