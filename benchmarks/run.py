"""Run the foundation benchmarks: start-up time and HTTP throughput and latency of `kai serve`."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from kai.kit.db import libpq_url
from kai.kit.pgembed import EmbeddedPostgres

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
WARM_START_GOAL_S = 3.0
HEALTHZ_GOAL_RPS = 3000.0
AUTHENTICATED_READ_GOAL_RPS = 1500.0
# Issue 16: KAI's read against the same framework's bare route, measured side by side.
AUTHENTICATED_READ_SHARE_GOAL = 0.6
AUTHENTICATED_READ_SPREAD_GOAL = 4.0
AUTHENTICATED_READ = "GET /api/v1/organization (authenticated read)"
CEILING_RAW = "ceiling: bare ASGI + psycopg, one organization read"
CEILING_FASTAPI = "ceiling: bare FastAPI route + psycopg, one organization read"
BENCH_EMAIL = "bench@quarry.example"
BENCH_PASSWORD = "benchmark porphyry 1911"  # noqa: S105 - a throwaway account of the run
# Lines of the server's log that point at a failure under load.
PROBLEM_PATTERN = re.compile(r"error|exception|traceback|critical", re.IGNORECASE)


@dataclass
class StartupRun:
    """One start of `kai serve`: seconds from spawn to the first 200 of /readyz, and to stop."""

    kind: str
    ready_s: float
    stop_s: float
    exit_code: int


@dataclass
class HttpRun:
    """One load run against one URL."""

    target: str
    url: str
    expected_status: int
    status_before: int
    status_after: int
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Goal:
    """A target the foundation must meet, and whether this run met it."""

    name: str
    target: str
    measured: str
    passed: bool | None  # None: the benchmark was not run


class ServeProcess:
    """A `kai serve` subprocess on its own data dir and port, stopped as a service manager would."""

    live: list[ServeProcess] = []  # noqa: RUF012 - a registry of everything to stop on exit

    def __init__(
        self,
        data_dir: Path,
        *,
        worker: bool,
        settings: dict[str, str] | None = None,
        processes: int = 1,
    ) -> None:
        self.data_dir = data_dir
        # KAI_* settings to try (`--setting`), over the benchmark's own.
        self.settings = settings or {}
        self.port = free_port()
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        self.args = [*kai_command(), "serve", "--port", str(self.port)]
        if not worker:
            self.args.append("--no-worker")
        if processes > 1:
            self.args += ["--workers", str(processes)]
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        """Spawn the server; the clock for the start-up time starts here."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
        env.update(
            {
                "KAI_DATA_DIR": str(self.data_dir),
                "KAI_LOG_LEVEL": "warning",
                "KAI_ACCESS_LOG": "false",
                # Measured is what one instance serves, not what the limits let through.
                "KAI_RATE_LIMITS__ENABLED": "false",
                **self.settings,
            }
        )
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                self.args,
                env=env,
                # Outside the repository, so a developer's .env does not change what is measured.
                cwd=self.data_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it once,
                # cleanly; a second signal mid-shutdown could orphan the embedded PostgreSQL.
                start_new_session=True,
            )
        ServeProcess.live.append(self)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self) -> float:
        """Poll /readyz until it answers 200; return seconds since spawn."""
        assert self.process is not None
        deadline = self.started_at + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"kai serve exited with {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get_status(self.port, "/readyz") == 200:
                    return time.perf_counter() - self.started_at
            time.sleep(0.02)
        raise RuntimeError(
            f"kai serve was not ready in {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def wait_idle(self, *, quiet_share: float = 0.05, timeout: float = 180.0) -> float:
        """Wait until the server (and its children) use less than `quiet_share` of a core over a
        second: it loads its models in the background after it is ready, and what loads them
        would otherwise be measured with the requests. Returns the seconds waited."""
        started = time.perf_counter()
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_seconds() -> float:
            total = 0
            pids = [self.pid]
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
                pids += [int(child) for child in children.split()]
            for pid in pids:
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime
            return total / ticks

        while time.perf_counter() - started < timeout:
            before = cpu_seconds()
            time.sleep(1.0)
            if cpu_seconds() - before < quiet_share:
                break
        return time.perf_counter() - started

    def stop(self) -> tuple[float, int]:
        """SIGTERM the server and wait for it; return seconds taken and its exit code."""
        assert self.process is not None
        started = time.perf_counter()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        elapsed = time.perf_counter() - started
        if self in ServeProcess.live:
            ServeProcess.live.remove(self)
        # It stops its embedded PostgreSQL itself; this only catches a server that did not.
        embedded = EmbeddedPostgres(self.data_dir / "postgres")
        if embedded.is_running():
            print(f"warning: embedded PostgreSQL left running in {self.data_dir}", file=sys.stderr)
            embedded.stop()
        return elapsed, code

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def log_problems(self) -> list[str]:
        """Lines of the server's output that mention an error."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line[:500] for line in lines if PROBLEM_PATTERN.search(line)]


def kai_command() -> list[str]:
    """The `kai` entry point of this environment, or `python -m kai` without one."""
    script = Path(sys.executable).parent / "kai"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kai"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_status(port: int, path: str, request: Request | None = None) -> int:
    """Status of one request on a fresh connection."""
    return call(port, path, request)[0]


def call(port: int, path: str, request: Request | None = None) -> tuple[int, bytes]:
    """Status and body of one request on a fresh connection."""
    request = request or Request()
    headers = {
        name.strip(): value.strip()
        for name, _, value in (header.partition(":") for header in request.headers)
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(request.method, path, body=request.body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def create_account(data_dir: Path) -> None:
    """An owner of an organization, made by `kai admin create-user` beside the running server."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
    env.update({"KAI_DATA_DIR": str(data_dir), "KAI_ADMIN_PASSWORD": BENCH_PASSWORD})
    subprocess.run(
        [*kai_command(), "admin", "create-user", "--email", BENCH_EMAIL, "--organization", "bench"],
        env=env,
        cwd=data_dir.parent,
        check=True,
        capture_output=True,
        timeout=120,
    )


def stop_everything() -> None:
    """Stop every server this run started and has not stopped yet."""
    for server in list(ServeProcess.live):
        with contextlib.suppress(Exception):
            server.stop()


# -- start-up ---------------------------------------------------------------------------------


def bench_startup(repeats: int, scratch: Path) -> list[StartupRun]:
    """Cold starts (fresh data dir: initdb and migrations) each followed by a warm restart."""
    runs: list[StartupRun] = []
    for index in range(repeats):
        data_dir = scratch / f"startup-{index}" / "kai-data"
        data_dir.parent.mkdir(parents=True)
        for kind in ("cold", "warm"):
            # The full server with its in-process worker: what `kai serve` users start.
            server = ServeProcess(data_dir, worker=True)
            server.start()
            ready = server.wait_ready()
            stopped, code = server.stop()
            runs.append(StartupRun(kind, round(ready, 3), round(stopped, 3), code))
            print(f"  {kind:4} start {index + 1}/{repeats}: ready in {ready:.2f} s", flush=True)
    return runs


# -- HTTP -------------------------------------------------------------------------------------


def load_generator(choice: str) -> str:
    """`wrk` when asked for or found on PATH, else the Python fallback."""
    if choice == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if choice == "wrk":
        raise SystemExit("--load-generator wrk: wrk is not on PATH (apt-get install wrk)")
    return "python"


def load_generator_version(generator: str) -> str:
    """A human description of the load generator, with its version."""
    if generator == "wrk":
        # `wrk -v` prints its version then its usage, and exits non-zero.
        output = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        first = (output.stdout or output.stderr).splitlines()
        return first[0].split(" Copyright")[0] if first else "wrk"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"Python fallback (benchmarks/loadgen.py, {loop}, Python {platform.python_version()})"


_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str) -> float:
    """A wrk duration such as `812.00us` or `1.20ms`, in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * _UNIT_TO_MS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, rate, median and 99th percentile latency and errors from `wrk --latency`."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match

    totals = find(r"(\d+) requests in ([\d.]+\w+)")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(totals[1]),
        "duration_s": round(_wrk_ms(totals[2]) / 1000, 3),
        "requests_per_s": float(find(r"Requests/sec:\s+([\d.]+)")[1]),
        "p50_ms": round(_wrk_ms(find(r"\s50%\s+([\d.]+\w+)")[1]), 3),
        "p99_ms": round(_wrk_ms(find(r"\s99%\s+([\d.]+\w+)")[1]), 3),
        "non_2xx_3xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }


@dataclass(frozen=True)
class Request:
    """What each load-run request sends besides the URL."""

    method: str = "GET"
    headers: tuple[str, ...] = ()
    body: str | None = None


def _wrk_script(request: Request, scratch: Path) -> Path:
    """A wrk Lua script sending `request` (wrk takes a method and body only from scripts)."""
    lines = [f"wrk.method = {json.dumps(request.method)}"]
    if request.body is not None:
        lines.append(f"wrk.body = {json.dumps(request.body)}")
    for header in request.headers:
        name, _, value = header.partition(":")
        lines.append(f"wrk.headers[{json.dumps(name.strip())}] = {json.dumps(value.strip())}")
    path = scratch / f"wrk-{uuid.uuid4().hex}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_profiler(pid: int, output: Path, duration: float) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` at 200 Hz for the load's duration, native frames left out."""
    output.parent.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy if py_spy.exists() else "py-spy"), "record", "--pid", str(pid)]
    command += ["--rate", "200", "--duration", str(max(1, round(duration)))]
    command += ["--format", "raw" if output.suffix == ".txt" else "flamegraph"]
    command += ["--output", str(output), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def drive(
    generator: str,
    url: str,
    connections: int,
    duration: float,
    request: Request | None = None,
    scratch: Path | None = None,
) -> dict[str, Any]:
    """One load run at `url` from a separate process; the parsed summary."""
    request = request or Request()
    if generator == "wrk":
        seconds = max(1, round(duration))
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
        if request != Request():
            command += ["-s", str(_wrk_script(request, scratch or Path(tempfile.gettempdir())))]
    else:
        command = [sys.executable, "-m", "benchmarks.loadgen", url]
        command += ["--connections", str(connections), "--duration", str(duration)]
        command += ["--method", request.method]
        for header in request.headers:
            command += ["--header", header]
        if request.body is not None:
            command += ["--body", request.body]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=duration + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr}")
    if generator == "wrk":
        return parse_wrk(result.stdout)
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def bench_http(
    generator: str,
    connections: int,
    duration: float,
    scratch: Path,
    settings: dict[str, str] | None = None,
    profile: Path | None = None,
    processes: int = 1,
) -> tuple[list[HttpRun], list[str]]:
    """Load each target of one warmed `kai serve --no-worker`; the runs and the log's problems.
    With `profile`, py-spy samples the server during the authenticated read (a flame graph
    for `.svg`, collapsed stacks for `.txt`)."""
    data_dir = scratch / "http" / "kai-data"
    data_dir.parent.mkdir(parents=True)
    # No worker: its polling would compete with the requests for the same two cores.
    server = ServeProcess(data_dir, worker=False, settings=settings, processes=processes)
    server.start()
    try:
        server.wait_ready()
        server.wait_idle()
        base = f"http://127.0.0.1:{server.port}"
        create_account(data_dir)
        login = Request(
            "POST",
            ("Content-Type: application/json",),
            json.dumps({"email": BENCH_EMAIL, "password": BENCH_PASSWORD}),
        )
        status, body = call(server.port, "/api/v1/auth/login", login)
        if status != 200:
            raise RuntimeError(f"the benchmark account cannot log in ({status}): {body!r}")
        bearer = Request(headers=(f"Authorization: Bearer {json.loads(body)['access_token']}",))
        # (name, path, request, expected status, connections)
        targets = [
            ("GET /healthz", "/healthz", Request(), 200, connections),
            (AUTHENTICATED_READ, "/api/v1/organization", bearer, 200, connections),
            (
                "GET /api/v1/jobs?limit=1 (authenticated list)",
                "/api/v1/jobs?limit=1",
                bearer,
                200,
                connections,
            ),
            (
                "GET /api/v1/jobs/{random uuid} (authenticated, 404)",
                f"/api/v1/jobs/{uuid.uuid4()}",
                bearer,
                404,
                connections,
            ),
            # argon2id at OWASP's cost, in threads: a few connections saturate the cores.
            ("POST /api/v1/auth/login", "/api/v1/auth/login", login, 200, 4),
        ]
        runs: list[HttpRun] = []
        for name, path, request, expected, clients in targets:
            before = get_status(server.port, path, request)
            # Warm-up: fills the connection pool and the caches, and is not measured.
            drive(generator, base + path, clients, min(2.0, duration), request, scratch)
            sampler = None
            if profile is not None and name == AUTHENTICATED_READ:
                sampler = start_profiler(server.pid, profile, duration)
            summary = drive(generator, base + path, clients, duration, request, scratch)
            if sampler is not None:
                sampler.wait(timeout=duration + 60)
            after = get_status(server.port, path, request)
            known = {key: summary.pop(key) for key in list(summary) if key in _HTTP_FIELDS}
            runs.append(
                HttpRun(
                    target=name,
                    url=base + path,
                    expected_status=expected,
                    status_before=before,
                    status_after=after,
                    extra={"connections": clients, **summary},
                    **known,
                )
            )
            print(
                f"  {name}: {known['requests_per_s']:.0f} req/s, p50 {known['p50_ms']:.2f} ms,"
                f" p99 {known['p99_ms']:.2f} ms",
                flush=True,
            )
    finally:
        server.stop()
    return runs, server.log_problems()


def bench_ceiling(
    generator: str, connections: int, duration: float, scratch: Path
) -> list[HttpRun]:
    """The same load on `benchmarks.ceiling`'s two apps: what one process serves here at best."""
    server = EmbeddedPostgres(scratch / "ceiling" / "postgres")
    url = libpq_url(server.acquire())
    runs: list[HttpRun] = []
    try:
        for app, name in (
            ("raw", CEILING_RAW),
            ("fastapi", CEILING_FASTAPI),
        ):
            port = free_port()
            command = [sys.executable, "-m", "benchmarks.ceiling", "--app", app]
            command += ["--database-url", url, "--port", str(port)]
            process = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True)
            try:
                path = "/organization"
                _wait_for(port, path, process)
                drive(generator, f"http://127.0.0.1:{port}{path}", connections, 2.0)
                summary = drive(generator, f"http://127.0.0.1:{port}{path}", connections, duration)
                known = {key: summary.pop(key) for key in list(summary) if key in _HTTP_FIELDS}
                status = get_status(port, path)
                runs.append(
                    HttpRun(
                        target=name,
                        url=f"http://127.0.0.1:{port}{path}",
                        expected_status=200,
                        status_before=status,
                        status_after=status,
                        extra={"connections": connections, **summary},
                        **known,
                    )
                )
                print(f"  {name}: {known['requests_per_s']:.0f} req/s", flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
    finally:
        server.release()
    return runs


def _wait_for(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.perf_counter() + READY_TIMEOUT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the ceiling app exited with {process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if get_status(port, path) == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("the ceiling app did not answer in time")


_HTTP_FIELDS = {
    "requests",
    "duration_s",
    "requests_per_s",
    "p50_ms",
    "p99_ms",
    "non_2xx_3xx",
    "socket_errors",
}


# -- report -----------------------------------------------------------------------------------


def machine_info(generator: str | None) -> dict[str, Any]:
    """What the numbers were measured on."""
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    ).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_generator": load_generator_version(generator) if generator else None,
        "git_commit": commit or None,
    }


def evaluate(startup: list[StartupRun], http: list[HttpRun]) -> list[Goal]:
    """The foundation's goals against this run's numbers."""
    warm = [run.ready_s for run in startup if run.kind == "warm"]
    cold = [run.ready_s for run in startup if run.kind == "cold"]
    healthz = next((run for run in http if run.target == "GET /healthz"), None)
    reads = next((run for run in http if run.target == AUTHENTICATED_READ), None)
    goals = [
        Goal(
            "warm start to ready (median)",
            f"<= {WARM_START_GOAL_S:.0f} s",
            f"{statistics.median(warm):.2f} s" if warm else "not run",
            statistics.median(warm) <= WARM_START_GOAL_S if warm else None,
        ),
        Goal(
            "cold start to ready (median)",
            "reported, no goal",
            f"{statistics.median(cold):.2f} s" if cold else "not run",
            None,
        ),
        Goal(
            "/healthz throughput",
            f">= {HEALTHZ_GOAL_RPS:.0f} req/s",
            f"{healthz.requests_per_s:.0f} req/s" if healthz else "not run",
            healthz.requests_per_s >= HEALTHZ_GOAL_RPS if healthz else None,
        ),
        Goal(
            "authenticated reads (JWT + permission + database read)",
            f">= {AUTHENTICATED_READ_GOAL_RPS:.0f} req/s",
            f"{reads.requests_per_s:.0f} req/s" if reads else "not run",
            reads.requests_per_s >= AUTHENTICATED_READ_GOAL_RPS if reads else None,
        ),
    ]
    ceiling = next((run for run in http if run.target == CEILING_FASTAPI), None)
    if reads and ceiling:
        share = reads.requests_per_s / ceiling.requests_per_s
        spread = reads.p99_ms / reads.p50_ms if reads.p50_ms else float("inf")
        goals += [
            Goal(
                "authenticated read / bare FastAPI route, same run",
                f">= {AUTHENTICATED_READ_SHARE_GOAL:.0%}",
                f"{share:.0%}",
                share >= AUTHENTICATED_READ_SHARE_GOAL,
            ),
            Goal(
                "authenticated read p99 / p50",
                f"< {AUTHENTICATED_READ_SPREAD_GOAL:g}",
                f"{spread:.1f}",
                spread < AUTHENTICATED_READ_SPREAD_GOAL,
            ),
        ]
    return goals


def markdown(
    startup: list[StartupRun],
    http: list[HttpRun],
    goals: list[Goal],
    machine: dict[str, Any],
    options: argparse.Namespace,
) -> str:
    """The results as Markdown tables."""
    out = [
        f"# KAI benchmarks ({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')})",
        "",
        f"Machine: {machine['cpu_count']} CPUs, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, {machine['platform']}; commit {machine['git_commit']}.",
    ]
    if startup:
        out += [
            "",
            f"## Start-up: spawn to first 200 on /readyz (median of {options.repeats})",
            "",
            "| Start | Median | Runs | Stop (SIGTERM to exit), median |",
            "|---|---:|---|---:|",
        ]
        for kind, label in (("cold", "cold (new data dir: initdb + migrations)"), ("warm", "warm")):
            runs = [run for run in startup if run.kind == kind]
            ready = statistics.median(run.ready_s for run in runs)
            stop = statistics.median(run.stop_s for run in runs)
            each = ", ".join(f"{run.ready_s:.2f}" for run in runs)
            out.append(f"| {label} | {ready:.2f} s | {each} | {stop:.2f} s |")
    if http:
        out += [
            "",
            f"## HTTP: {machine['load_generator']}, {options.connections} connections, "
            f"{options.duration:g} s per target",
            "",
            "| Target | Req/s | p50 | p99 | Status | Non-2xx/3xx | Socket errors |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for run in http:
            status = (
                f"{run.status_before}"
                if run.status_before == run.status_after == run.expected_status
                else f"{run.status_before}/{run.status_after} (expected {run.expected_status})"
            )
            out.append(
                f"| `{run.target}` | {run.requests_per_s:,.0f} | {run.p50_ms:.2f} ms "
                f"| {run.p99_ms:.2f} ms | {status} | {run.non_2xx_3xx:,} | {run.socket_errors:,} |"
            )
    out += ["", "## Goals", "", "| Goal | Target | Measured | Result |", "|---|---|---|---|"]
    for goal in goals:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[goal.passed]
        out.append(f"| {goal.name} | {goal.target} | {goal.measured} | {verdict} |")
    return "\n".join(out)


# -- main -------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder under /tmp, which the embedded server's system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="kai-bench-"))
    # mkdtemp makes it 0700; a root run hands PostgreSQL to the `pgserver` user.
    path.chmod(0o755)
    try:
        yield path
    finally:
        stop_everything()
        shutil.rmtree(path, ignore_errors=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so the `finally` blocks stop the servers we started.
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--only",
        action="append",
        choices=["startup", "http", "ceiling"],
        help="run this benchmark only; repeat it to run several (http and ceiling side by side)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="starts of each kind")
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="auto: wrk when on PATH, else the Python fallback",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KAI_NAME=VALUE",
        help="a setting for the measured server (e.g. KAI_DATABASE__POOL_SIZE=20); repeatable",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (`kai serve --workers`)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the server with py-spy during the authenticated read: .svg or .txt",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "latest.json", help="JSON results file"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print Markdown and write JSON."""
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    chosen = set(options.only or ("startup", "http", "ceiling"))
    run_http = bool(chosen & {"http", "ceiling"})
    generator = load_generator(options.load_generator) if run_http else None
    startup: list[StartupRun] = []
    http: list[HttpRun] = []
    log_problems: list[str] = []
    with scratch_dir() as scratch:
        if "startup" in chosen:
            print("start-up:", flush=True)
            startup = bench_startup(options.repeats, scratch)
        if generator is not None:
            print(f"http ({generator}):", flush=True)
            if "http" in chosen:
                settings = dict(setting.split("=", 1) for setting in options.setting)
                http, log_problems = bench_http(
                    generator,
                    options.connections,
                    options.duration,
                    scratch,
                    settings,
                    options.profile,
                    options.workers,
                )
            if "ceiling" in chosen:
                print("ceiling:", flush=True)
                http += bench_ceiling(generator, options.connections, options.duration, scratch)
    machine = machine_info(generator)
    goals = evaluate(startup, http)
    print()
    print(markdown(startup, http, goals, machine, options))
    if log_problems:
        print(f"\nThe server logged {len(log_problems)} problem line(s) under load; first:")
        print("\n".join(log_problems[:5]))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "options": {
            "duration_s": options.duration,
            "connections": options.connections,
            "repeats": options.repeats,
            "only": sorted(chosen),
            "workers": options.workers,
        },
        "startup": [asdict(run) for run in startup],
        "http": [asdict(run) for run in http],
        "goals": [asdict(goal) for goal in goals],
        "server_log_problems": log_problems[:20],
    }
    options.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {options.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the servers are already stopped by the `finally` blocks
        print("interrupted", file=sys.stderr)
        sys.exit(130)
