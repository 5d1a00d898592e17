"""API keys: scoped, shown once, stored hashed, expiring, revocable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from kai.identity.models import ApiKey
from kai.kit.db import act_for
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import member

pytestmark = pytest.mark.database


def _key(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_key_acts_for_its_organization_with_its_permissions(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "ERP sync", "permissions": ["members:read", "jobs:read"]},
        headers=owner.headers,
    )
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith(f"kai_{body['prefix']}_")

    me = (await client.get("/api/v1/me", headers=_key(secret))).json()
    assert me["kind"] == "api_key"
    assert me["organization"]["id"] == str(owner.organization_id)
    assert sorted(me["permissions"]) == ["jobs:read", "members:read"]
    assert (await client.get("/api/v1/members", headers=_key(secret))).status_code == 200
    assert (await client.get("/api/v1/api-keys", headers=_key(secret))).status_code == 403

    # Shown once: listing never shows it again, and the database holds only a digest.
    listed = (await client.get("/api/v1/api-keys", headers=owner.headers)).json()["items"]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    async with runtime.session_factory() as session:
        await act_for(session, organization_id=owner.organization_id)
        stored = (await session.scalars(select(ApiKey))).one()
    assert secret.split("_", 2)[2].encode() not in stored.secret_digest


async def test_a_key_cannot_hold_more_than_its_creator(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await client.post(
        "/api/v1/roles",
        json={
            "key": "integrator",
            "name": "Integrator",
            "permissions": ["api_keys:manage", "jobs:read"],
        },
        headers=owner.headers,
    )
    integrator = await member(runtime, client, role="integrator", organization=owner.organization)
    refused = await client.post(
        "/api/v1/api-keys",
        json={"name": "Too much", "permissions": ["jobs:read", "members:manage"]},
        headers=integrator.headers,
    )
    assert refused.status_code == 403
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "OK", "permissions": ["jobs:read"]},
        headers=integrator.headers,
    )
    secret = created.json()["key"]
    assert (await client.get("/api/v1/jobs", headers=_key(secret))).status_code == 200
    # A key never outlives its creator's access: once they leave, it can do nothing.
    removed = await client.delete(f"/api/v1/members/{integrator.user.id}", headers=owner.headers)
    assert removed.status_code == 204
    assert (await client.get("/api/v1/jobs", headers=_key(secret))).status_code == 403
    assert (await client.get("/api/v1/me", headers=_key(secret))).json()["permissions"] == []


async def test_revoked_expired_and_forged_keys_are_refused(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    owner = await member(runtime, client)
    expires = (clock.now + timedelta(days=1)).isoformat()
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "Temp", "permissions": ["jobs:read"], "expires_at": expires},
        headers=owner.headers,
    )
    secret, key_id = created.json()["key"], created.json()["id"]
    assert (await client.get("/api/v1/jobs", headers=_key(secret))).status_code == 200

    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert (await client.get("/api/v1/jobs", headers=_key(forged))).status_code == 401
    clock.advance(days=2)
    assert (await client.get("/api/v1/jobs", headers=_key(secret))).status_code == 401
    clock.advance(days=-2)
    revoked = await client.delete(f"/api/v1/api-keys/{key_id}", headers=owner.headers)
    assert revoked.status_code == 204
    refused = await client.get("/api/v1/jobs", headers=_key(secret))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


async def test_a_key_cannot_make_keys_nor_expire_in_the_past(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "Admin bot", "permissions": ["api_keys:manage"]},
        headers=owner.headers,
    )
    secret = created.json()["key"]
    nested = await client.post(
        "/api/v1/api-keys",
        json={"name": "Child", "permissions": ["api_keys:manage"]},
        headers=_key(secret),
    )
    assert nested.status_code == 403
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    refused = await client.post(
        "/api/v1/api-keys",
        json={"name": "Old", "permissions": ["jobs:read"], "expires_at": past},
        headers=owner.headers,
    )
    assert refused.status_code == 400
    empty = await client.post(
        "/api/v1/api-keys", json={"name": "None", "permissions": []}, headers=owner.headers
    )
    assert empty.status_code == 422


async def test_an_expiry_needs_its_offset_and_is_kept_in_utc(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    # Whose midnight, and seconds or milliseconds: refused, saying what would do.
    for ambiguous in ("2030-01-01T00:00", "2030-01-01", 1893456000):
        refused = await client.post(
            "/api/v1/api-keys",
            json={"name": "Bot", "permissions": ["jobs:read"], "expires_at": ambiguous},
            headers=owner.headers,
        )
        assert refused.status_code == 422, ambiguous
        (error,) = refused.json()["errors"]
        assert error["loc"] == ["body", "expires_at"]
        assert "2030-01-01T09:30:00Z" in error["msg"]

    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "Bot", "permissions": ["jobs:read"], "expires_at": "2030-01-01T10:30+01:00"},
        headers=owner.headers,
    )
    assert created.status_code == 201
    assert created.json()["expires_at"] == "2030-01-01T09:30:00Z"
    listed = (await client.get("/api/v1/api-keys", headers=owner.headers)).json()["items"]
    assert [key["expires_at"] for key in listed] == ["2030-01-01T09:30:00Z"]
