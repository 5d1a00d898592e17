"""What one process can serve on this machine for a request shaped like KAI's authenticated read.

Two apps, each run by uvicorn as `kai serve` runs (one process, uvloop, httptools, no access
log), against the same embedded PostgreSQL and under the same load generator as the KAI
targets. Each request reads one organization row by primary key inside a transaction scoped
with `set_config`, as KAI's reads are, and answers it as JSON:

- `raw`: a bare ASGI callable and a psycopg pool, one round trip: no framework.
- `fastapi`: a FastAPI route with one dependency that reads the `Authorization` header and a
  response model, the same query on the same pool: the framework with no authentication,
  no ORM and no middleware of KAI's.

No credential is checked and no permission looked up: both are upper bounds for KAI's
authenticated read, not versions of it.

    python -m benchmarks.ceiling --app raw|fastapi --database-url URL --port P
"""

import argparse
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

ORGANIZATION_ID = uuid.UUID(int=1)
# One statement is one transaction in autocommit: the scope lasts exactly as long as the read.
QUERY = (
    "SELECT o.id, o.name, o.slug, o.created_at"
    " FROM (SELECT set_config('kai.organization_id', %s, true)) AS scope, organizations o"
    " WHERE o.id = %s"
)
POOL_SIZE = 20


async def read_organization(pool: AsyncConnectionPool[AsyncConnection]) -> tuple[Any, ...]:
    """The row, in a transaction scoped to its organization, in one round trip (the fastest
    way measured here: psycopg's pipeline mode cost more than it saved)."""
    async with pool.connection() as connection:
        cursor = await connection.execute(QUERY, (str(ORGANIZATION_ID), ORGANIZATION_ID))
        row = await cursor.fetchone()
    assert row is not None
    return tuple(row)


def raw_app(database_url: str) -> Any:
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        database_url,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        open=False,
        kwargs={"autocommit": True},
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await pool.open(wait=True)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        row = await read_organization(pool)
        body = orjson.dumps(dict(zip(("id", "name", "slug", "created_at"), row, strict=True)))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


class OrganizationRead(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime


async def bearer(request: Request) -> str:
    return request.headers.get("authorization", "")


def fastapi_app(database_url: str) -> Any:
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        database_url,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        open=False,
        kwargs={"autocommit": True},
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/organization")
    async def organization(credential: Annotated[str, Depends(bearer)]) -> OrganizationRead:
        identifier, name, slug, created_at = await read_organization(pool)
        return OrganizationRead(id=identifier, name=name, slug=slug, created_at=created_at)

    return app


def prepare(database_url: str) -> None:
    """The table and its one row, made by the database's owner."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS organizations"
            " (id uuid PRIMARY KEY, name text NOT NULL, slug text NOT NULL,"
            "  created_at timestamptz NOT NULL DEFAULT now())"
        )
        connection.execute(
            "INSERT INTO organizations (id, name, slug) VALUES (%s, 'Ceiling', 'ceiling')"
            " ON CONFLICT DO NOTHING",
            (ORGANIZATION_ID,),
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__)
    parser.add_argument("--app", choices=["raw", "fastapi"], required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    import uvicorn

    prepare(options.database_url)
    application = (raw_app if options.app == "raw" else fastapi_app)(options.database_url)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=options.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
