"""Objects written for rows whose transaction has not committed yet.

A row and the object it names must not part ways: an object written for a row is removed
again when the row's transaction (or the savepoint it was written in) does not commit, and an
object a committed row names is never removed before the transaction that forgets it commits
(`kai.kit.jobs.tasks.delete_after_commit`).

Services record the fresh keys they write with `remove_unless_committed` (or write with
`put_for_transaction`); whoever ends the transaction (the request's unit of work, a job's
attempt, `scoped_transaction`) calls `discard_uncommitted` once it is over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from kai.kit.storage.base import ObjectStorage, StoredObject

log = structlog.get_logger(__name__)

_TRACKER = "kai.kit.storage.uncommitted_objects"


@dataclass(frozen=True)
class _Written:
    storage: ObjectStorage
    key: str
    # The innermost transaction (a savepoint, or the root) open when the key was written.
    transaction: SessionTransaction


@dataclass
class _Tracker:
    written: list[_Written] = field(default_factory=list)
    committed: set[SessionTransaction] = field(default_factory=set)


@event.listens_for(Session, "after_commit")
def _remember_commit(session: Session, *_: object) -> None:
    tracker = session.info.get(_TRACKER)
    if tracker is not None:
        # Dispatched before the committing transaction closes: a savepoint being released
        # is still the session's nested transaction, else the root is committing.
        committing = session.get_nested_transaction() or session.get_transaction()
        if committing is not None:
            tracker.committed.add(committing)


async def remove_unless_committed(session: AsyncSession, storage: ObjectStorage, key: str) -> None:
    """Record that `key` is (about to be) written for rows of `session`'s open transaction:
    the object is removed when that transaction ends without committing.

    Only for keys no committed row names yet (a fresh id in the key): an object replaced in
    place would be removed from under the rows that named it before.
    """
    # The transaction the rows will be written in, begun now if the session has none yet.
    await session.connection()
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    assert transaction is not None
    tracker: _Tracker = session.info.setdefault(_TRACKER, _Tracker())
    tracker.written.append(_Written(storage, key, transaction))


async def put_for_transaction(
    session: AsyncSession,
    storage: ObjectStorage,
    key: str,
    data: bytes,
    *,
    content_type: str | None = None,
) -> StoredObject:
    """Store a new object for rows of `session`'s transaction; removed if they never commit."""
    await remove_unless_committed(session, storage, key)
    return await storage.put(key, data, content_type=content_type)


def keep_uncommitted(session: AsyncSession) -> list[str]:
    """Keep every object recorded on `session` whose fate is not known: its commit was sent
    and the connection was lost before the answer came. A file no row names is better than a
    row naming no file; the keys are logged for whoever wants to check."""
    tracker: _Tracker | None = session.info.pop(_TRACKER, None)
    if tracker is None:
        return []
    kept = [written.key for written in tracker.written]
    if kept:
        log.warning("storage.commit_outcome_unknown", keys=kept)
    return kept


def _committed(transaction: SessionTransaction | None, committed: set[SessionTransaction]) -> bool:
    # Kept only if its savepoint and every one around it, up to the root, committed.
    while transaction is not None:
        if transaction not in committed:
            return False
        transaction = transaction.parent
    return True


def _root(transaction: SessionTransaction) -> SessionTransaction:
    while transaction.parent is not None:
        transaction = transaction.parent
    return transaction


async def discard_uncommitted(session: AsyncSession) -> list[str]:
    """Once a unit of work is over: remove the objects written for rows that did not commit
    (its transaction rolled back, failed to commit, or was closed without committing).

    Objects of a transaction still in progress on the session are left to its own end.
    Returns the keys removed. A failed removal is logged, never raised: it leaves bytes
    nobody can reach, which is better than hiding why the unit of work failed.
    """
    tracker: _Tracker | None = session.info.get(_TRACKER)
    if tracker is None:
        return []
    current = session.sync_session.get_transaction()
    in_progress = current if current is not None and current.is_active else None
    doomed: list[_Written] = []
    pending: list[_Written] = []
    for written in tracker.written:
        if in_progress is not None and _root(written.transaction) is in_progress:
            pending.append(written)
        elif not _committed(written.transaction, tracker.committed):
            doomed.append(written)
    if pending:
        tracker.written = pending
    else:
        del session.info[_TRACKER]
    removed = []
    for written in doomed:
        try:
            await written.storage.delete(written.key)
        except Exception:
            log.warning("storage.uncommitted_object_kept", key=written.key, exc_info=True)
            continue
        removed.append(written.key)
    if removed:
        log.info("storage.uncommitted_objects_removed", keys=len(removed))
    return removed
