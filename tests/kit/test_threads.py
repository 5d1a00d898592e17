"""Image checks run on threads of their own: however many uploads wait, at most a few are
worked on at once, and a password check still finds a thread."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from kai.config import AuthSettings, PasswordHashSettings
from kai.kit.passwords import Passwords
from kai.kit.threads import IMAGE_CHECKS, BoundedThreads

# Comfortably more than asyncio's default executor has threads (at most 32), and than the
# image pool has: if checks ran on the default executor, none would be left for hashing.
WAITING_CHECKS = 40


async def test_a_flood_of_image_checks_never_holds_back_password_hashing() -> None:
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    most = 0
    threads: set[str] = set()

    def check() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        release.wait()
        with lock:
            running -= 1

    checks = [asyncio.ensure_future(IMAGE_CHECKS.run(check)) for _ in range(WAITING_CHECKS)]
    try:
        for _ in range(1000):
            if running == IMAGE_CHECKS.size:
                break
            await asyncio.sleep(0.01)
        passwords = Passwords(
            AuthSettings(password_hash=PasswordHashSettings(memory_kib=1024, iterations=1))
        )

        # Every image thread busy, and the rest of the checks waiting for one.
        stored = await passwords.hash_async("lapis lazuli mosaic 1987")

        assert (await passwords.verify_async(stored, "lapis lazuli mosaic 1987")).verified
        assert running == IMAGE_CHECKS.size
    finally:
        release.set()
        await asyncio.gather(*checks)
    assert most == IMAGE_CHECKS.size
    assert all(name.startswith("kai-image-check") for name in threads)


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


async def test_a_pool_runs_in_the_callers_context_and_refuses_no_threads() -> None:
    pool = BoundedThreads("kai-test", 1)
    REQUEST_ID.set("req-1")  # what a request's log lines carry
    assert await pool.run(REQUEST_ID.get) == "req-1"
    assert await pool.run(divmod, 7, 2) == (3, 1)
    with pytest.raises(ValueError, match="at least one thread"):
        BoundedThreads("kai-test", 0)
