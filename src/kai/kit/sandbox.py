"""Untrusted work in a child process of its own, within limits the kernel enforces.

A `Sandbox` starts `python -I -B` on a handler module with an environment that holds nothing
of the server's (no `KAI_*` settings, no credentials), no inherited descriptors and an empty
temporary working directory. Before it imports the handler the child limits itself: address
space (RLIMIT_AS), no core files, no file writes (RLIMIT_FSIZE 0) and processor time
(RLIMIT_CPU, moved on before each request: past it the kernel stops the child with SIGXCPU).
After the handler's `prepare()` and before its first request, the child seals itself: it sets
no-new-privileges, caps its descriptor table at what is open, where the kernel has Landlock
forbids itself every file access and TCP connection, and installs a seccomp filter (on every
thread) that refuses the system calls a model never needs: opening files, changing files by
name, sockets, starting processes or programs, signalling or reading other processes, and the
kernel interfaces exploits reach for. The parent waits for each answer for at most a
wall-clock timeout and kills the child past it, with its whole process group.

Requests and answers are a JSON header and a binary payload, each length-prefixed; nothing
is unpickled, and the parent believes no more of an answer than its caller checks.

A handler module defines `handle(header, payload) -> (header, payload)` and may define
`prepare()` (imports and warm-ups that need files: nothing can be opened once it returns).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import json
import os
import platform
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

import kai

log = structlog.get_logger(__name__)

# A header is a small JSON object; anything longer is a child that lost its mind.
MAX_HEADER_BYTES = 64 * 1024
_HEADER_LENGTH = struct.Struct(">I")
_PAYLOAD_LENGTH = struct.Struct(">Q")
_CHUNK = 1024 * 1024

# Processor and wall time a child may take to start: importing the handler is the server's own
# code, before the child has read anything untrusted (requests have the limits given).
START_SECONDS = 60.0

FailureReason = Literal["memory", "cpu", "time", "crashed", "protocol"]

# The child's first words once it is sealed; `landlock` is the ABI it confined itself with (0:
# none on this kernel), `seccomp` whether its system-call filter is in place.
_BOOTSTRAP = (
    "import json, sys; config = json.loads(sys.argv[1]); sys.path[:0] = config['path']; "
    "from kai.kit.sandbox import child_main; child_main(config)"
)


@dataclass(frozen=True)
class Limits:
    """What one child may use: address space in all, and per request processor and wall time."""

    memory_bytes: int
    cpu_seconds: float
    wall_seconds: float


class SandboxFailed(Exception):
    """The child died, ran out of time, or answered nonsense; it is gone either way."""

    def __init__(self, reason: FailureReason) -> None:
        super().__init__(reason)
        self.reason: FailureReason = reason


def _kai_path() -> str:
    """The folder the running `kai` package was imported from: the child imports the same."""
    return str(Path(kai.__file__).resolve().parent.parent)


class Sandbox:
    """One child process running `handler`; started (and sealed) by the constructor.

    Not thread-safe: one request at a time (a pool hands each child to one caller).
    """

    def __init__(
        self,
        handler: str,
        limits: Limits,
        *,
        environment: Mapping[str, str] | None = None,
        python_path: Sequence[str] = (),
    ) -> None:
        self.limits = limits
        self.landlock = 0
        self.seccomp = False
        # Its working directory stays empty; libraries' temporary files go beside it.
        self._scratch = tempfile.mkdtemp(prefix="kai-sandbox-")
        working, temporary = Path(self._scratch) / "work", Path(self._scratch) / "tmp"
        working.mkdir()
        temporary.mkdir()
        config = {
            "handler": handler,
            "path": [*python_path, _kai_path()],
            "memory_bytes": limits.memory_bytes,
            "cpu_seconds": limits.cpu_seconds,
        }
        # Only what Python and the native runtimes need: never the server's own environment.
        env = {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            # No home: runtimes keep caches there (onnxruntime a device id); none is needed.
            "HOME": "/nonexistent",
            "TMPDIR": str(temporary),
            "OMP_NUM_THREADS": "1",
            **(environment or {}),
        }
        try:
            self._process = subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
                [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=working,
                env=env,
                close_fds=True,
                # Its own session: a Ctrl-C at the terminal is the server's to handle.
                start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._requests = self._process.stdin.fileno()
        self._answers = self._process.stdout.fileno()
        os.set_blocking(self._requests, False)
        try:
            started = time.monotonic() + max(limits.wall_seconds, START_SECONDS)
            hello, _ = self._receive(started, max_payload=0)
        except BaseException:
            self.close()
            raise
        if hello.get("ready") is not True:
            self.close()
            raise SandboxFailed("protocol")
        landlock = hello.get("landlock")
        self.landlock = landlock if isinstance(landlock, int) else 0
        self.seccomp = hello.get("seccomp") is True

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._exit_status(0) is None

    def call(
        self, header: Mapping[str, Any], payload: bytes = b"", *, max_reply_bytes: int
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its answer within the wall-clock limit.

        Raises SandboxFailed (the child is then closed) when it does not answer in time,
        dies on the way (out of memory or processor time, or a crash) or answers nonsense.
        """
        if not self.alive:
            self.close()
            raise SandboxFailed("crashed")
        deadline = time.monotonic() + self.limits.wall_seconds
        try:
            self._send(header, payload, deadline)
            return self._receive(deadline, max_payload=max_reply_bytes)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill the child and whatever it started (its process group), reap it and remove its
        working directory."""
        if self._process.returncode is None:
            # The child leads a session and process group of its own, whose number stays its
            # own until the child is reaped (only below): nothing else can be signalled here.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _send(self, header: Mapping[str, Any], payload: bytes, deadline: float) -> None:
        encoded = json.dumps(header).encode()
        prefix = _HEADER_LENGTH.pack(len(encoded)) + encoded + _PAYLOAD_LENGTH.pack(len(payload))
        for data in (prefix, payload):
            view = memoryview(data)
            while view:
                self._wait(deadline, write=True)
                try:
                    written = os.write(self._requests, view[:_CHUNK])
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    raise self._failure() from None
                view = view[written:]

    def _receive(self, deadline: float, *, max_payload: int) -> tuple[dict[str, Any], bytes]:
        (length,) = _HEADER_LENGTH.unpack(self._read(_HEADER_LENGTH.size, deadline))
        if length > MAX_HEADER_BYTES:
            raise SandboxFailed("protocol")
        try:
            header = json.loads(self._read(length, deadline))
        # Brackets nested past the interpreter's recursion limit are nonsense too.
        except (ValueError, RecursionError):
            raise SandboxFailed("protocol") from None
        (size,) = _PAYLOAD_LENGTH.unpack(self._read(_PAYLOAD_LENGTH.size, deadline))
        if not isinstance(header, dict) or size > max_payload:
            raise SandboxFailed("protocol")
        return header, self._read(size, deadline)

    def _read(self, size: int, deadline: float) -> bytes:
        parts = bytearray()
        while len(parts) < size:
            self._wait(deadline, write=False)
            chunk = os.read(self._answers, min(size - len(parts), _CHUNK))
            if not chunk:
                raise self._failure()
            parts += chunk
        return bytes(parts)

    def _wait(self, deadline: float, *, write: bool) -> None:
        """Until the pipe is ready (or closed), or the deadline has passed."""
        remaining = deadline - time.monotonic()
        ready: list[tuple[int, int]] = []
        if remaining > 0:
            # poll, not select: a busy server's descriptors go past select's 1024.
            waiting = select.poll()
            if write:
                waiting.register(self._requests, select.POLLOUT)
            else:
                waiting.register(self._answers, select.POLLIN)
            ready = waiting.poll(remaining * 1000)
        if not ready:
            raise SandboxFailed("time")

    def _exit_status(self, timeout: float) -> int | None:
        """How the child ended (negative: the signal that ended it), once it has, within
        `timeout` seconds; None while it runs. It is not reaped here (close() does that, after
        killing its process group, which is only sure to be its own until then)."""
        if self._process.returncode is not None:
            return self._process.returncode
        deadline = time.monotonic() + timeout
        while True:
            try:
                ended = os.waitid(os.P_PID, self._process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped by someone else: gone, however it ended
                return self._process.wait()
            if ended is not None:
                if ended.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
                    return -ended.si_status
                return ended.si_status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def _failure(self) -> SandboxFailed:
        """Why the child went away (it closed its end of a pipe)."""
        code = self._exit_status(5)
        if code is None:
            return SandboxFailed("protocol")
        if code == -signal.SIGXCPU:
            return SandboxFailed("cpu")
        # Under the address-space limit an allocation fails with an error rather than a
        # kill; a SIGKILL we did not send is the kernel's out-of-memory killer.
        if code == -signal.SIGKILL:
            return SandboxFailed("memory")
        return SandboxFailed("crashed")


# The child's side.


def child_main(config: Mapping[str, Any]) -> None:
    """Limit this process, load the handler, seal, and answer requests until stdin closes."""
    cpu_seconds = float(config["cpu_seconds"])
    memory = int(config["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _budget_cpu(max(cpu_seconds, START_SECONDS))
    try:
        handler = importlib.import_module(str(config["handler"]))
        prepare = getattr(handler, "prepare", None)
        if prepare is not None:
            prepare()
    except MemoryError:
        _answer(1, {"failed": "memory"}, b"")
        return
    requests, answers = 0, _seal()
    # Before anything else: Landlock and seccomp need it, and it holds without them too.
    no_new_privileges = _no_new_privileges()
    landlock = _landlock() if no_new_privileges else 0
    _cap_descriptors()
    seccomp = _seccomp(os.getpid()) if no_new_privileges else False
    _answer(answers, {"ready": True, "landlock": landlock, "seccomp": seccomp}, b"")
    while True:
        request = _request(requests)
        if request is None:
            return
        _budget_cpu(cpu_seconds)
        try:
            reply, payload = handler.handle(*request)
        except MemoryError:
            reply, payload = {"failed": "memory"}, b""
        except Exception as exc:  # the handler's own bug: said, and the child goes on
            reply, payload = {"failed": "internal", "log": repr(exc)[:2000]}, b""
        _answer(answers, reply, payload)


def _budget_cpu(seconds: float) -> None:
    """Processor time from now on: the kernel sends SIGXCPU (which ends the child) past it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _seal() -> int:
    """Move the answers off stdout (native code prints there) and send stdout and stderr to
    /dev/null; the descriptor to answer on."""
    null = os.open(os.devnull, os.O_RDWR)
    answers = os.dup(1)
    os.dup2(null, 1)
    os.dup2(null, 2)
    return answers


def _cap_descriptors() -> None:
    """Fill every free descriptor below the highest open one with /dev/null and cap the table
    there: the child can open no file and no socket from now on."""
    highest = max(fd for fd in range(4096) if _is_open(fd))
    for fd in range(highest):
        if not _is_open(fd):
            os.dup2(1, fd)  # stdout: /dev/null by now
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, highest + 1))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _request(requests: int) -> tuple[dict[str, Any], bytes] | None:
    head = _read_exactly(requests, _HEADER_LENGTH.size)
    if head is None:
        return None
    (length,) = _HEADER_LENGTH.unpack(head)
    header = json.loads(_read_exactly(requests, length) or b"")
    (size,) = _PAYLOAD_LENGTH.unpack(_read_exactly(requests, _PAYLOAD_LENGTH.size) or b"")
    payload = _read_exactly(requests, size) if size else b""
    if payload is None:
        return None
    return header, payload


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts = bytearray()
    while len(parts) < size:
        chunk = os.read(fd, min(size - len(parts), _CHUNK))
        if not chunk:
            return None
        parts += chunk
    return bytes(parts)


def _answer(fd: int, header: Mapping[str, Any], payload: bytes) -> None:
    encoded = json.dumps(header).encode()
    for data in (
        _HEADER_LENGTH.pack(len(encoded)) + encoded + _PAYLOAD_LENGTH.pack(len(payload)),
        payload,
    ):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


# Landlock (Linux 5.13+): the child denies itself every file access (and, from ABI 4, TCP;
# from ABI 6, signals and abstract sockets outside itself). Numbers from <linux/landlock.h>.
_SYS_CREATE_RULESET, _SYS_RESTRICT_SELF = 444, 446
_PR_SET_NO_NEW_PRIVS = 38
_FS_ACCESS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_AND_CONNECT_TCP = 0b11
_SCOPE_ABSTRACT_UNIX_SOCKET_AND_SIGNAL = 0b11


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _no_new_privileges() -> bool:
    """No program this process could still run gains privileges (set-user-ID, capabilities);
    whether the kernel took it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers (0: none); asking changes nothing."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return max(
            0, int(libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
        )
    except (OSError, AttributeError):
        return 0


def _landlock() -> int:
    """Confine this thread (see SECURITY.md: only this one) with Landlock where the kernel has
    it; the ABI used, or 0. Needs no-new-privileges set first."""
    abi = landlock_abi()
    if abi < 1:
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        attr = _RulesetAttr(
            handled_access_fs=_FS_ACCESS_BY_ABI[
                max(key for key in _FS_ACCESS_BY_ABI if key <= abi)
            ],
            handled_access_net=_NET_BIND_AND_CONNECT_TCP if abi >= 4 else 0,
            scoped=_SCOPE_ABSTRACT_UNIX_SOCKET_AND_SIGNAL if abi >= 6 else 0,
        )
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        ruleset = int(
            libc.syscall(
                _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
            )
        )
        if ruleset < 0:
            return 0
        try:
            if libc.syscall(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
                return 0
        finally:
            os.close(ruleset)
    except (OSError, AttributeError):
        return 0
    return abi


# seccomp: a filter, on every thread of the child, that refuses (EPERM) the system calls below.
# Numbers from <asm/unistd_64.h> (x86_64) and <asm-generic/unistd.h> (aarch64); None where the
# architecture has no such call. On another architecture the child goes without (and says so).
_SYSTEM_CALLS: dict[str, tuple[int | None, int | None]] = {
    # files, by name: new descriptors would get round the descriptor cap
    "open": (2, None),
    "creat": (85, None),
    "openat": (257, 56),
    "openat2": (437, 437),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    # changes to files by name (the server's own, without Landlock)
    "unlink": (87, None),
    "unlinkat": (263, 35),
    "rename": (82, None),
    "renameat": (264, 38),
    "renameat2": (316, 276),
    "rmdir": (84, None),
    "mkdir": (83, None),
    "mkdirat": (258, 34),
    "link": (86, None),
    "linkat": (265, 37),
    "symlink": (88, None),
    "symlinkat": (266, 36),
    "chmod": (90, None),
    "fchmodat": (268, 53),
    "fchmodat2": (452, 452),
    "chown": (92, None),
    "lchown": (94, None),
    "fchownat": (260, 54),
    "truncate": (76, 45),
    "mknod": (133, None),
    "mknodat": (259, 33),
    "utime": (132, None),
    "utimes": (235, None),
    "futimesat": (261, None),
    "utimensat": (280, 88),
    "setxattr": (188, 5),
    "lsetxattr": (189, 6),
    "removexattr": (197, 14),
    "lremovexattr": (198, 15),
    # the network, and sockets on the machine
    "socket": (41, 198),
    "socketpair": (53, 199),
    "connect": (42, 203),
    "bind": (49, 200),
    "listen": (50, 201),
    "accept": (43, 202),
    "accept4": (288, 242),
    # processes and programs (threads are let through below: the runtimes start them)
    "fork": (57, None),
    "vfork": (58, None),
    "execve": (59, 221),
    "execveat": (322, 281),
    # other processes: the server runs as the same user
    "tkill": (200, 130),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "pidfd_open": (434, 434),
    "pidfd_getfd": (438, 438),
    "pidfd_send_signal": (424, 424),
    # what kernel exploits reach for, and what only administrators use
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "bpf": (321, 280),
    "userfaultfd": (323, 282),
    "perf_event_open": (298, 241),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
}
# Signals: only to itself (its first argument, the process, is its own).
_OWN_SIGNALS = {
    "kill": (62, 129),
    "tgkill": (234, 131),
    "rt_sigqueueinfo": (129, 138),
    "rt_tgsigqueueinfo": (297, 240),
}
# clone: threads only (CLONE_THREAD, no new namespace); clone3 passes its flags in memory the
# filter cannot read, so it answers ENOSYS and the C library falls back on clone.
_CLONE, _CLONE3 = (56, 220), (435, 435)
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x7E020000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
_ARCHITECTURES = {"x86_64": (0, 0xC000003E, 317), "aarch64": (1, 0xC00000B7, 277)}
_X32_SYSTEM_CALL = 0x40000000
_SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 1, 1
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LOAD_WORD, _JUMP_EQUAL, _JUMP_GREATER_EQUAL, _JUMP_ANY_BIT, _RETURN = 0x20, 0x15, 0x35, 0x45, 0x06
# struct seccomp_data: the call's number, the architecture, then the arguments (the low
# 32 bits of the first, on these little-endian machines).
_NUMBER, _ARCHITECTURE, _FIRST_ARGUMENT = 0, 4, 16


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_available() -> bool:
    """Whether the child can filter its system calls here (Linux on x86_64 or aarch64)."""
    return sys.platform.startswith("linux") and platform.machine() in _ARCHITECTURES


def _seccomp_program(machine: str, pid: int) -> list[tuple[int, int, int, int]]:
    """The filter, as (code, jump if true, jump if false, constant) instructions."""
    column, architecture, _ = _ARCHITECTURES[machine]
    refuse, missing = _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.ENOSYS
    program = [
        (_LOAD_WORD, 0, 0, _ARCHITECTURE),
        (_JUMP_EQUAL, 1, 0, architecture),
        (_RETURN, 0, 0, _RET_KILL_PROCESS),
        (_LOAD_WORD, 0, 0, _NUMBER),
    ]
    if machine == "x86_64":
        # The x32 calls: nothing here uses them, and the numbers above do not cover them.
        program += [
            (_JUMP_GREATER_EQUAL, 0, 1, _X32_SYSTEM_CALL),
            (_RETURN, 0, 0, _RET_KILL_PROCESS),
        ]
    for numbers in _SYSTEM_CALLS.values():
        number = numbers[column]
        if number is not None:
            program += [(_JUMP_EQUAL, 0, 1, number), (_RETURN, 0, 0, refuse)]
    program += [(_JUMP_EQUAL, 0, 1, _CLONE3[column]), (_RETURN, 0, 0, missing)]
    program += [
        (_JUMP_EQUAL, 0, 5, _CLONE[column]),
        (_LOAD_WORD, 0, 0, _FIRST_ARGUMENT),
        (_JUMP_ANY_BIT, 2, 0, _CLONE_NAMESPACES),
        (_JUMP_ANY_BIT, 0, 1, _CLONE_THREAD),
        (_RETURN, 0, 0, _RET_ALLOW),
        (_RETURN, 0, 0, refuse),
    ]
    for numbers in _OWN_SIGNALS.values():
        program += [
            (_JUMP_EQUAL, 0, 4, numbers[column]),
            (_LOAD_WORD, 0, 0, _FIRST_ARGUMENT),
            (_JUMP_EQUAL, 0, 1, pid),
            (_RETURN, 0, 0, _RET_ALLOW),
            (_RETURN, 0, 0, refuse),
        ]
    program.append((_RETURN, 0, 0, _RET_ALLOW))
    return program


def _seccomp(pid: int) -> bool:
    """Install the filter on every thread of this process (`pid`); whether it is in place.
    Needs no-new-privileges set first."""
    if not seccomp_available():
        return False
    machine = platform.machine()
    instructions = _seccomp_program(machine, pid)
    filters = (_SockFilter * len(instructions))(
        *(_SockFilter(code, jt, jf, k) for code, jt, jf, k in instructions)
    )
    program = _SockFprog(len(instructions), filters)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # TSYNC: every thread at once (onnxruntime starts one on import), or none; a thread
        # that cannot follow makes the call answer its id instead of 0.
        done = libc.syscall(
            ctypes.c_long(_ARCHITECTURES[machine][2]),
            ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(_SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.byref(program),
        )
    except (OSError, AttributeError):
        return False
    return bool(done == 0)


def warn_if_confined_less() -> None:
    """At startup: say in the log what children started here will go without (Landlock, the
    system-call filter), which SECURITY.md says then holds less."""
    if not landlock_abi():
        log.warning(
            "sandbox.landlock_unavailable",
            consequence="children of uploaded models are held without Landlock: by the "
            "system-call filter, the descriptor cap and their resource limits",
        )
    if not seccomp_available():
        log.warning(
            "sandbox.seccomp_unavailable",
            consequence="children of uploaded models filter no system calls on this machine",
        )
