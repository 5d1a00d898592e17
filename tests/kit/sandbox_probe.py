"""A sandbox handler for tests: asks, from inside the child, what a hostile model could try."""

from __future__ import annotations

import os
import socket
import time
from typing import Any


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
    return {"unknown": op}, b""


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
