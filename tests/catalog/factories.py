"""Categories and materials for tests, made through the API as a person would."""

from __future__ import annotations

import itertools
from typing import Any

from httpx import AsyncClient

from tests.identity.factories import Member

_codes = itertools.count(1)

TILE_PROPERTIES: list[dict[str, Any]] = [
    {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm",
     "minimum": 3, "maximum": 40, "required": True},
    {"key": "finish", "label": "Finish", "type": "enum",
     "options": ["polished", "honed", "brushed", "tumbled"]},
    {"key": "frost_resistant", "label": "Frost resistant", "type": "boolean"},
    {"key": "size", "label": "Size", "type": "dimensions", "unit": "mm"},
]  # fmt: skip


def unique_code(stem: str = "TL") -> str:
    return f"{stem}-{next(_codes):05d}"


async def create_category(
    client: AsyncClient,
    owner: Member,
    name: str,
    *,
    parent_id: str | None = None,
    properties: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/categories",
        json={"name": name, "parent_id": parent_id, "properties": properties or []},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_material(
    client: AsyncClient, owner: Member, *, category_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": "Carrara honed 60x60", "code": unique_code(), **fields}
    if category_id is not None:
        payload["category_id"] = category_id
    response = await client.post("/api/v1/materials", json=payload, headers=owner.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
