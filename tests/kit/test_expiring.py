"""Caches of answers that expire (`kai.kit.expiring`): a change to a watched table, committed
by this process or announced by another on PostgreSQL's channel, empties them."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.config import Settings
from kai.identity.models import User
from kai.kit import expiring
from kai.kit.db import libpq_url
from kai.kit.expiring import ExpiringCache
from kai.runtime import Runtime
from tests.identity.factories import create_user

pytestmark = pytest.mark.database


def _conninfo(settings: Settings) -> str:
    assert settings.database_url is not None
    return libpq_url(settings.database_url.get_secret_value())


async def test_a_change_another_process_announces_empties_the_cache(settings: Settings) -> None:
    cache: ExpiringCache[str] = ExpiringCache(60, watch={"users"})
    other: ExpiringCache[str] = ExpiringCache(60, watch={"teams"})
    listening = asyncio.Event()
    follower = asyncio.create_task(
        expiring.follow_changes(_conninfo(settings), listening=listening)
    )
    try:
        await asyncio.wait_for(listening.wait(), 30)
        cache.put("alice", "allowed", read_in=cache.generation)
        other.put("team", "kept", read_in=other.generation)
        async with await psycopg.AsyncConnection.connect(
            _conninfo(settings), autocommit=True
        ) as elsewhere:
            await elsewhere.execute("SELECT pg_notify(%s, %s)", (expiring.CHANNEL, "users"))
        for _ in range(200):
            if cache.get("alice") is None:
                break
            await asyncio.sleep(0.01)
        assert cache.get("alice") is None
        # A cache that watches other tables keeps its answers.
        assert other.get("team") == "kept"
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def test_a_committed_change_is_announced_and_a_rolled_back_one_is_not(
    settings: Settings, committed_runtime: Runtime, owner_engine: AsyncEngine
) -> None:
    person = await create_user(committed_runtime)
    watching: ExpiringCache[str] = ExpiringCache(60, watch={"users"})
    async with await psycopg.AsyncConnection.connect(
        _conninfo(settings), autocommit=True
    ) as listener:
        await listener.execute(f"LISTEN {expiring.CHANNEL}")

        async with committed_runtime.session_factory() as session:
            user = await session.get(User, person.id)
            assert user is not None
            user.name = "Not kept"
            await session.flush()
            await session.rollback()
        async with committed_runtime.session_factory.begin() as session:
            user = await session.get(User, person.id)
            assert user is not None
            user.name = "Renamed"

        payloads = [notice.payload async for notice in listener.notifies(timeout=2.0)]
    assert payloads == ["users"]
    # This process forgot at its own commit, once: not at the rollback.
    assert watching.generation == 1
    async with owner_engine.connect() as connection:
        name = (
            await connection.execute(
                text("SELECT name FROM users WHERE id = :id"), {"id": person.id}
            )
        ).scalar_one()
    assert name == "Renamed"
