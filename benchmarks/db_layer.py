"""What one short transaction costs the server's process through each layer KAI could use.

A transaction of one `SELECT 1` (BEGIN, the statement, COMMIT: three round trips), run by
`--clients` concurrent loops on one event loop (uvloop), against the embedded PostgreSQL:

- `psycopg`: psycopg's own pool and connection, the layer `benchmarks.ceiling` uses;
- `sqlalchemy core`: an `AsyncConnection` of KAI's engine (`kai.kit.db.create_engine`);
- `sqlalchemy session`: an `AsyncSession` of KAI's session factory, as a request uses.

Then one organization's row read as the app role under row-level security, scoped to its
organization: on the driver as `kai.kit.driver` scopes a statement (one round trip), and as
an ORM session does it (BEGIN, the scope, the row, COMMIT).

CPU time of this process per transaction, which is what limits one server process.

    python -m benchmarks.db_layer [--transactions 3000] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.config import Settings
from kai.kit.db import APP_ROLE, act_for, create_engine, create_session_factory, libpq_url, new_id
from kai.kit.driver import PooledDriver
from kai.runtime import attach_database


async def cpu_per_call(
    work: Callable[[], Awaitable[None]], calls: int, clients: int
) -> tuple[float, float]:
    """Microseconds of this process's CPU and of wall time per call, after a warm-up round."""
    figures = (0.0, 0.0)
    for _round in ("warm-up", "measured"):
        remaining = calls

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await work()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        figures = (
            (time.process_time() - cpu) / calls * 1e6,
            (time.perf_counter() - wall) / calls * 1e6,
        )
    return figures


async def measure(url: str, owner_url: str, settings: Settings, calls: int, clients: int) -> None:
    size = settings.database.pool_size
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        libpq_url(url), min_size=size, max_size=size, open=False
    )
    await pool.open(wait=True)
    engine = create_engine(url, settings.database)
    sessions = create_session_factory(engine)

    async def psycopg_transaction() -> None:
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")

    async def core_transaction() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await connection.commit()

    async def session_transaction() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            await session.commit()

    print(f"{calls} transactions of one statement, {clients} concurrent")
    print("| layer | CPU µs per transaction | wall µs per transaction |")
    print("|---|---:|---:|")
    try:
        for name, work in (
            ("psycopg", psycopg_transaction),
            ("sqlalchemy core", core_transaction),
            ("sqlalchemy session", session_transaction),
        ):
            cpu, wall = await cpu_per_call(work, calls, clients)
            print(f"| {name} | {cpu:.0f} | {wall:.0f} |")
        await scoped_reads(url, owner_url, settings, sessions, calls, clients)
    finally:
        await pool.close()
        await engine.dispose()


async def scoped_reads(
    url: str,
    owner_url: str,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    calls: int,
    clients: int,
) -> None:
    organization_id = new_id()
    owner = create_engine(owner_url, settings.database, as_app=False)
    async with owner.begin() as connection:
        await connection.execute(
            text("INSERT INTO organizations (id, name, slug) VALUES (:id, 'Bench', :slug)"),
            {"id": organization_id, "slug": f"bench-{organization_id.hex[-12:]}"},
        )
        # A table under row-level security: the organization's one team.
        await connection.execute(
            text("INSERT INTO teams (id, organization_id, name) VALUES (:id, :org, 'Bench')"),
            {"id": new_id(), "org": organization_id},
        )
    await owner.dispose()
    driver = PooledDriver(libpq_url(url), settings.database, app_role=APP_ROLE)
    sql = "SELECT id, organization_id, name FROM teams WHERE organization_id = %s"

    async def driver_read() -> None:
        rows = await driver.scoped_rows(sql, (organization_id,), organization_id=organization_id)
        assert len(rows) == 1

    async def session_read() -> None:
        async with sessions() as session:
            await act_for(session, organization_id=organization_id)
            rows = (
                await session.execute(
                    text("SELECT id, organization_id, name FROM teams WHERE organization_id = :o"),
                    {"o": organization_id},
                )
            ).all()
            assert len(rows) == 1
            await session.commit()

    print()
    print(f"{calls} reads of a row under row-level security, scoped, {clients} concurrent")
    print("| way | CPU µs per read | wall µs per read |")
    print("|---|---:|---:|")
    try:
        for name, work in (
            ("driver: scope and read in one statement (`kai.kit.driver`)", driver_read),
            ("sqlalchemy session: BEGIN, scope, read, COMMIT", session_read),
        ):
            cpu, wall = await cpu_per_call(work, calls, clients)
            print(f"| {name} | {cpu:.0f} | {wall:.0f} |")
    finally:
        await driver.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.db_layer", description=__doc__)
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kai-db-layer-") as scratch:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(scratch) / "kai-data",
            log_level="warning",
        )
        urls, embedded = attach_database(settings, migrate=True)
        try:
            uvloop.run(
                measure(urls.app, urls.owner, settings, options.transactions, options.clients)
            )
        finally:
            if embedded is not None:
                embedded.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
