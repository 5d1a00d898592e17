"""Statements on the database driver itself, for the work every request does.

SQLAlchemy's asyncio session costs about 300 µs of a process's CPU per transaction over the
driver beneath it (benchmarks/README.md, the request path): more than the whole of a bare
route's read. What every authenticated request does (check the credential) and the hottest
reads go through psycopg's own pool here instead, each in one statement and one round trip.

A read is scoped to its organization in the statement that reads: `scoped` puts the
`set_config` calls ahead of the query in a one-row subquery the query depends on, so
PostgreSQL evaluates them before it scans a row, and row-level security then shows the
query only that organization's rows. The connection is in autocommit: the setting is local
to the statement's transaction and gone when it ends, so no later use of the connection can
inherit another caller's scope. A statement that forgets its scope reads nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncClientCursor, AsyncConnection
from psycopg_pool import AsyncConnectionPool

from kai.config import DatabaseSettings

Row = tuple[Any, ...]

_SCOPE = (
    "SELECT set_config('kai.organization_id', %s, true) AS organization,"
    " set_config('kai.user_id', %s, true) AS person"
)
# The same with named placeholders, for statements whose parameters are named.
_NAMED_SCOPE = (
    "SELECT set_config('kai.organization_id', %(kai_scope_organization)s, true) AS organization,"
    " set_config('kai.user_id', %(kai_scope_person)s, true) AS person"
)


def scoped(sql: str, *, named: bool = False) -> str:
    """`sql` (a SELECT with `%s` placeholders) behind its scope: the statement's first two
    parameters are then the organization and the person it acts for (`named`: its
    placeholders are `%(name)s`, and the scope's are `kai_scope_organization` and
    `kai_scope_person`). `OFFSET 0` keeps the planner from folding the query into the outer
    one, where it could scan before scoping."""
    # `sql` is the code's own text; the values travel as parameters.
    return (
        f"SELECT q.* FROM ({_NAMED_SCOPE if named else _SCOPE}) AS scope,"  # noqa: S608
        f" LATERAL (SELECT * FROM ({sql}) AS r WHERE scope.organization IS NOT NULL OFFSET 0) AS q"
    )


class Driver:
    """Where the driver's statements run: `PooledDriver` in the app, `JoinedDriver` in tests
    that roll back."""

    async def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Row]:
        """An unscoped statement: one that scopes itself (a `kai_*` function), or reads what
        is no organization's."""
        raise NotImplementedError

    async def scoped_rows(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any],
        *,
        organization_id: uuid.UUID | None,
        user_id: uuid.UUID | None = None,
    ) -> list[Row]:
        """`sql` acting for `organization_id` (and `user_id`), as `kai.kit.db.act_for` scopes
        a session's transaction. Its parameters are positional (`%s`), or named (`%(name)s`)
        when given as a mapping."""
        scope = (str(organization_id) if organization_id else "", str(user_id) if user_id else "")
        if isinstance(params, Mapping):
            named = {"kai_scope_organization": scope[0], "kai_scope_person": scope[1], **params}
            return await self.rows(scoped(sql, named=True), named)
        return await self.rows(scoped(sql), (*scope, *params))

    async def scoped_write(
        self, sql: str, params: Sequence[Any], *, organization_id: uuid.UUID
    ) -> None:
        """One write acting for `organization_id`, in a transaction of its own."""
        raise NotImplementedError

    async def close(self) -> None:
        return None


class PooledDriver(Driver):
    """psycopg's pool of connections acting as the app role, opened on first use."""

    def __init__(self, url: str, settings: DatabaseSettings, *, app_role: str | None) -> None:
        self._app_role = app_role
        self._pool: AsyncConnectionPool[AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            # Grown to max_size under load, shrunk back when idle: a process that only runs
            # commands or jobs holds one connection here.
            min_size=1,
            max_size=settings.pool_size,
            timeout=settings.pool_timeout_seconds,
            open=False,
            configure=self._configure,
            kwargs={
                "autocommit": True,
                "options": f"-c statement_timeout={settings.statement_timeout_ms}",
                "application_name": "kai",
            },
        )
        self._opened = False

    async def _configure(self, connection: AsyncConnection[Row]) -> None:
        if self._app_role is not None:
            await connection.execute(
                f"DO $$ BEGIN IF current_user <> '{self._app_role}'"
                f" THEN SET ROLE {self._app_role}; END IF; END $$"
            )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Row]]:
        if not self._opened:
            # Idempotent: callers that arrive while it opens wait for it too.
            await self._pool.open()
            self._opened = True
        async with self._pool.connection() as connection:
            yield connection

    async def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Row]:
        async with self.connection() as connection:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall()

    async def scoped_write(
        self, sql: str, params: Sequence[Any], *, organization_id: uuid.UUID
    ) -> None:
        async with self.connection() as connection, connection.transaction():
            await connection.execute(_SCOPE, (str(organization_id), ""))
            await connection.execute(sql, params)

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()


class JoinedDriver(Driver):
    """The driver's statements on a connection its holder keeps in a transaction of its own
    (a test's, rolled back at its end, which every session of the test joins): each runs in
    a savepoint, sent with it in one message, and a read's savepoint is rolled back, so its
    scope ends with it as it does on the pool in autocommit."""

    def __init__(self, connection: AsyncConnection[Row]) -> None:
        self._connection = connection

    async def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Row]:
        cursor = AsyncClientCursor(self._connection)
        await cursor.execute(
            f"SAVEPOINT kai_driver; {sql}; ROLLBACK TO SAVEPOINT kai_driver", params
        )
        cursor.nextset()
        return await cursor.fetchall()

    async def scoped_write(
        self, sql: str, params: Sequence[Any], *, organization_id: uuid.UUID
    ) -> None:
        cursor = AsyncClientCursor(self._connection)
        await cursor.execute(
            "SELECT current_setting('kai.organization_id', true),"
            " current_setting('kai.user_id', true)"
        )
        before = await cursor.fetchone()
        assert before is not None
        await cursor.execute(
            f"SAVEPOINT kai_driver; {_SCOPE}; {sql};"
            " SELECT set_config('kai.organization_id', %s, true),"
            " set_config('kai.user_id', %s, true); RELEASE SAVEPOINT kai_driver",
            (str(organization_id), "", *params, before[0] or "", before[1] or ""),
        )
