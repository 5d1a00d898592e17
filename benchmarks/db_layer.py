"""What one short transaction costs the server's process through each layer KAI could use.

A transaction of one `SELECT 1` (BEGIN, the statement, COMMIT: three round trips), run by
`--clients` concurrent loops on one event loop (uvloop), against the embedded PostgreSQL:

- `psycopg`: psycopg's own pool and connection, the layer `benchmarks.ceiling` uses;
- `sqlalchemy core`: an `AsyncConnection` of KAI's engine (`kai.kit.db.create_engine`);
- `sqlalchemy session`: an `AsyncSession` of KAI's session factory, as a request uses.

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

from kai.config import Settings
from kai.kit.db import create_engine, create_session_factory, libpq_url
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


async def measure(url: str, settings: Settings, calls: int, clients: int) -> None:
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
    finally:
        await pool.close()
        await engine.dispose()


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
            uvloop.run(measure(urls.app, settings, options.transactions, options.clients))
        finally:
            if embedded is not None:
                embedded.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
