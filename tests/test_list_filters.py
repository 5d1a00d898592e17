"""A list filtered by an id that names nothing the caller can see is an empty list, not a 404.

The convention (README, Conventions): an id in the path names the resource, and one that
does not exist, or belongs to another organization, is a 404; an id in a list's query only
narrows the list.
"""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from kai.app import create_app
from kai.config import Settings
from kai.runtime import Runtime
from tests.identity.factories import member

pytestmark = pytest.mark.database


def _filters_by_id() -> list[tuple[str, str]]:
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    found = []
    for path, item in app.openapi()["paths"].items():
        operation = item.get("get")
        if operation is None or "{" in path:
            continue
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            formats = {schema.get("format")} | {
                option.get("format") for option in schema.get("anyOf", [])
            }
            if parameter["in"] == "query" and "uuid" in formats:
                found.append((path, parameter["name"]))
    return found


FILTERS = _filters_by_id()


def test_the_lists_filtered_by_id_are_found() -> None:
    assert ("/api/v1/recognitions", "project_id") in FILTERS
    assert ("/api/v1/materials", "category_id") in FILTERS


@pytest.mark.parametrize(("path", "name"), FILTERS)
async def test_a_filter_naming_nothing_gives_an_empty_list(
    runtime: Runtime, client: AsyncClient, path: str, name: str
) -> None:
    owner = await member(runtime, client)
    stranger = await member(runtime, client)
    # One of the stranger's own: as unknown to the owner as an id that names nothing.
    project = await client.post(
        "/api/v1/projects", json={"name": "Lobby"}, headers=stranger.headers
    )
    assert project.status_code == 201, project.text

    for unknown in (str(uuid.uuid4()), project.json()["id"]):
        response = await client.get(path, params={name: unknown}, headers=owner.headers)

        assert response.status_code == 200, response.text
        if response.headers["content-type"].startswith("application/json"):
            body = response.json()
            # A list answers no items; a count of one (the search's facets) counts nothing.
            if "items" in body:
                assert body["items"] == []
            else:
                assert body["total"] == 0
