"""Who did something reads the same wherever it is shown: `user:<id>` for a person,
`api_key:<id>` for a key acting on its own, in every `*_by` field and in the audit log's
`actor` (README, Conventions)."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import create_material
from tests.identity.factories import member, unique_email

pytestmark = pytest.mark.database


async def test_a_person_is_named_alike_on_everything_they_made(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    person = f"user:{owner.user.id}"

    material = await create_material(client, owner)
    url = f"/api/v1/materials/{material['id']}"
    renamed = await client.patch(url, json={"name": "Carrara honed"}, headers=owner.headers)
    versions = (await client.get(f"{url}/versions", headers=owner.headers)).json()["items"]
    invitation = await client.post(
        "/api/v1/invitations", json={"email": unique_email("guest")}, headers=owner.headers
    )
    key = await client.post(
        "/api/v1/api-keys",
        json={"name": "ERP sync", "permissions": ["materials:read", "materials:write"]},
        headers=owner.headers,
    )
    project = await client.post("/api/v1/projects", json={"name": "Lobby"}, headers=owner.headers)
    events = (await client.get("/api/v1/audit-events", headers=owner.headers)).json()["items"]

    assert (material["created_by"], renamed.json()["updated_by"]) == (person, person)
    assert [version["changed_by"] for version in versions] == [person, person]
    assert "actor_id" not in versions[0]
    assert invitation.json()["invited_by"] == person
    assert key.json()["created_by"] == person
    listed_keys = (await client.get("/api/v1/api-keys", headers=owner.headers)).json()["items"]
    assert [listed["created_by"] for listed in listed_keys] == [person]
    listed_invitations = await client.get("/api/v1/invitations", headers=owner.headers)
    assert [listed["invited_by"] for listed in listed_invitations.json()["items"]] == [person]
    assert project.json()["created_by"] == person
    created_key = next(event for event in events if event["action"] == "api_key.created")
    assert created_key["actor"] == person

    # A key acts on its own: what it makes is the key's, named by the key's id alike.
    as_key = {"Authorization": f"Bearer {key.json()['key']}"}
    by_key = await client.post(
        "/api/v1/materials",
        json={"name": "Nero Marquina", "code": "NER-100"},
        headers=as_key,
    )
    assert by_key.status_code == 201, by_key.text
    robot = f"api_key:{key.json()['id']}"
    assert by_key.json()["created_by"] == robot
    key_versions = await client.get(
        f"/api/v1/materials/{by_key.json()['id']}/versions", headers=as_key
    )
    assert [version["changed_by"] for version in key_versions.json()["items"]] == [robot]
