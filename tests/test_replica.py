"""A read replica: searches and listings read from a real streaming replica of the bundled
PostgreSQL, except a caller's reads just after its own writes, and every read while the
replica is too far behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from kai.app import create_app
from kai.config import Settings
from kai.kit.db import APP_ROLE, libpq_url
from kai.kit.pgembed import EmbeddedPostgres
from kai.migrations import runner
from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import login, member

pytestmark = pytest.mark.database

WAIT_SECONDS = 60.0


class Cluster:
    def __init__(self, primary: EmbeddedPostgres, replica: EmbeddedPostgres) -> None:
        self.primary, self.replica = primary, replica

    def caught_up(self) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        with psycopg.connect(libpq_url(self.primary.url()), autocommit=True) as connection:
            (written,) = connection.execute("SELECT pg_current_wal_lsn()::text").fetchone()  # type: ignore[misc]
        deadline = time.monotonic() + WAIT_SECONDS
        with psycopg.connect(libpq_url(self.replica.url()), autocommit=True) as connection:
            while True:
                row = connection.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (written,)
                ).fetchone()
                if row is not None and row[0]:
                    return
                assert time.monotonic() < deadline, "the replica never caught up"
                time.sleep(0.05)

    def replay(self, *, paused: bool) -> None:
        with psycopg.connect(libpq_url(self.replica.url()), autocommit=True) as connection:
            call = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
            connection.execute(f"SELECT {call}()")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicated")
    primary = EmbeddedPostgres(root / "primary")
    owner = primary.acquire()
    replica: EmbeddedPostgres | None = None
    try:
        runner.upgrade(owner)
        runner.allow_app_login(owner)
        replica = primary.make_replica(root / "replica")
        replica.acquire()
        yield Cluster(primary, replica)
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


@pytest.fixture
async def app_of(cluster: Cluster, settings: Settings) -> AsyncIterator[Any]:
    """An app on the primary and the replica, whose replica may be `max_lag` seconds behind."""
    runtimes: list[Runtime] = []

    def make(max_lag: float) -> tuple[Runtime, AsyncClient]:
        database = settings.database.model_copy(
            update={
                "replica_url": SecretStr(cluster.replica.url(user=APP_ROLE)),
                "replica_max_lag_seconds": max_lag,
            }
        )
        configured = settings.model_copy(
            update={
                "database_url": SecretStr(cluster.primary.url(user=APP_ROLE)),
                "database": database,
            }
        )
        runtime = Runtime.create(configured, cluster.primary.url(user=APP_ROLE))
        runtimes.append(runtime)
        app = create_app(configured, runtime=runtime)
        return runtime, AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test")

    yield make
    for runtime in runtimes:
        await runtime.close()


async def _codes(client: AsyncClient, headers: dict[str, str]) -> set[str]:
    listed = await client.get("/api/v1/materials", headers=headers)
    assert listed.status_code == 200, listed.text
    found = await client.get("/api/v1/search", params={"q": "travertine"}, headers=headers)
    assert found.status_code == 200, found.text
    searched = {item["material"]["code"] for item in found.json()["items"]}
    codes = {item["code"] for item in listed.json()["items"]}
    assert searched == codes, (searched, codes)  # every material here is a travertine
    return codes


async def test_reads_come_from_the_replica_except_after_the_callers_own_writes(
    cluster: Cluster, app_of: Any
) -> None:
    runtime, client = app_of(600.0)
    owner = await member(runtime, client)
    category = await create_category(client, owner, "Travertine")
    await create_material(client, owner, category_id=category["id"], code="TR-1", name="Travertine")
    # The same person in another session, which has written nothing.
    other = await login(client, owner.user.email)
    reader = {"Authorization": f"Bearer {other['access_token']}"}
    await asyncio.to_thread(cluster.caught_up)
    assert await _codes(client, reader) == {"TR-1"}

    await asyncio.to_thread(cluster.replay, paused=True)
    try:
        await create_material(
            client, owner, category_id=category["id"], code="TR-2", name="Travertine"
        )
        # The writer sees its write (the primary); the other session reads the replica,
        # which has not replayed it yet.
        assert await _codes(client, owner.headers) == {"TR-1", "TR-2"}
        assert await _codes(client, reader) == {"TR-1"}
    finally:
        await asyncio.to_thread(cluster.replay, paused=False)
    await asyncio.to_thread(cluster.caught_up)
    assert await _codes(client, reader) == {"TR-1", "TR-2"}
    await client.aclose()


async def test_every_read_goes_to_the_primary_while_the_replica_is_too_far_behind(
    cluster: Cluster, app_of: Any
) -> None:
    runtime, client = app_of(1.0)
    owner = await member(runtime, client)
    category = await create_category(client, owner, "Travertine")
    other = await login(client, owner.user.email)
    reader = {"Authorization": f"Bearer {other['access_token']}"}
    await asyncio.to_thread(cluster.caught_up)
    assert await _codes(client, reader) == set()  # from the replica, caught up

    await asyncio.to_thread(cluster.replay, paused=True)
    try:
        await create_material(
            client, owner, category_id=category["id"], code="TR-9", name="Travertine"
        )
        # Long enough for the replica, stopped, to fall more than a second behind, and for
        # the process to ask again how far behind it is.
        await asyncio.sleep(2.5)
        assert await _codes(client, reader) == {"TR-9"}
    finally:
        await asyncio.to_thread(cluster.replay, paused=False)
    await client.aclose()
