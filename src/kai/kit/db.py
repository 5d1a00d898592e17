"""Database engine, sessions and the declarative base. One dialect: PostgreSQL via psycopg 3."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Connection, DateTime, MetaData, event, func, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

from kai.config import DatabaseSettings
from kai.kit.storage.transactional import discard_uncommitted, keep_uncommitted

# The role the application acts as (created by the migrations): it owns nothing and cannot
# bypass row-level security. The embedded server logs in as it; a configured login role that
# is anything else switches to it on connecting (and must be a member of it).
APP_ROLE = "kai_app"

# Stable constraint names so that migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class TimestampedMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def new_id() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), friendly to B-tree indexes and keyset pages."""
    unix_ms = time.time_ns() // 1_000_000
    value = (unix_ms & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def sqlalchemy_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` URLs and pin the psycopg driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("KAI_DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """The same URL as libpq and psycopg spell it (no driver suffix)."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+psycopg://") :]


def create_engine(
    url: str, settings: DatabaseSettings, *, as_app: bool = True, **overrides: Any
) -> AsyncEngine:
    """An engine whose connections act as the app role (`as_app=False`: as the login role,
    for migrations, maintenance and tests that inspect what the app may not)."""
    options: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout_seconds,
        # No ping before each checkout (a round trip on every request): a connection the
        # server dropped fails its statement, and SQLAlchemy discards the pool's stale ones.
        "pool_pre_ping": False,
        "pool_recycle": 1800,
        "connect_args": {
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
            "application_name": "kai",
        },
    }
    options.update(overrides)
    engine = create_async_engine(sqlalchemy_url(url), **options)
    if as_app:
        event.listen(engine.sync_engine, "connect", _act_as_app_role)
    return engine


def _act_as_app_role(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(
            f"DO $$ BEGIN IF current_user <> '{APP_ROLE}' THEN SET ROLE {APP_ROLE}; END IF; END $$"
        )
    finally:
        cursor.close()
    # The SET is no transaction's business: keep it when the pool rolls back.
    dbapi_connection.commit()


_SCOPE = text(
    "SELECT set_config('kai.organization_id', :organization_id, true),"
    " set_config('kai.user_id', :user_id, true)"
)


@contextlib.asynccontextmanager
async def scoped_transaction(
    factory: async_sessionmaker[AsyncSession], *, organization_id: uuid.UUID | None
) -> AsyncIterator[AsyncSession]:
    """A transaction of its own acting for `organization_id` (see `act_for`); objects
    written for its rows are removed again if it does not commit."""
    async with factory() as session:
        try:
            try:
                await act_for(session, organization_id=organization_id)
                yield session
            except BaseException:
                await session.rollback()
                raise
            await commit(session)
        finally:
            await discard_uncommitted(session)


async def act_for(
    session: AsyncSession, *, organization_id: uuid.UUID | None, user_id: uuid.UUID | None = None
) -> None:
    """Scope the session's current transaction to one organization (and person).

    Row-level security shows the application's role only that organization's rows, whatever a
    query forgets to say. Lasts until the transaction ends.
    """
    await session.execute(
        _SCOPE,
        {
            "organization_id": str(organization_id) if organization_id else "",
            "user_id": str(user_id) if user_id else "",
        },
    )


def act_for_each_transaction(session: AsyncSession, *, organization_id: uuid.UUID | None) -> None:
    """Scope every transaction `session` begins as `act_for` scopes one, when it begins: for
    a session that may commit more than once, or never need a transaction at all (no
    transaction is opened just to scope it)."""
    scope_each_transaction(session, lambda: (organization_id, None))


def scope_each_transaction(
    session: AsyncSession, scope: Callable[[], tuple[uuid.UUID | None, uuid.UUID | None] | None]
) -> None:
    """As `act_for_each_transaction`, for the organization and person `scope()` names when the
    transaction begins; None leaves the transaction unscoped (it sees no organization's
    rows)."""

    def begin(_session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
        acting = scope()
        if acting is None:
            return
        organization_id, user_id = acting
        connection.execute(
            _SCOPE,
            {
                "organization_id": str(organization_id) if organization_id else "",
                "user_id": str(user_id) if user_id else "",
            },
        )

    event.listen(session.sync_session, "after_begin", begin)


async def release_connection(session: AsyncSession) -> None:
    """Give the session's connection back to the pool during slow work that needs none (a
    request at its boundary: what it did so far commits now). The next statement begins a
    new transaction, which a request's session scopes as it scoped the first
    (`kai.deps.get_session`)."""
    if session.in_transaction():
        await commit(session)


# `session.info` key of the process's Settings, for infrastructure that needs them deep inside
# a unit of work (the job queue's per-organization caps) without every caller passing them.
SETTINGS_INFO = "kai.settings"


def create_session_factory(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


@contextlib.asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work: commit when the caller finishes cleanly, roll back when it raises;
    objects written for its rows are removed again if they did not commit."""
    async with factory() as session:
        try:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            else:
                # A unit of work that never touched the database has nothing to commit
                # (SQLAlchemy would begin a transaction only to end it again).
                if session.in_transaction():
                    await commit(session)
        finally:
            await discard_uncommitted(session)


async def commit(session: AsyncSession) -> None:
    """Commit `session`'s transaction. If the connection is lost while committing, nobody
    knows whether it did: the objects written for its rows are then kept, not removed."""
    try:
        await session.commit()
    except DBAPIError as exc:
        if exc.connection_invalidated:
            keep_uncommitted(session)
        raise
