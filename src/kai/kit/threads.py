"""Thread pools of their own for blocking work that tenants can pile up.

asyncio's default executor (`asyncio.to_thread`) is shared by password hashing, local storage
and every other short blocking call of the process. Checking uploaded images (reading their
headers, decoding photos to recognize them, making derivatives) grows with what tenants send,
so it runs on a small pool of its own: a flood of uploads queues behind itself, and a login's
password check still finds a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BoundedThreads:
    """At most `size` threads; calls beyond that wait their turn, in order."""

    def __init__(self, name: str, size: int) -> None:
        if size < 1:
            raise ValueError(f"a thread pool needs at least one thread, not {size}")
        self.name = name
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args, **kwargs)` on one of the pool's threads, in the caller's context
        (its log fields), as `asyncio.to_thread` runs it on the default executor."""
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


# Uploaded images checked, decoded or re-encoded while a request waits. A few threads: a
# photo's decode is itself mostly native code that leaves the GIL, so more threads than cores
# buy nothing, and fewer keep cores for everything else the process does.
IMAGE_CHECKS = BoundedThreads("kai-image-check", max(1, min(4, os.cpu_count() or 1)))
