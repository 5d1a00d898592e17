"""What a credential allows is kept for a moment by the process (KAI_AUTH__ACCESS_CACHE_SECONDS):
a change made through KAI takes effect at once, one made elsewhere (another process) within
those seconds, and a refusal is never kept."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from kai.identity.authentication import ACCESS_TABLES
from kai.identity.models import User
from kai.kit.expiring import ExpiringCache
from kai.runtime import Runtime
from tests.identity.factories import create_user, member

pytestmark = pytest.mark.database


class Ticks:
    """The cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(runtime: Runtime, seconds: float = 2.0) -> Ticks:
    ticks = Ticks()
    runtime.caches["access"] = ExpiringCache(seconds, watch=ACCESS_TABLES, clock=ticks)
    return ticks


async def _elsewhere(runtime: Runtime, statement: str, **values: object) -> None:
    """A change as another process makes it: SQL this process's sessions do not see."""
    async with runtime.session_factory.begin() as session:
        await session.execute(text(statement), values)


async def test_a_session_revoked_elsewhere_ends_within_the_cache_seconds(
    runtime: Runtime, client: AsyncClient
) -> None:
    ticks = _cache(runtime)
    alice = await member(runtime, client)
    assert (await client.get("/api/v1/me", headers=alice.headers)).status_code == 200
    me = (await client.get("/api/v1/me", headers=alice.headers)).json()

    await _elsewhere(
        runtime,
        "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = :user",
        user=me["user"]["id"],
    )
    # Still what the process found a moment ago...
    ticks.now += 1.5
    assert (await client.get("/api/v1/me", headers=alice.headers)).status_code == 200
    # ...and no longer once it is older than the cache keeps answers.
    ticks.now += 1.0
    refused = await client.get("/api/v1/me", headers=alice.headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "The session has ended: log in again."


async def test_a_logout_through_kai_takes_effect_at_once(
    runtime: Runtime, client: AsyncClient
) -> None:
    _cache(runtime, seconds=60)
    alice = await member(runtime, client)
    assert (await client.get("/api/v1/me", headers=alice.headers)).status_code == 200
    out = await client.post("/api/v1/auth/logout", headers=alice.headers)
    assert out.status_code == 204
    assert (await client.get("/api/v1/me", headers=alice.headers)).status_code == 401


async def test_a_role_lowered_through_kai_takes_effect_at_once(
    runtime: Runtime, client: AsyncClient
) -> None:
    _cache(runtime, seconds=60)
    owner = await member(runtime, client)
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    assert (await client.get("/api/v1/api-keys", headers=admin.headers)).status_code == 200
    lowered = await client.patch(
        f"/api/v1/members/{admin.user.id}", json={"role": "analyst"}, headers=owner.headers
    )
    assert lowered.status_code == 200, lowered.text
    assert (await client.get("/api/v1/api-keys", headers=admin.headers)).status_code == 403


async def test_an_api_key_revoked_through_kai_is_refused_at_once(
    runtime: Runtime, client: AsyncClient
) -> None:
    _cache(runtime, seconds=60)
    owner = await member(runtime, client)
    created = (
        await client.post(
            "/api/v1/api-keys",
            json={"name": "ERP", "permissions": ["members:read"]},
            headers=owner.headers,
        )
    ).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/api/v1/members", headers=key)).status_code == 200
    revoked = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=owner.headers)
    assert revoked.status_code in (200, 204)
    refused = await client.get("/api/v1/members", headers=key)
    assert refused.status_code == 401
    # The cached key never lets in a wrong secret of the same prefix.
    wrong = created["key"][:-4] + ("aaaa" if not created["key"].endswith("aaaa") else "bbbb")
    assert (
        await client.get("/api/v1/members", headers={"Authorization": f"Bearer {wrong}"})
    ).status_code == 401


async def test_a_refusal_is_not_kept(runtime: Runtime, client: AsyncClient) -> None:
    ticks = _cache(runtime, seconds=60)
    owner = await member(runtime, client)
    viewer = await member(runtime, client, role="analyst", organization=owner.organization)
    await _elsewhere(
        runtime, "UPDATE users SET disabled = true WHERE id = :user", user=viewer.user.id
    )
    assert (await client.get("/api/v1/me", headers=viewer.headers)).status_code == 401
    await _elsewhere(
        runtime, "UPDATE users SET disabled = false WHERE id = :user", user=viewer.user.id
    )
    ticks.now += 0.1
    assert (await client.get("/api/v1/me", headers=viewer.headers)).status_code == 200


def test_an_answer_read_while_a_change_committed_is_not_kept() -> None:
    cache: ExpiringCache[str] = ExpiringCache(60, watch={"users"})
    read_in = cache.generation
    cache.forget()  # a change to users committed while the answer was being read
    cache.put("alice", "allowed", read_in=read_in)
    assert cache.get("alice") is None
    cache.put("alice", "allowed", read_in=cache.generation)
    assert cache.get("alice") == "allowed"


async def test_a_committed_change_to_a_watched_table_empties_the_cache(runtime: Runtime) -> None:
    cache: ExpiringCache[str] = ExpiringCache(60, watch=ACCESS_TABLES)
    person = await create_user(runtime)
    cache.put("alice", "allowed", read_in=cache.generation)
    async with runtime.session_factory() as session:
        user = await session.get(User, person.id)
        assert user is not None
        user.name = "Renamed"
        await session.flush()
        await session.rollback()
    # A change that did not commit changes nothing.
    assert cache.get("alice") == "allowed"
    async with runtime.session_factory.begin() as session:
        user = await session.get(User, person.id)
        assert user is not None
        user.name = "Renamed"
    assert cache.get("alice") is None
