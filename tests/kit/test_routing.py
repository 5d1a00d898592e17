"""Routers that skip themselves for paths none of their routes could match
(`kai.kit.routing.IndexedRouter`): every request still reaches the route it would without."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from kai.kit.routing import IndexedRouter


def _app() -> tuple[FastAPI, IndexedRouter, IndexedRouter]:
    materials = IndexedRouter(prefix="/materials")

    @materials.get("")
    async def listing() -> str:
        return "materials"

    @materials.get("/{material_id}")
    async def one(material_id: str) -> str:
        return f"material {material_id}"

    anything = IndexedRouter()

    @anything.get("/{name}/about")
    async def about(name: str) -> str:
        return f"about {name}"

    organization = IndexedRouter()

    @organization.get("/organization")
    async def mine() -> str:
        return "organization"

    @organization.get("/members/{user_id}")
    async def member(user_id: str) -> str:
        return f"member {user_id}"

    app = FastAPI()
    for router in (materials, anything, organization):
        app.include_router(router, prefix="/api/v1")
    return app, materials, anything


def test_every_path_reaches_its_route() -> None:
    app, _, _ = _app()
    client = TestClient(app)
    assert client.get("/api/v1/materials").json() == "materials"
    assert client.get("/api/v1/materials/42").json() == "material 42"
    assert client.get("/api/v1/organization").json() == "organization"
    assert client.get("/api/v1/members/7").json() == "member 7"
    # A route whose path begins with a parameter is asked whatever the path.
    assert client.get("/api/v1/materials/about").json() == "material about"
    assert client.get("/api/v1/granite/about").json() == "about granite"
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_a_router_skips_a_path_none_of_its_routes_begins_with() -> None:
    _, materials, anything = _app()
    scope = {"type": "http", "path": "/api/v1/organization", "method": "GET"}
    assert materials.matches(scope) == (Match.NONE, {})
    # Its routes are not asked: a router holding a route that begins with a parameter
    # cannot tell, and is asked as FastAPI would.
    assert materials._segments() == frozenset({"materials"})
    assert anything._segments() is None
