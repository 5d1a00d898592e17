"""Every list the API serves has one shape and one page size, routes added later included, so
a client writes one pager: `{items, next_cursor}`, `cursor` and `limit` (default 50)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from kai.app import create_app
from kai.config import Settings
from kai.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, encode_cursor
from kai.runtime import Runtime
from tests.identity.factories import member
from tests.pages import every_page

# Query parameters that say how many items come back.
SIZE_PARAMETERS = {"limit", "k", "top", "top_k", "n", "count", "size", "page_size", "per_page"}

# Rankings, not lists of a collection: "the best N", whole in one answer, without a cursor,
# with a default of their own. Adding one here is a decision, reviewed as such.
RANKINGS = {
    # Completions for a search box as it is typed: the best ten.
    ("GET", "/api/v1/search/suggest", "limit"),
    # "More like this": the k materials that look most alike.
    ("GET", "/api/v1/materials/{material_id}/similar", "k"),
    # The review queue: the photos most worth a label now, ranked with near-identical ones
    # spread out; the ranking changes with every label, so there is nothing to page through.
    ("GET", "/api/v1/review-queue", "top"),
}

# Lists that answered bare arrays before there was one shape.
ONCE_ARRAYS = {
    "/api/v1/categories",
    "/api/v1/roles",
    "/api/v1/teams/{team_id}/members",
    "/api/v1/me/organizations",
    "/api/v1/materials/{material_id}/images",
    "/api/v1/models",
    "/api/v1/backbones",
    "/api/v1/catalog/near-duplicates",
    "/api/v1/recognition-batches/{batch_id}/results",
}


def _document() -> dict[str, Any]:
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    return app.openapi()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _answers(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Each GET route's 200 JSON schemas, resolved, with the route's path and operation."""
    found = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        for media, content in operation["responses"].get("200", {}).get("content", {}).items():
            if media == "application/json" and "schema" in content:
                found.append((path, media, _resolve(content["schema"], document)))
    return found


def _query(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}


def test_no_route_answers_a_bare_array() -> None:
    document = _document()
    bare = [path for path, _, schema in _answers(document) if schema.get("type") == "array"]
    assert bare == [], "answer a Page[...] instead"


def test_every_page_takes_a_cursor_and_the_one_page_size() -> None:
    document = _document()
    pages = set()
    for path, _, schema in _answers(document):
        fields = schema.get("properties", {})
        if "items" not in fields:
            continue
        if ("GET", path) in {(method, route) for method, route, _ in RANKINGS}:
            assert "next_cursor" not in fields
            continue
        assert "next_cursor" in fields, f"{path}: items without next_cursor"
        parameters = _query(document["paths"][path]["get"])
        assert {"cursor", "limit"} <= set(parameters), f"{path}: take page_params"
        pages.add(path)
    # The walk reached the lists that once answered bare arrays.
    assert pages >= ONCE_ARRAYS


def test_every_page_size_has_the_one_default() -> None:
    document = _document()
    sizes = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for name, parameter in _query(operation).items():
                if name in SIZE_PARAMETERS:
                    sizes[(method.upper(), path, name)] = parameter["schema"]
    assert set(sizes) >= RANKINGS, "a ranking on the list is gone: take it off the list"
    wrong = {
        f"{method} {path} {name}: default {schema.get('default')}, at most {schema.get('maximum')}"
        for (method, path, name), schema in sizes.items()
        if (method, path, name) not in RANKINGS
        and (schema.get("default"), schema.get("maximum")) != (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    }
    assert wrong == set()


@pytest.mark.database
async def test_every_list_pages_through_the_same_items_as_one_big_page(
    runtime: Runtime, client: AsyncClient, session: AsyncSession
) -> None:
    # One resource of each kind by path parameter (twice: lists of two at least).
    from tests.identity.test_tenancy import _resources_of

    owner = await member(runtime, client)
    await _resources_of(runtime, session, owner)
    resources = await _resources_of(runtime, session, owner)
    document = _document()

    walked = set()
    for path, _, schema in _answers(document):
        if "next_cursor" not in schema.get("properties", {}):
            continue
        url = path.format(**{name: resources[name] for name in re.findall(r"{(\w+)}", path)})
        whole = await client.get(url, params={"limit": MAX_PAGE_SIZE}, headers=owner.headers)
        assert whole.status_code == 200, f"{url}: {whole.text}"
        assert whole.json()["next_cursor"] is None

        pages = await every_page(client, url, headers=owner.headers, limit=1)
        paged = [item for page in pages for item in page]
        assert paged == whole.json()["items"], url
        # A cursor not made by the list (garbled, or keys of the wrong kind) is a 400.
        for forged in ["abc", *(encode_cursor(["x"] * width) for width in range(1, 5))]:
            refused = await client.get(url, params={"cursor": forged}, headers=owner.headers)
            assert refused.status_code == 400, f"{url} {forged}: {refused.text}"
            assert refused.json()["type"].endswith("/invalid-cursor"), refused.text
        walked.add(path)
    assert walked >= ONCE_ARRAYS
