"""A sandbox handler for tests: asks, from inside the child, what a hostile model could try."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def prepare() -> None:
    """Leave a thread running, as onnxruntime does when it is imported: sealing must reach it."""
    threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()


def handle(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    op = header["op"]
    if op == "echo":
        print("native code and prints write to stdout", flush=True)
        os.write(1, b"\x00\x00\x00\x05junk")
        return {"echo": True}, payload
    if op == "look":
        open_descriptors = [fd for fd in range(256) if _is_open(fd)]
        return {"env": dict(os.environ), "cwd": os.getcwd(), "fds": open_descriptors}, b""
    if op == "read":
        try:
            with open(header["path"], "rb") as file:
                return {"read": file.read().hex()}, b""
        except OSError as exc:
            return {"errno": exc.errno}, b""
    if op == "connect":
        try:
            with socket.create_connection(("127.0.0.1", header["port"]), timeout=2):
                return {"connected": True}, b""
        except OSError as exc:
            return {"errno": exc.errno}, b""
    if op == "spin":
        while True:
            pass
    if op == "sleep":
        time.sleep(3600)
    if op == "allocate":
        return {"allocated": len(bytearray(header["bytes"]))}, b""
    if op == "abort":
        os.abort()
    if op == "shout":
        return {}, b"x" * header["bytes"]
    if op == "nest":
        # Brackets nested deeper than the server's recursion limit (the child raises its own).
        sys.setrecursionlimit(header["depth"] * 2)
        nested: list[Any] = []
        for _ in range(header["depth"]):
            nested = [nested]
        return {"nested": nested}, b""
    if op == "fork":
        return _attempt(_fork), b""
    if op == "run":
        # What a hostile model would try; refused by the filter.
        return _attempt(lambda: os.execv("/bin/true", ["/bin/true"])), b""  # noqa: S606
    if op == "udp-socket":
        return _attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()), b""
    if op == "reopen":
        # Free a slot under the descriptor cap (fd 3: the /dev/null the seal opened), then open.
        os.close(3)
        return _attempt(lambda: os.close(os.open(header["path"], os.O_RDONLY))), b""
    if op == "unlink":
        return _attempt(lambda: os.unlink(header["path"])), b""
    if op == "signal-parent":
        # Signal 0 only asks whether the server could be signalled; it does nothing to it.
        return _attempt(lambda: os.kill(os.getppid(), 0)), b""
    if op == "thread":
        ran: list[bool] = []
        worker = threading.Thread(target=lambda: ran.append(True))
        worker.start()
        worker.join()
        return {"ran": ran == [True]}, b""
    return {"unknown": op}, b""


def _attempt(action: Callable[[], object]) -> dict[str, Any]:
    try:
        action()
    except OSError as exc:
        return {"errno": exc.errno}
    return {"done": True}


def _fork() -> None:
    if os.fork() == 0:
        os._exit(0)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
