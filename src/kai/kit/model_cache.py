"""One bounded cache of what a process has loaded to run models: image backbones (built in or
uploaded), and each model version's heads.

Bounded twice: by entries (the least recently used goes first) and by idle time (what nobody
used for that long goes at the next look), so a server that once served a thousand
organizations does not keep a thousand organizations' models. Loading is single-flight per
key: threads asking for the same model at once load it once, and the rest wait for that one.
Thread-safe, since backbones are asked for on worker threads as well as the event loop's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import structlog

T = TypeVar("T")

log = structlog.get_logger(__name__)

DEFAULT_SIZE = 24
DEFAULT_IDLE_SECONDS = 30 * 60.0


@dataclass
class _Entry:
    value: Any
    used: float
    # Called with the value once it leaves the cache (an uploaded model's children stop).
    on_evict: Callable[[Any], None] | None


class ModelCache:
    """At most `size` entries, none kept past `idle_seconds` unused."""

    def __init__(
        self,
        *,
        size: int = DEFAULT_SIZE,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._loading: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def configure(self, *, size: int, idle_seconds: float) -> None:
        """New bounds, applied now."""
        with self._lock:
            self.size, self.idle_seconds = size, idle_seconds
            evicted = self._trim()
        _evict(evicted)

    def get(self, key: Hashable) -> Any | None:
        """The value kept under `key` (and now its most recent use), or None."""
        with self._lock:
            evicted = self._trim()
            entry = self._entries.get(key)
            if entry is not None:
                entry.used = self._clock()
                self._entries.move_to_end(key)
        _evict(evicted)
        return None if entry is None else entry.value

    def put(self, key: Hashable, value: T, *, on_evict: Callable[[T], None] | None = None) -> T:
        """Keep `value` under `key`; a value kept there already wins (and is returned)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(value, self._clock(), cast(Callable[[Any], None] | None, on_evict))
                self._entries[key] = entry
            entry.used = self._clock()
            self._entries.move_to_end(key)
            evicted = self._trim()
        _evict(evicted)
        return cast(T, entry.value)

    def get_or_load(
        self,
        key: Hashable,
        load: Callable[[], T],
        *,
        on_evict: Callable[[T], None] | None = None,
    ) -> T:
        """The value under `key`, loaded by `load()` (blocking) when missing; while one thread
        loads it, others asking for it wait rather than load it again."""
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.used = self._clock()
                    self._entries.move_to_end(key)
                    return cast(T, entry.value)
                loading = self._loading.get(key)
                if loading is None:
                    loading = self._loading[key] = threading.Event()
                    break
            loading.wait()
        try:
            value = load()
            return self.put(key, value, on_evict=on_evict)
        finally:
            with self._lock:
                del self._loading[key]
            loading.set()

    def discard(self, key: Hashable) -> None:
        """Forget `key` (its eviction hook runs)."""
        with self._lock:
            entry = self._entries.pop(key, None)
        _evict([entry] if entry is not None else [])

    def clear(self) -> None:
        with self._lock:
            evicted = list(self._entries.values())
            self._entries.clear()
        _evict(evicted)

    def keys(self) -> list[Hashable]:
        """What is kept now, least recently used first."""
        with self._lock:
            evicted = self._trim()
            found = list(self._entries)
        _evict(evicted)
        return found

    def _trim(self) -> list[_Entry]:
        """Entries past the bounds, taken out (their hooks run outside the lock)."""
        evicted = []
        idle_since = self._clock() - self.idle_seconds
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if len(self._entries) <= self.size and oldest.used > idle_since:
                break
            evicted.append(self._entries.pop(key))
        return evicted


def _evict(entries: list[_Entry]) -> None:
    for entry in entries:
        if entry.on_evict is not None:
            try:
                entry.on_evict(entry.value)
            except Exception:
                log.warning("kit.model_evict_failed", exc_info=True)


# The process's one cache of models (sized from the settings when the runtime starts).
MODELS = ModelCache()
