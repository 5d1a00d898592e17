"""Where a person is signed in: their sessions listed, and one of them ended from another."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from httpx import AsyncClient, Response

from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import PASSWORD, Member, login, member

pytestmark = pytest.mark.database

MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _sessions(client: AsyncClient, token: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/me/sessions", params=params, headers=_bearer(token))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _problem(response: Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    kind: str = response.json()["type"]
    return kind.rsplit("/", 1)[-1]


async def _login_from(client: AsyncClient, email: str, user_agent: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def _owner_on_two_devices(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> tuple[Member, dict[str, Any]]:
    """An owner signed in by a script, a minute later from a Mac (the tokens the Member
    holds), and a minute after that from an iPhone."""
    owner = await member(runtime, client)
    clock.advance(minutes=1)
    mac = await _login_from(client, owner.user.email, MAC_CHROME)
    owner.access_token, owner.refresh_token = mac["access_token"], mac["refresh_token"]
    clock.advance(minutes=1)
    phone = await _login_from(client, owner.user.email, IPHONE_SAFARI)
    return owner, phone


async def test_each_login_is_listed_and_the_calling_one_is_marked_current(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    owner, phone = await _owner_on_two_devices(runtime, client, clock)

    # The factory's own login is a third session; the newest use comes first.
    listed = await _sessions(client, owner.access_token)
    assert [item["device"] for item in listed[:2]] == ["Safari on iOS", "Chrome on macOS"]
    assert [item["current"] for item in listed] == [False, True, False]
    newest, mac = listed[0], listed[1]
    assert newest["browser"] == "Safari"
    assert newest["os"] == "iOS"
    assert newest["user_agent"] == IPHONE_SAFARI
    assert newest["methods"] == ["pwd"]
    assert newest["client_address"] == "127.0.0.1"
    assert datetime.fromisoformat(newest["last_used_at"]) > datetime.fromisoformat(
        mac["last_used_at"]
    )
    assert newest["expires_at"] > newest["created_at"]

    # From the phone, the phone is the current one.
    from_phone = await _sessions(client, phone["access_token"])
    assert [item["current"] for item in from_phone] == [True, False, False]
    assert {item["id"] for item in from_phone} == {item["id"] for item in listed}

    # A renewal makes a session the most recently used.
    clock.advance(minutes=1)
    renewed = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert renewed.status_code == 200, renewed.text
    assert (await _sessions(client, owner.access_token))[0]["id"] == mac["id"]


async def test_the_list_comes_in_pages(runtime: Runtime, client: AsyncClient, clock: Clock) -> None:
    owner, _ = await _owner_on_two_devices(runtime, client, clock)
    first = await client.get(
        "/api/v1/me/sessions", params={"limit": 2}, headers=_bearer(owner.access_token)
    )
    cursor = first.json()["next_cursor"]
    assert cursor
    rest = await _sessions(client, owner.access_token, limit=2, cursor=cursor)
    ids = [item["id"] for item in first.json()["items"] + rest]
    assert ids == [item["id"] for item in await _sessions(client, owner.access_token)]


async def test_ending_another_session_stops_its_tokens_at_once(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    phone = await _login_from(client, owner.user.email, IPHONE_SAFARI)
    other = next(s for s in await _sessions(client, owner.access_token) if not s["current"])

    ended = await client.delete(f"/api/v1/me/sessions/{other['id']}", headers=owner.headers)
    assert ended.status_code == 204, ended.text

    refused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert _problem(refused, 401) == "invalid-refresh-token"
    gone = await client.get("/api/v1/me", headers=_bearer(phone["access_token"]))
    assert _problem(gone, 401) == "not-authenticated"
    # This session goes on, renewals included.
    assert [s["current"] for s in await _sessions(client, owner.access_token)] == [True]
    renewed = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert renewed.status_code == 200, renewed.text
    # Ended is ended: a second try finds nothing.
    again = await client.delete(f"/api/v1/me/sessions/{other['id']}", headers=owner.headers)
    assert _problem(again, 404) == "session-not-found"

    log = await client.get(
        "/api/v1/audit-events", params={"action": "auth.session"}, headers=owner.headers
    )
    (event,) = log.json()["items"]
    assert event["action"] == "auth.session.ended"
    assert event["actor_id"] == str(owner.user.id)
    assert event["target_type"] == "session"
    assert event["target_id"] == other["id"]


async def test_ending_this_session_is_a_logout(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    (this,) = await _sessions(client, owner.access_token)

    ended = await client.delete(f"/api/v1/me/sessions/{this['id']}", headers=owner.headers)
    assert ended.status_code == 204, ended.text
    gone = await client.get("/api/v1/me", headers=owner.headers)
    assert _problem(gone, 401) == "not-authenticated"
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert refused.status_code == 401
    # A browser's refresh cookie goes with it.
    assert "kai_refresh=" in ended.headers.get("set-cookie", "")


async def test_another_persons_session_is_not_found(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    stranger = await member(runtime, client)
    (theirs,) = await _sessions(client, stranger.access_token)

    for session_id in (theirs["id"], str(uuid.uuid4())):
        response = await client.delete(f"/api/v1/me/sessions/{session_id}", headers=owner.headers)
        assert _problem(response, 404) == "session-not-found"
    assert (await client.get("/api/v1/me", headers=stranger.headers)).status_code == 200
    assert theirs["id"] not in {s["id"] for s in await _sessions(client, owner.access_token)}
    malformed = await client.delete("/api/v1/me/sessions/not-an-id", headers=owner.headers)
    assert malformed.status_code == 422


async def test_ended_and_expired_sessions_are_not_listed(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    owner = await member(runtime, client)
    changed = await client.patch(
        "/api/v1/organization", json={"session_lifetime_hours": 2}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    short = await login(client, owner.user.email)
    logged_out = await login(client, owner.user.email)
    assert (
        await client.post("/api/v1/auth/logout", headers=_bearer(logged_out["access_token"]))
    ).status_code == 204
    short_id = next(s["id"] for s in await _sessions(client, short["access_token"]) if s["current"])

    clock.advance(hours=2, seconds=1)
    latest = await login(client, owner.user.email)
    listed = await _sessions(client, latest["access_token"])
    # The factory's login lasts the platform's week; the two-hour one and the logout are gone.
    assert len(listed) == 2
    assert short_id not in {s["id"] for s in listed}
    expired = await client.delete(
        f"/api/v1/me/sessions/{short_id}", headers=_bearer(latest["access_token"])
    )
    assert _problem(expired, 404) == "session-not-found"

    # After logging out everywhere, a new login is the only one.
    assert (
        await client.post("/api/v1/auth/logout-everywhere", headers=_bearer(latest["access_token"]))
    ).status_code == 200
    fresh = await login(client, owner.user.email)
    assert [s["current"] for s in await _sessions(client, fresh["access_token"])] == [True]


async def test_ending_another_session_needs_a_recent_password(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    owner = await member(runtime, client)
    phone = await login(client, owner.user.email)
    other = next(s for s in await _sessions(client, owner.access_token) if not s["current"])

    clock.advance(minutes=runtime.settings.auth.step_up_minutes, seconds=1)
    refused = await client.delete(f"/api/v1/me/sessions/{other['id']}", headers=owner.headers)
    assert _problem(refused, 403) == "step-up-required"
    # Nor does it tell a stranger's id from one's own.
    unknown = await client.delete(f"/api/v1/me/sessions/{uuid.uuid4()}", headers=owner.headers)
    assert _problem(unknown, 403) == "step-up-required"
    assert (
        await client.get("/api/v1/me", headers=_bearer(phone["access_token"]))
    ).status_code == 200

    stepped_up = await client.post(
        "/api/v1/auth/step-up", json={"password": PASSWORD}, headers=owner.headers
    )
    assert stepped_up.status_code == 200, stepped_up.text
    headers = _bearer(stepped_up.json()["access_token"])
    ended = await client.delete(f"/api/v1/me/sessions/{other['id']}", headers=headers)
    assert ended.status_code == 204, ended.text


async def test_an_api_key_has_no_sessions(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "ERP sync", "permissions": ["members:read"]},
        headers=owner.headers,
    )
    key = _bearer(created.json()["key"])
    (this,) = await _sessions(client, owner.access_token)

    assert _problem(await client.get("/api/v1/me/sessions", headers=key), 403) == (
        "permission-denied"
    )
    refused = await client.delete(f"/api/v1/me/sessions/{this['id']}", headers=key)
    assert _problem(refused, 403) == "permission-denied"
    assert _problem(await client.get("/api/v1/me/sessions"), 401) == "not-authenticated"
