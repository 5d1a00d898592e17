"""A sandbox handler whose `prepare()` leaves a process behind in the child's process group (as
a child without a system-call filter could do later): closing the sandbox must stop it too."""

from __future__ import annotations

import os
import time
from typing import Any

_left_behind = 0


def prepare() -> None:
    global _left_behind
    pid = os.fork()
    if pid == 0:
        # Holds none of the child's pipes, so only a signal to the group can end it.
        os.closerange(0, 1024)
        while True:
            time.sleep(60)
    _left_behind = pid


def handle(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    return {"left_behind": _left_behind}, b""
