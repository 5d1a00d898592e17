"""A sandbox child, asked from the inside (tests/kit/sandbox_probe.py) to do what a hostile
model would: it holds none of the server's secrets, opens nothing, and is stopped at its
processor, memory and wall-clock limits while the server goes on."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kai.kit.sandbox import Limits, Sandbox, SandboxFailed

ROOT = str(Path(__file__).resolve().parents[2])
PROBE = "tests.kit.sandbox_probe"
LIMITS = Limits(memory_bytes=512 * 1024**2, cpu_seconds=1.0, wall_seconds=20.0)
SECRET = b"the server's secret key: 7d1f0c9a"
# Refused by the descriptor cap (EMFILE) or, where the kernel has Landlock, by it (EACCES).
REFUSED = {errno.EMFILE, errno.EACCES, errno.EPERM}


def _probe(limits: Limits = LIMITS) -> Sandbox:
    return Sandbox(PROBE, limits, python_path=[ROOT])


@pytest.fixture
def probe() -> Iterator[Sandbox]:
    sandbox = _probe()
    try:
        yield sandbox
    finally:
        sandbox.close()


def test_the_child_holds_none_of_the_servers_environment_files_or_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAI_SECRET_KEY", SECRET.decode())
    monkeypatch.setenv("KAI_DATABASE_URL", "postgresql://kai:hunter2@db/kai")
    (tmp_path / "secret_key").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)
    # A descriptor the server could leave inheritable by mistake.
    leaked = os.open(tmp_path / "secret_key", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        sandbox = _probe()
    finally:
        os.close(leaked)
    try:
        seen, _ = sandbox.call({"op": "look"}, max_reply_bytes=0)
        links = {os.readlink(f"/proc/{sandbox.pid}/fd/{fd}") for fd in seen["fds"]}
        status = Path(f"/proc/{sandbox.pid}/status").read_text()
        read_relative, _ = sandbox.call({"op": "read", "path": "secret_key"}, max_reply_bytes=0)
        read_absolute, _ = sandbox.call(
            {"op": "read", "path": str(tmp_path / "secret_key")}, max_reply_bytes=0
        )
        read_system, _ = sandbox.call({"op": "read", "path": "/etc/passwd"}, max_reply_bytes=0)
    finally:
        sandbox.close()

    assert not [name for name in seen["env"] if name.startswith("KAI_")]
    assert SECRET.decode() not in str(seen["env"])
    # Its own empty working directory, removed with it.
    assert seen["cwd"] != str(tmp_path)
    assert not Path(seen["cwd"]).exists()
    # Its pipes and /dev/null, nothing inherited.
    assert all(link.startswith("pipe:") or link == "/dev/null" for link in links), links
    assert read_relative.get("errno") in REFUSED
    assert read_absolute.get("errno") in REFUSED
    assert read_system.get("errno") in REFUSED
    assert "NoNewPrivs:\t1" in status or sandbox.landlock == 0


def test_the_child_cannot_connect_to_a_service_on_the_servers_machine(probe: Sandbox) -> None:
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen()
        service.settimeout(0.5)

        answer, _ = probe.call(
            {"op": "connect", "port": service.getsockname()[1]}, max_reply_bytes=0
        )

        assert answer.get("errno") in REFUSED
        with pytest.raises(TimeoutError):
            service.accept()


def test_prints_on_the_childs_stdout_do_not_reach_the_conversation(probe: Sandbox) -> None:
    answer, payload = probe.call({"op": "echo"}, b"photo bytes", max_reply_bytes=100)

    assert answer == {"echo": True}
    assert payload == b"photo bytes"


@pytest.mark.parametrize(
    ("request_", "limits", "reason", "within"),
    [
        ({"op": "spin"}, LIMITS, "cpu", 15.0),
        ({"op": "sleep"}, Limits(LIMITS.memory_bytes, 1.0, wall_seconds=1.5), "time", 10.0),
        ({"op": "abort"}, LIMITS, "crashed", 10.0),
        ({"op": "shout", "bytes": 1000}, LIMITS, "protocol", 10.0),
    ],
)
def test_a_child_past_its_limits_is_stopped_and_said_why(
    request_: dict[str, object], limits: Limits, reason: str, within: float
) -> None:
    sandbox = _probe(limits)
    started = time.monotonic()

    with pytest.raises(SandboxFailed) as failed:
        sandbox.call(request_, max_reply_bytes=10)

    assert failed.value.reason == reason
    assert time.monotonic() - started < within
    assert not sandbox.alive
    with pytest.raises(SandboxFailed):
        sandbox.call({"op": "echo"}, max_reply_bytes=10)


def test_a_child_asking_for_more_memory_than_its_limit_is_refused_it(probe: Sandbox) -> None:
    answer, _ = probe.call({"op": "allocate", "bytes": 4 * 1024**3}, max_reply_bytes=0)

    assert answer == {"failed": "memory"}
    small, _ = probe.call({"op": "allocate", "bytes": 1024**2}, max_reply_bytes=0)
    assert small == {"allocated": 1024**2}
