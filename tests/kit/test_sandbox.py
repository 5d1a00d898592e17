"""A sandbox child, asked from the inside (tests/kit/sandbox_probe.py) to do what a hostile
model would: it holds none of the server's secrets, opens nothing, starts nothing, signals
nothing outside itself, and is stopped (with whatever it started) at its processor, memory and
wall-clock limits while the server goes on."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kai.app import create_app
from kai.config import Settings
from kai.kit import sandbox as sandbox_module
from kai.kit.sandbox import Limits, Sandbox, SandboxFailed, seccomp_available
from kai.runtime import Runtime

ROOT = str(Path(__file__).resolve().parents[2])
PROBE = "tests.kit.sandbox_probe"
FORKING_PROBE = "tests.kit.sandbox_forking_probe"
LIMITS = Limits(memory_bytes=512 * 1024**2, cpu_seconds=1.0, wall_seconds=20.0)
SECRET = b"the server's secret key: 7d1f0c9a"
# Refused by the descriptor cap (EMFILE), Landlock (EACCES) or the system-call filter (EPERM).
REFUSED = {errno.EMFILE, errno.EACCES, errno.EPERM}
needs_seccomp = pytest.mark.skipif(
    not seccomp_available(), reason="the system-call filter is for Linux on x86_64 or aarch64"
)


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
    # No-new-privileges holds with or without Landlock.
    assert "NoNewPrivs:\t1" in status


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


@needs_seccomp
def test_every_thread_of_the_child_is_sealed(probe: Sandbox) -> None:
    # The probe's prepare() left a thread running before the seal, as onnxruntime's import does.
    threads = os.listdir(f"/proc/{probe.pid}/task")
    statuses = [Path(f"/proc/{probe.pid}/task/{thread}/status").read_text() for thread in threads]

    assert probe.seccomp
    assert len(threads) == 2
    for status in statuses:
        assert "NoNewPrivs:\t1" in status
        assert "Seccomp:\t2" in status  # a filter


@needs_seccomp
def test_the_child_starts_no_process_or_program_and_makes_no_socket(probe: Sandbox) -> None:
    answers = [probe.call({"op": op}, max_reply_bytes=0)[0] for op in ("fork", "run", "udp-socket")]
    threaded, _ = probe.call({"op": "thread"}, max_reply_bytes=0)

    assert answers == [{"errno": errno.EPERM}] * 3
    # Threads it may start: the runtimes need them.
    assert threaded == {"ran": True}


@needs_seccomp
def test_a_descriptor_the_child_frees_opens_nothing_and_no_file_changes(
    probe: Sandbox, tmp_path: Path
) -> None:
    secret = tmp_path / "secret_key"
    secret.write_bytes(SECRET)

    reopened, _ = probe.call({"op": "reopen", "path": str(secret)}, max_reply_bytes=0)
    unlinked, _ = probe.call({"op": "unlink", "path": str(secret)}, max_reply_bytes=0)

    # The filter answers before Landlock would: the same whether the kernel has Landlock or not.
    assert reopened == {"errno": errno.EPERM}
    assert unlinked == {"errno": errno.EPERM}
    assert secret.read_bytes() == SECRET


@needs_seccomp
def test_the_child_cannot_signal_the_server(probe: Sandbox) -> None:
    # Signal 0 only asks whether the server could be signalled (same user: it could, unfiltered).
    answer, _ = probe.call({"op": "signal-parent"}, max_reply_bytes=0)

    assert answer == {"errno": errno.EPERM}
    # Signals to itself still work: a native crash still ends it, as `abort` shows above.


def test_closing_a_child_stops_what_it_left_in_its_process_group() -> None:
    sandbox = Sandbox(FORKING_PROBE, LIMITS, python_path=[ROOT])
    left_behind = 0
    try:
        answer, _ = sandbox.call({}, max_reply_bytes=0)
        left_behind = answer["left_behind"]
        assert os.getpgid(left_behind) == sandbox.pid
        sandbox.close()

        assert _ended(left_behind)
    finally:
        sandbox.close()
        if left_behind:
            with contextlib.suppress(ProcessLookupError):
                os.kill(left_behind, signal.SIGKILL)


def test_an_answer_nested_past_the_recursion_limit_is_a_protocol_failure(probe: Sandbox) -> None:
    depth = 5000
    assert sys.getrecursionlimit() < depth

    with pytest.raises(SandboxFailed) as failed:
        probe.call({"op": "nest", "depth": depth}, max_reply_bytes=0)

    assert failed.value.reason == "protocol"
    assert not probe.alive


@pytest.mark.database
async def test_the_server_says_at_startup_when_its_kernel_has_no_landlock(
    settings: Settings,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    monkeypatch.setattr(sandbox_module, "landlock_abi", lambda: 0)
    app = create_app(settings, runtime=runtime)

    async with app.router.lifespan_context(app):
        said = logged()

    (warning,) = [line for line in said if line["event"] == "sandbox.landlock_unavailable"]
    assert warning["level"] == "warning"
    assert "Landlock" in warning["consequence"]


def _ended(pid: int) -> bool:
    """Whether the process has ended (gone, or a zombie its new parent has not reaped), once
    the kernel has delivered the kill (asynchronous, but a matter of moments)."""
    for _ in range(1000):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.01)
    return False
