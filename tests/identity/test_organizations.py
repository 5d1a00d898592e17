"""Members, roles, invitations, teams and ownership, as an administrator uses them."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from kai.identity import teams
from kai.identity.actor import Actor
from kai.identity.models import Team
from kai.identity.permissions import BUILT_IN_ROLES, Permission
from kai.kit.db import act_for
from kai.runtime import Runtime
from tests.identity.factories import create_user, login, member, unique_email
from tests.identity.outbox import latest_token
from tests.pages import every_page

pytestmark = pytest.mark.database


async def test_built_in_roles_grant_what_their_names_say(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    analyst = await member(runtime, client, role="analyst", organization=owner.organization)

    listed = (await client.get("/api/v1/members", headers=analyst.headers)).json()
    assert {item["role"] for item in listed["items"]} == {"owner", "analyst"}
    denied = await client.patch(
        f"/api/v1/members/{owner.user.id}", json={"role": "member"}, headers=analyst.headers
    )
    assert denied.status_code == 403
    assert denied.json()["type"].endswith("/permission-denied")
    assert "members:manage" in denied.json()["detail"]
    roles = (await client.get("/api/v1/roles", headers=analyst.headers)).json()["items"]
    built_in = {role["key"]: set(role["permissions"]) for role in roles if role["built_in"]}
    assert built_in == {key: {p.value for p in value} for key, value in BUILT_IN_ROLES.items()}


async def test_a_permission_denial_is_audited(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    owner = await member(committed_runtime, committed_client)
    analyst = await member(
        committed_runtime, committed_client, role="analyst", organization=owner.organization
    )
    denied = await committed_client.post(
        "/api/v1/teams", json={"name": "Sneaky"}, headers=analyst.headers
    )
    assert denied.status_code == 403
    events = await committed_client.get(
        "/api/v1/audit-events", params={"action": "access.denied"}, headers=owner.headers
    )
    [event] = events.json()["items"]
    assert event["actor_id"] == str(analyst.user.id)
    assert event["details"] == {"permission": "teams:manage", "path": "/api/v1/teams"}
    assert event["outcome"] == "failure"


async def test_custom_roles_and_no_escalation(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    created = await client.post(
        "/api/v1/roles",
        json={
            "key": "catalog-manager",
            "name": "Catalog manager",
            "permissions": ["materials:read", "materials:write", "members:read"],
        },
        headers=owner.headers,
    )
    assert created.status_code == 201
    role_id = created.json()["id"]
    editor = await member(runtime, client, role="catalog-manager", organization=owner.organization)
    me = (await client.get("/api/v1/me", headers=editor.headers)).json()
    assert set(me["permissions"]) == {"materials:read", "materials:write", "members:read"}

    # A role's change applies to its holders at their next request.
    await client.patch(
        f"/api/v1/roles/{role_id}", json={"permissions": ["materials:read"]}, headers=owner.headers
    )
    me = (await client.get("/api/v1/me", headers=editor.headers)).json()
    assert me["permissions"] == ["materials:read"]

    in_use = await client.delete(f"/api/v1/roles/{role_id}", headers=owner.headers)
    assert in_use.status_code == 409
    taken = await client.post(
        "/api/v1/roles",
        json={"key": "admin", "name": "Mine", "permissions": []},
        headers=owner.headers,
    )
    assert taken.status_code == 409
    unknown = await client.post(
        "/api/v1/roles",
        json={"key": "x", "name": "X", "permissions": ["root:everything"]},
        headers=owner.headers,
    )
    assert unknown.status_code == 422


async def test_nobody_grants_what_they_do_not_have(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await client.post(
        "/api/v1/roles",
        json={"key": "people", "name": "People", "permissions": ["members:read", "members:manage"]},
        headers=owner.headers,
    )
    await client.post(
        "/api/v1/roles",
        json={"key": "viewer", "name": "Viewer", "permissions": ["members:read"]},
        headers=owner.headers,
    )
    manager = await member(runtime, client, role="people", organization=owner.organization)
    # Someone holding no more than the manager (anyone holding more is not theirs to change).
    newcomer = await member(runtime, client, role="viewer", organization=owner.organization)

    for role in ("admin", "editor", "owner"):
        refused = await client.patch(
            f"/api/v1/members/{newcomer.user.id}", json={"role": role}, headers=manager.headers
        )
        assert refused.status_code == 403, role
    allowed = await client.patch(
        f"/api/v1/members/{newcomer.user.id}", json={"role": "people"}, headers=manager.headers
    )
    assert allowed.status_code == 200
    # An admin has every permission but still cannot make owners.
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    refused = await client.patch(
        f"/api/v1/members/{newcomer.user.id}", json={"role": "owner"}, headers=admin.headers
    )
    assert refused.status_code == 403


async def test_the_last_owner_stays_and_ownership_moves_by_transfer(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    admin = await member(runtime, client, role="admin", organization=owner.organization)

    demote = await client.patch(
        f"/api/v1/members/{owner.user.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert demote.status_code == 409
    leave = await client.delete(f"/api/v1/members/{owner.user.id}", headers=owner.headers)
    assert leave.status_code == 409
    by_admin = await client.post(
        "/api/v1/organization/transfer-ownership",
        json={"user_id": str(admin.user.id)},
        headers=admin.headers,
    )
    assert by_admin.status_code == 403

    moved = await client.post(
        "/api/v1/organization/transfer-ownership",
        json={"user_id": str(admin.user.id)},
        headers=owner.headers,
    )
    assert moved.status_code == 200
    assert moved.json()["role"] == "owner"
    me = (await client.get("/api/v1/me", headers=owner.headers)).json()
    assert me["role"] == "admin"
    # Now the former owner may leave.
    assert (
        await client.delete(f"/api/v1/members/{owner.user.id}", headers=owner.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 401


async def test_inviting_accepting_and_withdrawing(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    guest = await create_user(runtime)
    invited = await client.post(
        "/api/v1/invitations", json={"email": guest.email, "role": "editor"}, headers=owner.headers
    )
    assert invited.status_code == 201
    pending = (await client.get("/api/v1/invitations", headers=owner.headers)).json()["items"]
    assert [item["email"] for item in pending] == [guest.email]

    token = await latest_token(
        runtime, guest.email, "invitations/accept", organization_id=owner.organization_id
    )
    # The invitation is for the guest's address: someone else cannot use it.
    stranger = await member(runtime, client)
    stolen = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=stranger.headers
    )
    assert stolen.status_code == 403
    assert stolen.json()["type"].endswith("/invitation-for-another-account")
    local, domain = guest.email.split("@")
    assert f"sent to {local[0]}•••@{domain}: sign in as that account" in stolen.json()["detail"]

    tokens = await login(client, guest.email)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    # With no organization of their own yet, a 403 says which step is missing.
    nowhere = await client.get("/api/v1/materials", headers=headers)
    assert nowhere.status_code == 403
    assert nowhere.json()["type"].endswith("/organization-required")
    assert "POST /api/v1/auth/switch-organization" in nowhere.json()["detail"]
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=headers
    )
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "editor"
    # The session acts for the organization joined: its new token works there at once.
    joined = accepted.json()["tokens"]
    assert joined["organization_id"] == str(owner.organization_id)
    as_editor = {"Authorization": f"Bearer {joined['access_token']}"}
    assert (await client.get("/api/v1/members", headers=as_editor)).status_code == 200
    again = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=as_editor
    )
    assert again.status_code == 400
    members = (await client.get("/api/v1/members", headers=owner.headers)).json()["items"]
    assert {m["email"]: m["role"] for m in members}[guest.email] == "editor"

    # Inviting a member again is a conflict; a withdrawn invitation cannot be accepted.
    twice = await client.post(
        "/api/v1/invitations", json={"email": guest.email}, headers=owner.headers
    )
    assert twice.status_code == 409
    other = unique_email("later")
    sent = await client.post("/api/v1/invitations", json={"email": other}, headers=owner.headers)
    emailed = await latest_token(
        runtime, other, "invitations/accept", organization_id=owner.organization_id
    )
    withdrawn = await client.delete(
        f"/api/v1/invitations/{sent.json()['id']}", headers=owner.headers
    )
    assert withdrawn.status_code == 204
    late = await create_user(runtime, email=other)
    late_tokens = await login(client, late.email)
    refused = await client.post(
        "/api/v1/invitations/accept",
        json={"token": emailed},
        headers={"Authorization": f"Bearer {late_tokens['access_token']}"},
    )
    assert refused.status_code == 400


async def test_organization_settings(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    changed = await client.patch(
        "/api/v1/organization",
        json={
            "name": "Marble & Sons",
            "signup_policy": "email_domain",
            "allowed_email_domains": ["Marble.Example"],
            "session_lifetime_hours": 12,
        },
        headers=owner.headers,
    )
    assert changed.status_code == 200
    body = changed.json()
    assert body["name"] == "Marble & Sons"
    assert body["allowed_email_domains"] == ["marble.example"]
    assert body["session_lifetime_hours"] == 12
    for bad in (
        {"signup_policy": "anyone"},
        {"session_lifetime_hours": 0},
        {"allowed_email_domains": ["not a domain"]},
        {"default_role": "nonexistent"},
    ):
        refused = await client.patch("/api/v1/organization", json=bad, headers=owner.headers)
        assert refused.status_code in (404, 422), bad
    # null leaves a setting as it was (it was a 500), but for the session lifetime's default.
    nulls = dict.fromkeys(("name", "signup_policy", "mfa_required", "default_role"))
    kept = await client.patch(
        "/api/v1/organization",
        json={**nulls, "allowed_email_domains": None, "session_lifetime_hours": None},
        headers=owner.headers,
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["name"] == "Marble & Sons"
    assert kept.json()["allowed_email_domains"] == ["marble.example"]
    assert kept.json()["session_lifetime_hours"] is None


async def test_creating_another_organization(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    created = await client.post(
        "/api/v1/organizations", json={"name": "Second Site"}, headers=owner.headers
    )
    assert created.status_code == 201
    slug = created.json()["slug"]
    assert slug.startswith("second-site")
    taken = await client.post(
        "/api/v1/organizations", json={"name": "Again", "slug": slug}, headers=owner.headers
    )
    assert taken.status_code == 409


async def test_teams_and_their_members(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    colleague = await member(runtime, client, role="member", organization=owner.organization)
    created = await client.post(
        "/api/v1/teams",
        json={"name": "Showroom", "description": "Front of house"},
        headers=owner.headers,
    )
    assert created.status_code == 201
    team_id = created.json()["id"]
    duplicate = await client.post("/api/v1/teams", json={"name": "SHOWROOM"}, headers=owner.headers)
    assert duplicate.status_code == 409

    added = await client.put(
        f"/api/v1/teams/{team_id}/members/{colleague.user.id}", headers=owner.headers
    )
    assert added.status_code == 204
    stranger = await create_user(runtime)
    not_member = await client.put(
        f"/api/v1/teams/{team_id}/members/{stranger.id}", headers=owner.headers
    )
    assert not_member.status_code == 404
    listed = (
        await client.get(f"/api/v1/teams/{team_id}/members", headers=colleague.headers)
    ).json()["items"]
    assert [m["user_id"] for m in listed] == [str(colleague.user.id)]
    renamed = await client.patch(
        f"/api/v1/teams/{team_id}", json={"name": "Sales"}, headers=owner.headers
    )
    assert renamed.json()["name"] == "Sales"
    removed = await client.delete(
        f"/api/v1/teams/{team_id}/members/{colleague.user.id}", headers=owner.headers
    )
    assert removed.status_code == 204
    assert (
        await client.delete(f"/api/v1/teams/{team_id}", headers=owner.headers)
    ).status_code == 204
    assert (await client.get(f"/api/v1/teams/{team_id}", headers=owner.headers)).status_code == 404


async def test_resources_shared_with_teams_are_seen_by_their_members_and_admins(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    insider = await member(runtime, client, role="member", organization=owner.organization)
    outsider = await member(runtime, client, role="member", organization=owner.organization)
    organization_id = owner.organization_id
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=organization_id)
        team = Team(organization_id=organization_id, name=f"Project {uuid.uuid4().hex[:6]}")
        session.add(team)
        await session.flush()
        as_owner = Actor(
            "user", organization_id, BUILT_IN_ROLES["owner"], user_id=owner.user.id, role="owner"
        )
        await teams.add_team_member(
            session, actor=as_owner, team_id=team.id, user_id=insider.user.id
        )

        def actor(user_id: uuid.UUID, role: str) -> Actor:
            return Actor("user", organization_id, BUILT_IN_ROLES[role], user_id=user_id, role=role)

        shared = [team.id]
        assert await teams.can_see(session, actor(insider.user.id, "member"), shared)
        assert not await teams.can_see(session, actor(outsider.user.id, "member"), shared)
        assert await teams.can_see(session, as_owner, shared)
        assert await teams.can_see(session, actor(outsider.user.id, "member"), None)
        assert Permission.MATERIALS_READ in actor(outsider.user.id, "member").permissions


async def test_roles_members_and_organizations_come_in_pages_like_every_list(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    for key in ("surveyor", "buyer", "clerk"):
        created = await client.post(
            "/api/v1/roles",
            json={"key": key, "name": key.title(), "permissions": ["materials:read"]},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
    # The built-in roles first, strongest first, then the organization's own by key; a page
    # may end on the last built-in one or straddle the two.
    expected = [*BUILT_IN_ROLES, "buyer", "clerk", "surveyor"]
    for limit in (1, 2, len(BUILT_IN_ROLES), len(BUILT_IN_ROLES) + 1):
        pages = await every_page(client, "/api/v1/roles", headers=owner.headers, limit=limit)
        assert [role["key"] for page in pages for role in page] == expected
    garbled = await client.get("/api/v1/roles", params={"cursor": "abc"}, headers=owner.headers)
    assert garbled.status_code == 400
    assert garbled.json()["type"].endswith("/invalid-cursor")

    team = await client.post("/api/v1/teams", json={"name": "Showroom"}, headers=owner.headers)
    joined = []
    for _ in range(3):
        colleague = await member(runtime, client, role="member", organization=owner.organization)
        url = f"/api/v1/teams/{team.json()['id']}/members/{colleague.user.id}"
        assert (await client.put(url, headers=owner.headers)).status_code == 204
        joined.append(str(colleague.user.id))
    pages = await every_page(
        client, f"/api/v1/teams/{team.json()['id']}/members", headers=owner.headers, limit=2
    )
    assert [[m["user_id"] for m in page] for page in pages] == [joined[:2], joined[2:]]

    for name in ("Zinc Works", "Atelier Blanc"):
        created = await client.post(
            "/api/v1/organizations", json={"name": name}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
    pages = await every_page(client, "/api/v1/me/organizations", headers=owner.headers, limit=2)
    assert [[m["organization"]["name"] for m in page] for page in pages] == [
        ["Atelier Blanc", "Marble & Co"],
        ["Zinc Works"],
    ]
