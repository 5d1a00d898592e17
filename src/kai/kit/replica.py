"""A streaming replica of the database, for reads that may be a moment behind.

Searches and listings read from it (`kai.deps.ReadSession`) while it keeps up. How far behind
it is gets measured at most once a second per process, with what any role may ask: where the
primary's log ends (each time noted with the time), and how far the replica has replayed it.
It is as far behind as the newest noted end it has replayed is old, and holds every write
committed before that moment. Past `KAI_DATABASE__REPLICA_MAX_LAG_SECONDS`, or when either
cannot be asked, every read goes to the primary until it catches up again; so does a caller's
read until the replica holds its last write. Checks run beside the requests, which use the
latest one and never wait for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kai.config import DatabaseSettings
from kai.kit.db import create_engine, create_session_factory

log = structlog.get_logger(__name__)

CHECK_EVERY_SECONDS = 1.0
# A measurement older than this (its check hangs or fails) is no measurement: the primary.
STALE_AFTER_SECONDS = 5.0
# A write's time is taken just before its commit: a check in between would see the time but
# not the commit. The replica must have replayed this far past a caller's last write.
COMMIT_MARGIN = timedelta(seconds=1)
_WRITTEN = text("SELECT pg_current_wal_lsn()::text, clock_timestamp()")
_REPLAYED = text("SELECT pg_last_wal_replay_lsn()::text")


@dataclass(frozen=True)
class Measure:
    """One check: when it was made (this process's monotonic clock), how far behind the
    replica was, and up to which moment (the primary's clock) it had replayed everything."""

    taken_at: float
    lag_seconds: float
    replayed_through: datetime | None


def _lsn(text_form: str) -> int:
    high, _, low = text_form.partition("/")
    return int(high, 16) << 32 | int(low, 16)


# In the `info` of every replica session: what it reads may be a moment behind the primary.
REPLICA_INFO = "kai.replica"


def on_replica(session: AsyncSession) -> bool:
    """Whether `session` reads the replica (a moment behind) rather than the primary."""
    return bool(session.info.get(REPLICA_INFO))


class Replica:
    """The replica's sessions, and whether it is close enough behind to read from."""

    def __init__(
        self,
        url: str,
        settings: DatabaseSettings,
        *,
        primary: AsyncEngine,
        info: dict[str, Any],
    ) -> None:
        self.primary = primary
        self.engine = create_engine(
            url,
            settings,
            connect_args={
                "options": f"-c statement_timeout={settings.statement_timeout_ms}",
                "application_name": "kai-replica",
                # A replica that does not answer must not hold requests up for long.
                "connect_timeout": 3,
            },
        )
        self.session_factory: async_sessionmaker[AsyncSession] = create_session_factory(
            self.engine, info={**info, REPLICA_INFO: True}
        )
        self.max_lag_seconds = settings.replica_max_lag_seconds
        self._measure: Measure | None = None
        self._checking: asyncio.Task[None] | None = None
        # (the primary's clock, where its log ended then), oldest first.
        self._ends: deque[tuple[datetime, int]] = deque()

    async def serves(self, last_write_at: datetime | None) -> bool:
        """Whether a caller that last wrote at `last_write_at` may read from the replica: it
        is close enough behind, and has replayed that write. Never waits for a check, but
        for the very first one of the process."""
        measure = self._measure
        if measure is None or time.monotonic() - measure.taken_at >= CHECK_EVERY_SECONDS:
            if self._checking is None or self._checking.done():
                self._checking = asyncio.create_task(self._check())
            if measure is None:
                await asyncio.shield(self._checking)
                measure = self._measure
        if measure is None or measure.replayed_through is None:
            return False
        age = time.monotonic() - measure.taken_at
        # At worst it has replayed nothing since it was measured.
        if age > STALE_AFTER_SECONDS or measure.lag_seconds + age > self.max_lag_seconds:
            return False
        return last_write_at is None or last_write_at + COMMIT_MARGIN < measure.replayed_through

    async def _check(self) -> None:
        lag, replayed_through = await self._ask()
        self._measure = Measure(time.monotonic(), lag, replayed_through)

    async def _ask(self) -> tuple[float, datetime | None]:
        try:
            async with self.primary.connect() as connection:
                written, now = (await connection.execute(_WRITTEN)).one()
            async with self.engine.connect() as connection:
                replayed = await connection.scalar(_REPLAYED)
        except Exception as exc:  # any failure means: read from the primary for now
            log.warning("replica.unreachable", error=f"{type(exc).__name__}: {exc}"[:300])
            return math.inf, None
        self._ends.append((now, _lsn(written)))
        # Enough history to tell any lag up to well past the limit.
        horizon = timedelta(seconds=4 * self.max_lag_seconds + 10)
        while len(self._ends) > 1 and now - self._ends[1][0] > horizon:
            self._ends.popleft()
        if replayed is None:
            log.warning("replica.not_replaying", detail="the replica URL names no standby")
            return math.inf, None
        position = _lsn(replayed)
        caught_up_to = [when for when, end in self._ends if end <= position]
        if not caught_up_to:
            return math.inf, None
        seconds = (now - caught_up_to[-1]).total_seconds()
        if seconds > self.max_lag_seconds:
            log.warning("replica.behind", seconds=round(seconds, 1))
        return seconds, caught_up_to[-1]

    async def close(self) -> None:
        if self._checking is not None and not self._checking.done():
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
        await self.engine.dispose()
