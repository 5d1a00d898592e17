"""Rate limits shared by the processes of one machine, without Redis.

`kai serve --workers N` on the embedded default runs N server processes and no Redis: each
process's own buckets would let a caller through N times as often as one process does. Here
the buckets live in a file that every process maps into memory, read and written under an
exclusive `flock`, so the N processes decide as one would (the same GCRA as
`kai.kit.ratelimit`).

The file is a header and two tables of fixed-size slots (a key's 64-bit hash and its TAT):
buckets of callers known by their address only, and the others (credentials',
organizations'), kept apart so a flood from many addresses never evicts an organization's
bucket. A key may sit in any of `PROBE` slots from where its hash points; a slot whose bucket
is full again (TAT in the past) is free, and when none of the key's slots is, the one whose
bucket is nearest full is taken over. An evicted bucket comes back full, as one the in-process
limiter evicts does. The clock is the machine's monotonic clock, which every process shares;
the file is made afresh by each `kai serve`, as buckets in memory are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from kai.kit.ratelimit import (
    RateLimit,
    RateLimitDecision,
    gcra,
    is_address_bucket,
)

_MAGIC = b"KAIRATE1"
_HEADER = struct.Struct("<8sQ")  # magic, slots per table
_SLOT = struct.Struct("<Qq")  # the key's hash (0: never used), its TAT in µs
_MICROSECONDS = 1_000_000
# Slots a key may occupy, from the one its hash names.
PROBE = 16
DEFAULT_SLOTS = 65_536


def create_table(path: Path, *, slots: int = DEFAULT_SLOTS) -> None:
    """A fresh, empty table at `path` (replacing any there), for the processes about to start."""
    if slots < PROBE:
        raise ValueError(f"a table holds at least {PROBE} slots per kind, not {slots}")
    size = _HEADER.size + 2 * slots * _SLOT.size
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(descriptor, size)
        os.pwrite(descriptor, _HEADER.pack(_MAGIC, slots), 0)
    finally:
        os.close(descriptor)


def _hash(key: str) -> int:
    # 64 bits: two keys of one table meeting by chance is out of reach (and would only make
    # them share a bucket). 0 marks a slot never used.
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value if value else 1


class SharedMemoryRateLimiter:
    """Buckets in a table file (see `create_table`) shared by every process that opens it."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._descriptor = os.open(path, os.O_RDWR)
        try:
            header = os.pread(self._descriptor, _HEADER.size, 0)
            magic, slots = _HEADER.unpack(header) if len(header) == _HEADER.size else (b"", 0)
            size = _HEADER.size + 2 * slots * _SLOT.size
            if magic != _MAGIC or slots < PROBE or os.fstat(self._descriptor).st_size != size:
                raise ValueError(f"{path} is not a rate-limit table")
            self._slots = int(slots)
            self._map = mmap.mmap(self._descriptor, size)
        except BaseException:
            os.close(self._descriptor)
            raise

    def _now(self) -> int:
        return round(self._clock() * _MICROSECONDS)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Held for a few microseconds, never across an await: no other task of this process
        # can want it meanwhile, and the other processes wait that long at most.
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def _offset(self, table: int, index: int) -> int:
        return _HEADER.size + (table * self._slots + index % self._slots) * _SLOT.size

    def _find(self, key: str, now: int, taken: set[int]) -> tuple[int, int, int | None]:
        """(slot offset, key hash, stored TAT or None): the key's slot, else the one to take."""
        hashed = _hash(key)
        table = 1 if is_address_bucket(key) else 0
        free: int | None = None
        nearest_full: tuple[int, int] | None = None  # (TAT, offset)
        for step in range(PROBE):
            offset = self._offset(table, hashed + step)
            stored_hash: int
            tat: int
            stored_hash, tat = _SLOT.unpack_from(self._map, offset)
            if stored_hash == hashed:
                return offset, hashed, tat
            if offset in taken:
                continue
            if free is None and (stored_hash == 0 or tat <= now):
                free = offset
            if nearest_full is None or tat < nearest_full[0]:
                nearest_full = (tat, offset)
        if free is None:
            assert nearest_full is not None, "more buckets in one request than PROBE slots"
            free = nearest_full[1]
        return free, hashed, None

    async def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitDecision:
        """Count a request of `cost` against `key`, unless that would exceed `limit`."""
        return (await self.hit_all([(key, limit)], cost=cost))[0]

    async def hit_all(
        self, buckets: Sequence[tuple[str, RateLimit]], *, cost: int = 1
    ) -> list[RateLimitDecision]:
        """Count a request against every bucket, or against none when any would refuse it."""
        for _, limit in buckets:
            limit.check_cost(cost)
        with self._locked():
            now = self._now()
            taken: set[int] = set()
            slots = []
            for key, _ in buckets:
                offset, hashed, tat = self._find(key, now, taken)
                taken.add(offset)
                slots.append((offset, hashed, tat))
            outcomes = [
                gcra(tat, now, limit, cost)
                for (_, _, tat), (_, limit) in zip(slots, buckets, strict=True)
            ]
            if all(new_tat is not None for new_tat, _ in outcomes):
                for (offset, hashed, _), (new_tat, _) in zip(slots, outcomes, strict=True):
                    _SLOT.pack_into(self._map, offset, hashed, new_tat)
        return [decision for _, decision in outcomes]

    async def reset(self, key: str) -> None:
        """Forget `key`'s usage: its next request finds a full bucket."""
        with self._locked():
            offset, _, tat = self._find(key, self._now(), set())
            if tat is not None:
                _SLOT.pack_into(self._map, offset, 0, 0)

    async def close(self) -> None:
        """Unmap the table; the file stays for the other processes (its maker removes it)."""
        if not self._map.closed:
            self._map.close()
            os.close(self._descriptor)
