"""The audit log: what it records, who may read it, and that nobody can rewrite it unseen."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.identity.audit import verify_chain
from kai.kit.db import act_for
from kai.runtime import Runtime
from tests.identity.factories import member

pytestmark = pytest.mark.database


async def test_security_events_are_recorded_with_who_where_and_which_request(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    owner = await member(committed_runtime, committed_client)
    editor = await member(
        committed_runtime, committed_client, role="editor", organization=owner.organization
    )
    refused = await committed_client.get(
        "/api/v1/audit-events",
        headers={**editor.headers, "User-Agent": "pytest-browser/1.0"},
    )
    assert refused.status_code == 403
    await committed_client.post(
        "/api/v1/api-keys",
        json={"name": "ERP", "permissions": ["jobs:read"]},
        headers={**owner.headers, "X-Request-ID": "req-42"},
    )
    # A failed login is the account's event, not the organization's (it stays off this log).
    await committed_client.post(
        "/api/v1/auth/login", json={"email": owner.user.email, "password": "wrong password!!"}
    )
    response = await committed_client.get("/api/v1/audit-events", headers=owner.headers)
    assert response.status_code == 200
    actions = [event["action"] for event in response.json()["items"]]
    # Newest first.
    assert actions[:3] == ["api_key.created", "access.denied", "auth.login.succeeded"]
    assert "organization.created" in actions
    assert "auth.login.failed" not in actions
    created = response.json()["items"][0]
    assert created["actor_type"] == "user"
    assert created["actor_id"] == str(owner.user.id)
    assert created["request_id"] == "req-42"
    assert created["client_address"] == "127.0.0.1"
    assert created["details"]["permissions"] == ["jobs:read"]
    denied = response.json()["items"][1]
    assert denied["outcome"] == "failure"
    assert denied["actor_id"] == str(editor.user.id)
    assert denied["user_agent"] == "pytest-browser/1.0"
    assert denied["details"]["permission"] == "audit:read"

    filtered = await committed_client.get(
        "/api/v1/audit-events",
        params={"action": "access", "outcome": "failure"},
        headers=owner.headers,
    )
    assert [e["action"] for e in filtered.json()["items"]] == ["access.denied"]
    paged = await committed_client.get(
        "/api/v1/audit-events", params={"limit": 1}, headers=owner.headers
    )
    assert paged.json()["next_cursor"]


async def test_reading_the_log_needs_audit_read_and_shows_ones_own_organization(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    editor = await member(runtime, client, role="editor", organization=owner.organization)
    stranger = await member(runtime, client)
    assert (await client.get("/api/v1/audit-events", headers=editor.headers)).status_code == 403
    theirs = (await client.get("/api/v1/audit-events", headers=stranger.headers)).json()["items"]
    assert all(event["actor_id"] != str(owner.user.id) for event in theirs)
    bad = await client.get(
        "/api/v1/audit-events", params={"action": "DROP TABLE"}, headers=owner.headers
    )
    assert bad.status_code == 422


async def test_a_time_range_is_read_in_utc_and_needs_offsets(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    url = "/api/v1/audit-events"
    everything = (await client.get(url, headers=owner.headers)).json()["items"]
    assert everything
    newest = everything[0]["occurred_at"]

    # The same instant in another offset finds the same events.
    since = datetime.fromisoformat(newest).astimezone(timezone(timedelta(hours=-5)))
    shifted = await client.get(url, params={"since": since.isoformat()}, headers=owner.headers)
    assert newest in [event["occurred_at"] for event in shifted.json()["items"]]
    naive = await client.get(url, params={"since": "2020-01-01T00:00"}, headers=owner.headers)
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["loc"] == ["query", "since"]


async def test_the_application_cannot_change_or_remove_events(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)

    async def run(statement: str) -> None:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=owner.organization_id)
            await session.execute(text(statement))

    for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="permission denied"):
            await run(statement)


async def test_the_chain_verifies_and_shows_tampering(
    committed_runtime: Runtime, committed_client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    await member(committed_runtime, committed_client)
    await member(committed_runtime, committed_client)
    async with owner_engine.connect() as connection:
        report = await verify_chain(connection)
    assert report.intact
    assert report.checked >= 4

    # Even the owner's UPDATE is refused by the trigger...
    with pytest.raises(DBAPIError, match="append-only"):
        async with owner_engine.begin() as connection:
            await connection.execute(
                text("UPDATE audit_events SET outcome = 'failure' WHERE seq = 2")
            )
    # ...so a tamperer must switch triggers off, and the chain shows it.
    async with owner_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(
            text("UPDATE audit_events SET details = '{\"forged\": true}' WHERE seq = 2")
        )
    async with owner_engine.connect() as connection:
        report = await verify_chain(connection)
    assert not report.intact
    assert report.broken_at == 2
    assert "hash" in (report.reason or "")

    # A removed event shows too.
    async with owner_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(text("DELETE FROM audit_events WHERE seq <= 2"))
    async with owner_engine.connect() as connection:
        report = await verify_chain(connection)
    assert report.broken_at == 1
    assert "missing" in (report.reason or "")
