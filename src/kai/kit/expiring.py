"""Answers kept for a few seconds, forgotten as soon as a change to the tables they were
read from commits.

For what nearly every request asks the database and nearly never changes (what a
credential allows: `kai.identity.authentication`). A change this process commits empties
every cache that watches a table it touched, when it commits. A transaction that changes a
watched table also says so on PostgreSQL's channel `kai_changed` (NOTIFY, delivered when it
commits): each server process follows that channel (`follow_changes`) and forgets too, a few
milliseconds later. Should that listener be cut off, answers still last no longer than their
seconds, and everything is forgotten when it is back. An answer read while a change
committed is not kept (the cache's generation has moved on since it was read), so it cannot
outlive the change.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

import structlog
from psycopg import AsyncConnection
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

V = TypeVar("V")

log = structlog.get_logger(__name__)

# `session.info` keys: the watched tables the session's transaction changed, and those it
# has announced on the channel.
_CHANGED = "kai.expiring.changed"
_ANNOUNCED = "kai.expiring.announced"
CHANNEL = "kai_changed"
_caches: weakref.WeakSet[ExpiringCache[Any]] = weakref.WeakSet()


class ExpiringCache(Generic[V]):
    """Values kept `seconds` (0: none), emptied when a change to a table of `watch` commits."""

    def __init__(
        self,
        seconds: float,
        *,
        watch: Iterable[str],
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.watch = frozenset(watch)
        self.generation = 0
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, V]] = {}
        _caches.add(self)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: Hashable, value: V, *, read_in: int) -> None:
        """Keep `value`, read when the cache's generation was `read_in`, unless a watched
        change committed since."""
        if self.seconds <= 0 or read_in != self.generation:
            return
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: entry for k, entry in self._entries.items() if entry[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (now + self.seconds, value)

    def update(self, key: Hashable, value: V) -> None:
        """Replace what is kept for `key`, for as long as it was to be kept."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], value)

    def forget(self) -> None:
        self.generation += 1
        self._entries.clear()


def _watched() -> frozenset[str]:
    return frozenset().union(*(cache.watch for cache in list(_caches)))


def _note(session: Session, tables: Iterable[str | None]) -> None:
    changed = _watched().intersection(table for table in tables if table)
    if not changed:
        return
    session.info[_CHANGED] = session.info.get(_CHANGED, frozenset()) | changed
    announced: frozenset[str] = session.info.get(_ANNOUNCED, frozenset())
    if changed - announced:
        # Delivered to every listener when the transaction commits, never if it rolls back.
        session.connection().exec_driver_sql(
            "SELECT pg_notify(%(channel)s, %(tables)s)",
            {"channel": CHANNEL, "tables": ",".join(sorted(changed))},
        )
        session.info[_ANNOUNCED] = announced | changed


def forget_changed(tables: Iterable[str]) -> None:
    """Empty every cache of this process that watches one of `tables`."""
    changed = frozenset(tables)
    for cache in list(_caches):
        if cache.watch & changed:
            cache.forget()


async def follow_changes(
    conninfo: str, *, retry_seconds: float = 1.0, listening: asyncio.Event | None = None
) -> None:
    """Forget what another process's committed changes made stale, as they commit: listen on
    the channel until cancelled, connecting again whenever the connection is lost (and then
    forgetting everything, as changes may have committed meanwhile). `listening` is set
    once it listens."""
    while True:
        try:
            async with await AsyncConnection.connect(conninfo, autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                forget_changed(_watched())
                if listening is not None:
                    listening.set()
                async for notice in connection.notifies():
                    forget_changed(notice.payload.split(","))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: the answers expire meanwhile
            log.warning("expiring.listener_lost", error=str(exc)[:300])
        await asyncio.sleep(retry_seconds)


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _flush: UOWTransaction) -> None:
    # The flush's own lists, still: what it inserted, changed and deleted.
    _note(
        session,
        (
            getattr(type(instance), "__tablename__", None)
            for instances in (session.new, session.dirty, session.deleted)
            for instance in instances
        ),
    )


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete:
        _note(state.session, (getattr(getattr(state.statement, "table", None), "name", None),))


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    session.info.pop(_ANNOUNCED, None)
    changed: frozenset[str] = session.info.pop(_CHANGED, frozenset())
    if changed:
        forget_changed(changed)


@event.listens_for(Session, "after_soft_rollback")
def _discard_on_rollback(session: Session, _previous: SessionTransaction) -> None:
    if not session.in_transaction():
        session.info.pop(_CHANGED, None)
        session.info.pop(_ANNOUNCED, None)
