"""Members: nobody takes from someone who holds more, nobody gives what they lack (not even
later, by an invitation sent while they held more), and an organization keeps an owner even
when its owners remove each other at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from httpx import AsyncClient, Response

from kai.runtime import Runtime
from tests.identity.factories import Member, create_user, login, member
from tests.identity.outbox import latest_token

pytestmark = pytest.mark.database


async def custom_role(client: AsyncClient, owner: Member, key: str, permissions: list[str]) -> str:
    created = await client.post(
        "/api/v1/roles",
        json={"key": key, "name": key.title(), "permissions": permissions},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    role_id: str = created.json()["id"]
    return role_id


async def role_of(client: AsyncClient, owner: Member, person: Member) -> str | None:
    found = await client.get(f"/api/v1/members/{person.user.id}", headers=owner.headers)
    if found.status_code == 404:
        return None
    role: str = found.json()["role"]
    return role


async def owners(client: AsyncClient, someone: Member) -> list[str]:
    listed = await client.get("/api/v1/members?limit=100", headers=someone.headers)
    assert listed.status_code == 200, listed.text
    return [item["user_id"] for item in listed.json()["items"] if item["role"] == "owner"]


def refused(response: Response) -> bool:
    return response.status_code == 403 and response.headers["content-type"].startswith(
        "application/problem+json"
    )


async def test_an_admin_cannot_demote_or_remove_an_owner(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    path = f"/api/v1/members/{owner.user.id}"
    for role in ("admin", "member"):
        assert refused(await client.patch(path, json={"role": role}, headers=admin.headers))
    assert refused(await client.delete(path, headers=admin.headers))
    assert await role_of(client, owner, owner) == "owner"


async def test_a_member_manager_cannot_touch_anyone_holding_a_permission_they_lack(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization = owner.organization
    await custom_role(client, owner, "people", ["members:read", "members:manage"])
    await custom_role(client, owner, "viewer", ["members:read"])
    manager = await member(runtime, client, role="people", organization=organization)
    editor = await member(runtime, client, role="editor", organization=organization)
    admin = await member(runtime, client, role="admin", organization=organization)
    viewer = await member(runtime, client, role="viewer", organization=organization)

    # Stronger members: not demoted to a role the manager could give, not removed.
    for stronger, role in ((editor, "editor"), (admin, "admin")):
        path = f"/api/v1/members/{stronger.user.id}"
        demoted = await client.patch(path, json={"role": "viewer"}, headers=manager.headers)
        assert refused(demoted)
        assert "materials:write" in demoted.json()["detail"]
        assert refused(await client.delete(path, headers=manager.headers))
        assert await role_of(client, owner, stronger) == role
        # ... and they still work as before.
        assert (await client.get("/api/v1/materials", headers=stronger.headers)).status_code == 200

    # Someone holding no more than the manager: theirs to manage.
    path = f"/api/v1/members/{viewer.user.id}"
    promoted = await client.patch(path, json={"role": "people"}, headers=manager.headers)
    assert promoted.status_code == 200
    assert (await client.delete(path, headers=manager.headers)).status_code == 204
    assert await role_of(client, owner, viewer) is None


async def test_nobody_grants_a_role_with_permissions_they_lack(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization = owner.organization
    await custom_role(client, owner, "people", ["members:read", "members:manage"])
    await custom_role(client, owner, "viewer", ["members:read"])
    await custom_role(client, owner, "settings", ["members:read", "organization:manage"])
    await custom_role(client, owner, "rolesmith", ["members:read", "roles:manage"])
    lead_id = await custom_role(client, owner, "lead", ["members:read", "materials:write"])
    manager = await member(runtime, client, role="people", organization=organization)
    viewer = await member(runtime, client, role="viewer", organization=organization)
    settings_keeper = await member(runtime, client, role="settings", organization=organization)
    rolesmith = await member(runtime, client, role="rolesmith", organization=organization)
    admin = await member(runtime, client, role="admin", organization=organization)

    # A role given, or an invitation sent, with more than the giver holds.
    path = f"/api/v1/members/{viewer.user.id}"
    for role in ("editor", "admin", "owner", "lead"):
        assert refused(await client.patch(path, json={"role": role}, headers=manager.headers))
        invited = await client.post(
            "/api/v1/invitations",
            json={"email": f"{role}.guest@tiles.example", "role": role},
            headers=manager.headers,
        )
        assert refused(invited)
    # Only an owner makes an owner.
    assert refused(await client.patch(path, json={"role": "owner"}, headers=admin.headers))
    assert await role_of(client, owner, viewer) == "viewer"

    # The role newcomers get without an invitation is granted by whoever sets it.
    for role in ("admin", "lead"):
        changed = await client.patch(
            "/api/v1/organization", json={"default_role": role}, headers=settings_keeper.headers
        )
        assert refused(changed)
    for someone in (admin, owner):
        changed = await client.patch(
            "/api/v1/organization", json={"default_role": "owner"}, headers=someone.headers
        )
        assert refused(changed)
    settings = (await client.get("/api/v1/organization", headers=owner.headers)).json()
    assert settings["default_role"] == "member"

    # A role cannot be made to hold more than its editor, nor stripped by someone holding less.
    too_much = await client.post(
        "/api/v1/roles",
        json={"key": "mighty", "name": "Mighty", "permissions": ["members:read", "sso:manage"]},
        headers=rolesmith.headers,
    )
    assert refused(too_much)
    stripped = await client.patch(
        f"/api/v1/roles/{lead_id}",
        json={"permissions": ["members:read"]},
        headers=rolesmith.headers,
    )
    assert refused(stripped)
    roles = (await client.get("/api/v1/roles", headers=owner.headers)).json()["items"]
    [lead] = [role for role in roles if role["key"] == "lead"]
    assert sorted(lead["permissions"]) == ["materials:write", "members:read"]


async def test_any_member_may_leave_but_only_a_member_manager_removes_others(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await custom_role(client, owner, "scanner", ["recognitions:create"])
    scanner = await member(runtime, client, role="scanner", organization=owner.organization)
    colleague = await member(runtime, client, role="member", organization=owner.organization)

    # Not even `members:read`: a role too narrow to see the members list still may go.
    assert refused(
        await client.delete(f"/api/v1/members/{colleague.user.id}", headers=scanner.headers)
    )
    left = await client.delete(f"/api/v1/members/{scanner.user.id}", headers=scanner.headers)

    assert left.status_code == 204, left.text
    assert await role_of(client, owner, scanner) is None
    assert await role_of(client, owner, colleague) == "member"


async def test_a_team_manager_cannot_join_a_team_to_see_what_is_shared_with_it(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    board = await client.post("/api/v1/teams", json={"name": "Board"}, headers=owner.headers)
    assert board.status_code == 201
    board_id = board.json()["id"]
    secret = await client.post(
        "/api/v1/projects",
        json={"name": "Takeover of Rossi Stone", "team_ids": [board_id]},
        headers=owner.headers,
    )
    assert secret.status_code == 201, secret.text
    project = f"/api/v1/projects/{secret.json()['id']}"
    await custom_role(
        client, owner, "organizer", ["members:read", "teams:manage", "recognitions:read"]
    )
    organizer = await member(runtime, client, role="organizer", organization=owner.organization)
    accomplice = await member(runtime, client, role="member", organization=owner.organization)

    for someone in (organizer, accomplice):
        joined = await client.put(
            f"/api/v1/teams/{board_id}/members/{someone.user.id}", headers=organizer.headers
        )
        assert refused(joined)
    assert (await client.get(project, headers=organizer.headers)).status_code == 404
    board_members = await client.get(f"/api/v1/teams/{board_id}/members", headers=owner.headers)
    assert board_members.json()["items"] == []

    # Teams of their own they still run: they join what they create, and fill it.
    own = await client.post(
        "/api/v1/teams", json={"name": "Night shift"}, headers=organizer.headers
    )
    assert own.status_code == 201
    added = await client.put(
        f"/api/v1/teams/{own.json()['id']}/members/{accomplice.user.id}",
        headers=organizer.headers,
    )
    assert added.status_code == 204
    night_shift = await client.get(
        f"/api/v1/teams/{own.json()['id']}/members", headers=owner.headers
    )
    assert {person["user_id"] for person in night_shift.json()["items"]} == {
        str(organizer.user.id),
        str(accomplice.user.id),
    }


Race = Callable[[Member, Member], Awaitable[Response]]


async def _remove(client: AsyncClient, actor: Member, target: Member) -> Response:
    return await client.delete(f"/api/v1/members/{target.user.id}", headers=actor.headers)


async def _demote(client: AsyncClient, actor: Member, target: Member) -> Response:
    return await client.patch(
        f"/api/v1/members/{target.user.id}", json={"role": "admin"}, headers=actor.headers
    )


async def _leave(client: AsyncClient, actor: Member, target: Member) -> Response:
    return await client.delete(f"/api/v1/members/{actor.user.id}", headers=actor.headers)


@pytest.mark.parametrize("action", [_remove, _demote, _leave], ids=["remove", "demote", "leave"])
async def test_two_owners_taking_each_other_away_at_once_leave_one_owner(
    committed_runtime: Runtime,
    committed_client: AsyncClient,
    action: Callable[[AsyncClient, Member, Member], Awaitable[Response]],
) -> None:
    # Several organizations, each raced once: a lost race shows as an organization with no
    # owner at all.
    for _ in range(3):
        first = await member(committed_runtime, committed_client)
        second = await member(
            committed_runtime, committed_client, role="owner", organization=first.organization
        )
        witness = await member(
            committed_runtime, committed_client, role="admin", organization=first.organization
        )
        answers = await asyncio.gather(
            action(committed_client, first, second), action(committed_client, second, first)
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses[0] in (200, 204), statuses
        # The loser is told why: the last owner cannot go, or its own role just went (or,
        # when the winner committed before the loser's token was even checked, that token no
        # longer acts for an organization its holder is in).
        assert statuses[1] in (401, 403, 409), statuses
        assert len(await owners(committed_client, witness)) == 1


# --- invitations: a grant made later -------------------------------------------------------------


async def _invite(client: AsyncClient, headers: dict[str, str], email: str, role: str) -> None:
    invited = await client.post(
        "/api/v1/invitations", json={"email": email, "role": role}, headers=headers
    )
    assert invited.status_code == 201, invited.text


async def _link(runtime: Runtime, organization_id: uuid.UUID, email: str) -> str:
    """The token of the invitation emailed to `email` (sent now, if it is still to be sent)."""
    return await latest_token(runtime, email, "invitations/accept", organization_id=organization_id)


async def _accept(client: AsyncClient, token: str, email: str) -> Response:
    tokens = await login(client, email)
    return await client.post(
        "/api/v1/invitations/accept",
        json={"token": token},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )


async def test_an_invitation_is_worth_no_more_than_its_sender_holds_when_it_is_accepted(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization_id = owner.organization_id
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    accomplice = await create_user(runtime)
    await _invite(client, admin.headers, accomplice.email, "admin")
    link = await _link(runtime, organization_id, accomplice.email)

    # The organization takes the admin's rights away; the invitation they sent before must
    # not hand the same rights to a second address of theirs.
    demoted = await client.patch(
        f"/api/v1/members/{admin.user.id}", json={"role": "member"}, headers=owner.headers
    )
    assert demoted.status_code == 200, demoted.text
    accepted = await _accept(client, link, accomplice.email)

    assert accepted.status_code == 410
    assert accepted.headers["content-type"].startswith("application/problem+json")
    assert accepted.json()["type"].endswith("/invitation-void")
    assert "new invitation" in accepted.json()["detail"]
    outsider = await client.get(f"/api/v1/members/{accomplice.id}", headers=owner.headers)
    assert outsider.status_code == 404

    # Given the rights back, the same invitation works again: it is checked, not spent.
    restored = await client.patch(
        f"/api/v1/members/{admin.user.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert restored.status_code == 200
    assert (await _accept(client, link, accomplice.email)).status_code == 200


async def test_a_removed_members_invitations_go_with_them(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization_id = owner.organization_id
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    guest = await create_user(runtime)
    await _invite(client, admin.headers, guest.email, "editor")
    link = await _link(runtime, organization_id, guest.email)

    removed = await client.delete(f"/api/v1/members/{admin.user.id}", headers=owner.headers)
    assert removed.status_code == 204

    pending = await client.get("/api/v1/invitations", headers=owner.headers)
    assert pending.json()["items"] == []
    accepted = await _accept(client, link, guest.email)
    assert accepted.status_code == 400
    assert accepted.json()["type"].endswith("/invalid-token")


async def test_an_api_keys_invitation_is_held_to_what_its_maker_holds_now(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization_id = owner.organization_id
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    key = await client.post(
        "/api/v1/api-keys",
        json={
            "name": "Onboarding",
            "permissions": [
                "members:read",
                "members:manage",
                "materials:read",
                "recognitions:read",
                "recognitions:create",
                "models:read",
                "jobs:read",
            ],
        },
        headers=admin.headers,
    )
    assert key.status_code == 201, key.text
    guest = await create_user(runtime)
    await _invite(client, {"Authorization": f"Bearer {key.json()['key']}"}, guest.email, "member")
    link = await _link(runtime, organization_id, guest.email)

    # Its maker can no longer run recognitions, which a member can.
    demoted = await client.patch(
        f"/api/v1/members/{admin.user.id}", json={"role": "analyst"}, headers=owner.headers
    )
    assert demoted.status_code == 200
    accepted = await _accept(client, link, guest.email)

    assert accepted.status_code == 410
    assert accepted.json()["type"].endswith("/invitation-void")
