"""Operations routes: liveness, readiness and metrics. Public, outside `/api/v1`.

`/readyz` is polled by every load balancer and orchestrator, and anyone may call it: its answer
is kept for a second, and however many ask at once, one check runs (one pooled connection for
the database and the job queue together, one storage probe). `/metrics` tells how busy every
organization keeps the platform, which no tenant is owed: it is served on a listener of its own
(`KAI_METRICS__PORT`), or on the public one to a bearer token (`KAI_METRICS__TOKEN`), and
otherwise not at all.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import BaseModel
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from kai.config import MetricsSettings
from kai.deps import runtime_of
from kai.identity.dependencies import public
from kai.kit.errors import (
    KaiError,
    NotFound,
    ServiceUnavailable,
    problem_response,
    problem_responses,
)
from kai.kit.metrics import DB_POOL, REGISTRY
from kai.kit.routing import IndexedRouter
from kai.runtime import Runtime

# Probes and scrapes come from load balancers and Prometheus: public, never rate limited.
router = IndexedRouter(tags=["operations"], dependencies=[Depends(public(rate_class=None))])

CHECK_TIMEOUT_SECONDS = 3.0
# How long one readiness answer serves every caller.
READY_CACHE_SECONDS = 1.0
METRICS_PATH = "/metrics"
_OK = b'{"status":"ok"}'


class MetricsTokenRequired(KaiError):
    status, type, title = 401, "metrics-token-required", "Metrics need the scrape token"


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", summary="The process is alive", response_model=Status)
async def healthz() -> Response:
    return Response(_OK, media_type="application/json")


# --- readiness --------------------------------------------------------------------------------


async def _check_database_and_queue(runtime: Runtime) -> dict[str, str]:
    """One connection answers both: the database is up, and the job queue's tables are there."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), runtime.engine.connect() as connection:
            found = await connection.scalar(text("SELECT to_regclass('procrastinate_jobs')::text"))
    except TimeoutError:
        return {"database": "timed out", "job_queue": "timed out"}
    except Exception as exc:
        failed = f"failed: {type(exc).__name__}"
        return {"database": failed, "job_queue": failed}
    # Without them, `kai db upgrade` has not run.
    return {"database": "ok", "job_queue": "ok" if found else "failed: tables missing"}


async def _check_storage(runtime: Runtime) -> dict[str, str]:
    try:
        await asyncio.wait_for(runtime.storage.check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"storage": "timed out"}
    except Exception as exc:
        return {"storage": f"failed: {type(exc).__name__}"}
    return {"storage": "ok"}


async def run_checks(runtime: Runtime) -> dict[str, str]:
    """Each part's state ("ok", "timed out", "failed: ..."), checked now."""
    database, storage = await asyncio.gather(
        _check_database_and_queue(runtime), _check_storage(runtime)
    )
    return {"database": database["database"], **storage, "job_queue": database["job_queue"]}


class ReadinessProbe:
    """The latest readiness checks, reused for a moment; concurrent callers share one run."""

    def __init__(self, cache_seconds: float = READY_CACHE_SECONDS) -> None:
        self.cache_seconds = cache_seconds
        self._latest: tuple[float, dict[str, str]] | None = None
        self._running: asyncio.Task[dict[str, str]] | None = None

    async def checks(self, runtime: Runtime) -> dict[str, str]:
        latest = self._latest
        if latest is not None and time.monotonic() - latest[0] < self.cache_seconds:
            return latest[1]
        running = self._running
        # (A check left running by an event loop that is gone never finishes.)
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            running = self._running = asyncio.create_task(self._run(runtime), name="kai-ready")
        # Shielded: a caller that hangs up does not cancel the check the others wait for.
        return await asyncio.shield(running)

    async def _run(self, runtime: Runtime) -> dict[str, str]:
        try:
            checks = await run_checks(runtime)
            self._latest = (time.monotonic(), checks)
            return checks
        finally:
            if self._running is asyncio.current_task():
                self._running = None


def readiness_probe(request: Request) -> ReadinessProbe:
    probe: ReadinessProbe | None = getattr(request.app.state, "readiness", None)
    if probe is None:
        probe = request.app.state.readiness = ReadinessProbe()
    return probe


@router.get(
    "/readyz",
    summary="The database, storage and job queue are reachable",
    description=f"Checked at most once every {READY_CACHE_SECONDS:g} s, however many ask.",
    response_model=Readiness,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Readiness:
    checks = await readiness_probe(request).checks(runtime_of(request))
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        raise ServiceUnavailable(
            "Not ready: " + ", ".join(f"{name} {checks[name]}" for name in failing)
        )
    return Readiness(status="ok", checks=checks)


# --- metrics ----------------------------------------------------------------------------------


@dataclass
class MetricsAccess:
    """Who may read `/metrics`: the metrics listener, and the public one with the token."""

    token: str | None = None
    # The port of the listener that serves `/metrics` (and nothing else) without a token;
    # `kai serve` sets it once bound, which matters where the setting is 0 (any free port).
    listener_port: int | None = None

    @classmethod
    def from_settings(cls, settings: MetricsSettings) -> MetricsAccess:
        token = settings.token.get_secret_value() if settings.token is not None else None
        return cls(token=token, listener_port=settings.port)

    def on_metrics_listener(self, scope: Scope) -> bool:
        # The socket the connection came in on, never a header the client chose.
        server = scope.get("server")
        return (
            self.listener_port is not None
            and server is not None
            and server[1] == self.listener_port
        )

    def check(self, request: Request) -> None:
        """Return when this request may read the metrics; refuse it otherwise."""
        if self.on_metrics_listener(request.scope):
            return
        if self.token is None:
            # Not served on the public listener at all: as if the route did not exist.
            raise NotFound()
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self.token.encode()
        ):
            raise MetricsTokenRequired(
                "Send the scrape token as `Authorization: Bearer <token>`.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )


def metrics_access(request: Request) -> MetricsAccess:
    access: MetricsAccess | None = getattr(request.app.state, "metrics_access", None)
    return access if access is not None else MetricsAccess()


class MetricsListenerOnly:
    """On the metrics listener, `/metrics` and nothing else: the API stays on the public one."""

    def __init__(self, app: ASGIApp, *, access: MetricsAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] != METRICS_PATH
            and self.access.on_metrics_listener(scope)
        ):
            response = problem_response(None, status=404, type_="not-found", title="Not found")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


@router.get(
    METRICS_PATH,
    summary="Prometheus metrics",
    description=(
        "Served on the metrics listener (`KAI_METRICS__PORT`), or here to "
        "`Authorization: Bearer <KAI_METRICS__TOKEN>`; with neither set, not served (404)."
    ),
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **problem_responses(401, 404),
    },
)
async def metrics(request: Request) -> Response:
    metrics_access(request).check(request)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def exposition() -> bytes:
    """The metrics in Prometheus' text format: of every process of `kai serve --workers N`
    (which points `PROMETHEUS_MULTIPROC_DIR` at their shared files), else of this one. The
    database pool's figures are the answering process's own."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    # prometheus_client leaves this constructor unannotated.
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(DB_POOL)
    return generate_latest(registry)
