"""A name that is taken answers 409, however it is taken: spelled in another script or case,
or by another request at the same moment. The database's unique index decides, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from kai.app import create_app
from kai.config import Settings
from kai.deps import DbSession
from kai.kit.errors import Conflict
from kai.runtime import Runtime
from tests.catalog.factories import create_category
from tests.catalog.test_imports import _run_queued_import
from tests.identity.factories import member

pytestmark = pytest.mark.database


def assert_conflict(response: Response, problem_type: str) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"https://kai.dev/problems/{problem_type}"


async def test_a_team_name_with_accents_is_taken_once(
    runtime: Runtime, client: AsyncClient
) -> None:
    # Python's str.lower() and PostgreSQL's lower() disagree on "É" under the C locale: a look
    # with one before an insert checked by the other let the second create through to a 500.
    owner = await member(runtime, client)
    first = await client.post("/api/v1/teams", json={"name": "Équipe Été"}, headers=owner.headers)
    assert first.status_code == 201, first.text

    # Names compare as the database's lower() does (ASCII letters at least, in every locale).
    for name in ("Équipe Été", "ÉQUIPE Été"):
        again = await client.post("/api/v1/teams", json={"name": name}, headers=owner.headers)
        assert_conflict(again, "team-name-taken")
    other = await client.post("/api/v1/teams", json={"name": "Œuvres"}, headers=owner.headers)
    assert other.status_code == 201
    renamed = await client.patch(
        f"/api/v1/teams/{other.json()['id']}", json={"name": "ÉquIPE Été"}, headers=owner.headers
    )
    assert_conflict(renamed, "team-name-taken")
    listed = (await client.get("/api/v1/teams", headers=owner.headers)).json()["items"]
    assert sorted(team["name"] for team in listed) == ["Équipe Été", "Œuvres"]


async def test_a_category_name_with_accents_is_taken_once_among_siblings(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    first = await client.post("/api/v1/categories", json={"name": "Émaux"}, headers=owner.headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/categories", json={"name": "ÉMAUX"}, headers=owner.headers)
    assert_conflict(again, "category-name-taken")
    # Under another parent the name is free.
    nested = await client.post(
        "/api/v1/categories",
        json={"name": "Émaux", "parent_id": first.json()["id"]},
        headers=owner.headers,
    )
    assert nested.status_code == 201, nested.text
    # Moved next to its namesake, it collides.
    moved = await client.patch(
        f"/api/v1/categories/{nested.json()['id']}", json={"parent_id": None}, headers=owner.headers
    )
    assert_conflict(moved, "category-name-taken")


CREATES: dict[str, tuple[str, dict[str, Any], str]] = {
    "team": ("/api/v1/teams", {"name": "Équipe de nuit"}, "team-name-taken"),
    "role": (
        "/api/v1/roles",
        {"key": "night-shift", "name": "Night shift", "permissions": ["materials:read"]},
        "role-key-taken",
    ),
    "category": ("/api/v1/categories", {"name": "Pierre naturelle"}, "category-name-taken"),
}


@pytest.mark.parametrize("kind", sorted(CREATES))
async def test_two_creates_of_one_name_at_once_make_one_and_a_conflict(
    committed_runtime: Runtime, committed_client: AsyncClient, kind: str
) -> None:
    owner = await member(committed_runtime, committed_client)
    path, body, problem_type = CREATES[kind]

    answers = await asyncio.gather(
        *(committed_client.post(path, json=body, headers=owner.headers) for _ in range(2))
    )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 409], [answer.text for answer in answers]
    assert_conflict(max(answers, key=lambda answer: answer.status_code), problem_type)
    listed = (await committed_client.get(path, headers=owner.headers)).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert len([item for item in items if not item.get("built_in")]) == 1


async def test_adding_someone_to_a_team_twice_at_once_adds_them_once(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    owner = await member(committed_runtime, committed_client)
    colleague = await member(
        committed_runtime, committed_client, role="member", organization=owner.organization
    )
    team = await committed_client.post(
        "/api/v1/teams", json={"name": "Showroom"}, headers=owner.headers
    )
    url = f"/api/v1/teams/{team.json()['id']}/members/{colleague.user.id}"

    answers = await asyncio.gather(
        *(committed_client.put(url, headers=owner.headers) for _ in range(2))
    )

    assert [answer.status_code for answer in answers] == [204, 204]
    members = await committed_client.get(
        f"/api/v1/teams/{team.json()['id']}/members", headers=owner.headers
    )
    assert [item["user_id"] for item in members.json()["items"]] == [str(colleague.user.id)]
    events = await committed_client.get(
        "/api/v1/audit-events", params={"action": "team.member_added"}, headers=owner.headers
    )
    assert len(events.json()["items"]) == 1


class ProbeNameTaken(Conflict):
    type, title = "probe-name-taken", "A probe row has this name"
    constraints = ("uq_probe_rows_name",)


# A route that exists only to break constraints of a table of its own.
probe = APIRouter(prefix="/api/v1/_probe")


@probe.post("/rows", status_code=201)
async def add_row(body: dict[str, Any], session: DbSession) -> None:
    await session.execute(
        text("INSERT INTO probe_rows (name, code, parent) VALUES (:name, :code, :parent)"),
        {"name": body.get("name"), "code": body.get("code"), "parent": body.get("parent")},
    )


@pytest.fixture
async def probe_client(
    settings: Settings, runtime: Runtime, connection: AsyncConnection
) -> AsyncIterator[AsyncClient]:
    await connection.execute(text("CREATE TEMP TABLE probe_parents (id int PRIMARY KEY)"))
    await connection.execute(
        text(
            "CREATE TEMP TABLE probe_rows ("
            " name text CONSTRAINT uq_probe_rows_name UNIQUE,"
            " code text CONSTRAINT uq_probe_rows_code UNIQUE,"
            " parent int REFERENCES probe_parents (id))"
        )
    )
    app = create_app(settings, runtime=runtime)
    app.include_router(probe)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kai.test"
    ) as client:
        yield client


async def test_a_registered_constraint_answers_its_own_conflict(probe_client: AsyncClient) -> None:
    assert (await probe_client.post("/api/v1/_probe/rows", json={"name": "a"})).status_code == 201
    again = await probe_client.post("/api/v1/_probe/rows", json={"name": "a"})
    assert_conflict(again, "probe-name-taken")
    assert again.json()["title"] == "A probe row has this name"


async def test_an_unregistered_constraint_is_still_a_conflict_naming_nothing_internal(
    probe_client: AsyncClient,
) -> None:
    assert (await probe_client.post("/api/v1/_probe/rows", json={"code": "x"})).status_code == 201
    again = await probe_client.post("/api/v1/_probe/rows", json={"code": "x"})
    assert_conflict(again, "conflict")
    assert "uq_probe_rows_code" not in again.text
    assert "probe_rows" not in again.text


async def test_a_broken_foreign_key_stays_a_server_error(probe_client: AsyncClient) -> None:
    # Not a collision: a reference the code should have checked, so a bug to see, not a 409.
    response = await probe_client.post("/api/v1/_probe/rows", json={"parent": 7})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "probe_parents" not in response.text
    assert "foreign key" not in response.text


async def test_an_import_finds_a_material_by_a_code_with_accents_again(
    runtime: Runtime, client: AsyncClient
) -> None:
    # The import looked codes up lower-cased by Python, the index compares PostgreSQL's lower():
    # a code with a capital "É" was not found again, taken for new, and refused by the index.
    owner = await member(runtime, client)
    await create_category(client, owner, "Émaux")
    content = "code,name,category\nÉMAIL-1,Émail bleu,Émaux\n".encode()
    reports = []
    for _ in range(2):
        queued = await client.post(
            "/api/v1/catalog/imports",
            files={"file": ("catalog.csv", content, "text/csv")},
            headers=owner.headers,
        )
        assert queued.status_code == 202, queued.text
        reports.append(await _run_queued_import(runtime, owner, queued.json()["job"]["id"]))

    assert [(r["created"], r["unchanged"], r["error_count"]) for r in reports] == [
        (1, 0, 0),
        (0, 1, 0),
    ]
