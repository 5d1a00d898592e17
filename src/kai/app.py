"""The FastAPI application: middleware, error handlers and one router per domain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, cast, get_args

import structlog
from fastapi import FastAPI, UploadFile, params
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.telemetry import TelemetryConfig

from kai import __version__
from kai.catalog.endpoints import ROUTERS as CATALOG_ROUTERS
from kai.config import Settings
from kai.identity.endpoints import ROUTERS as IDENTITY_ROUTERS
from kai.identity.pages import router as pages_router
from kai.jobs.endpoints import router as jobs_router
from kai.kit import expiring, sandbox
from kai.kit.db import libpq_url
from kai.kit.errors import Problem, install_error_handlers, problem_responses
from kai.kit.jobs.worker import load_task_modules
from kai.kit.middleware import RequestContextMiddleware
from kai.kit.turns import TakingTurns
from kai.ml.endpoints import backbones_router
from kai.ml.endpoints import router as models_router
from kai.ml.experiment_endpoints import drift_router as model_drift_router
from kai.ml.experiment_endpoints import events_router as model_events_router
from kai.ml.experiment_endpoints import router as model_experiments_router
from kai.ml.experiment_endpoints import settings_router as model_settings_router
from kai.ops import webapp
from kai.ops.endpoints import MetricsAccess, MetricsListenerOnly, ReadinessProbe
from kai.ops.endpoints import router as ops_router
from kai.ops.processes import SERVE_JOBS_ENV
from kai.recognition.endpoints import batches_router
from kai.recognition.endpoints import catalog_router as near_duplicates_router
from kai.recognition.endpoints import router as recognitions_router
from kai.recognition.project_endpoints import router as projects_router
from kai.recognition.review_endpoints import router as review_router
from kai.runtime import DOMAIN_TASK_MODULES, Runtime
from kai.search import semantic
from kai.search.endpoints import router as search_router
from kai.search.visual_endpoints import router as visual_router
from kai.vision.backbones import warm_default_backbones

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
DESCRIPTION = (
    "KAI recognises materials from photographs and matches them to an organization's catalog. "
    "Errors are RFC 9457 problem details (`application/problem+json`); every response carries "
    "an `X-Request-ID` header (sent by the client or generated). Authenticate with "
    "`Authorization: Bearer <token>`: an access token from `POST /api/v1/auth/login`, or an "
    "API key (`kai_...`). Each operation names the permission it needs (`x-kai-permission`)."
)


# FastAPI's OpenTelemetry, unless `KAI_OPENTELEMETRY` asks for it.
_NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


async def _warm_then_freeze(*loading: Awaitable[object]) -> None:
    """Load the models, then exempt what the process holds for its whole life (modules,
    models, the app) from the garbage collector's full passes: with the machine-learning
    libraries loaded those are millions of objects, which every full pass walked again
    (the authenticated read served 12-24 % more requests a second without those walks, and
    its slowest 1 % came down from 30-40 ms to 23-29 ms: benchmarks/README.md)."""
    try:
        await asyncio.gather(*loading)
    finally:
        # Only the young generations: a full pass over everything the models hold would
        # stall this event loop for a second, while requests may already be waiting on it.
        gc.collect(1)
        gc.freeze()


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    database_url: str | None = None,
    run_worker: bool = False,
) -> FastAPI:
    """Build the app around `runtime`, or around a runtime of its own made from `database_url`."""
    if runtime is None and database_url is None:
        raise ValueError("create_app needs a runtime or a database URL")
    # Cancelling a queued job runs its task's `on_final_failure` in the request: every task
    # must be known here, not only those whose routes happened to queue one already.
    load_task_modules((*DOMAIN_TASK_MODULES, *settings.jobs.import_paths))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        sandbox.warn_if_confined_less()
        active = runtime or Runtime.create(settings, database_url or "")
        app.state.runtime = active
        worker = _start_worker(active) if run_worker else None
        # What other processes change of who may do what reaches this one's caches.
        follower = (
            asyncio.create_task(expiring.follow_changes(libpq_url(active.database_url)))
            if owned
            else None
        )
        # The language and image models load in the background: the first search or
        # recognition need not wait for them.
        warming = (
            asyncio.ensure_future(
                _warm_then_freeze(
                    asyncio.to_thread(semantic.query_embeddings().warm),
                    asyncio.to_thread(
                        warm_default_backbones,
                        active.settings.model_dir,
                        threads=active.settings.vision.threads,
                    ),
                )
            )
            if owned
            else None
        )
        try:
            yield
        finally:
            if warming is not None:
                await warming
            for task in (worker, follower):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if owned:
                await active.close()

    app = FastAPI(
        title="KAI",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)
    app.state.readiness = ReadinessProbe()
    app.state.metrics_access = metrics_access = MetricsAccess.from_settings(settings.metrics)
    if settings.metrics.port is not None:
        # Inside the request context: its 404s carry the request id too.
        app.add_middleware(MetricsListenerOnly, access=metrics_access)
    # Inside the request context: the access log's time includes the wait for a turn.
    app.add_middleware(
        TakingTurns,
        limit=settings.reads_at_once,
        most_wait_seconds=settings.database.pool_timeout_seconds,
    )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
    )

    # Probes first, then one level of routers: FastAPI tries routes in order, through every
    # level of nesting, and the routing was a measurable part of each request's cost.
    app.include_router(ops_router)
    build = webapp.find_build(settings.web_dir)
    if build is not None:
        app.include_router(webapp.emailed_links_router(build))
    # The pages emailed links open without the app, and the forms they post to.
    app.include_router(pages_router)
    for router in (
        *IDENTITY_ROUTERS,
        *CATALOG_ROUTERS,
        search_router,
        visual_router,
        models_router,
        model_experiments_router,
        model_events_router,
        model_drift_router,
        model_settings_router,
        review_router,
        backbones_router,
        recognitions_router,
        batches_router,
        projects_router,
        near_duplicates_router,
        jobs_router,
    ):
        # Any API route may meet an unusable value, a too-large body or invalid input, and be
        # answered 503 with Retry-After when busy (a statement past the database's timeout, a
        # read that waited past the pool's timeout for its turn: kai.kit.turns).
        app.include_router(
            router, prefix=API_PREFIX, responses=problem_responses(400, 413, 422, 503)
        )
    # Last: every path no route above took is the app's (or says the app is not built).
    app.include_router(webapp.router_for(build))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def served_app() -> FastAPI:
    """The app of one process of `kai serve --workers N`, from the environment its parent
    set: the running database's URL, the shared rate-limit table, whether to run jobs."""
    from kai.kit.cli import command_settings

    settings = command_settings()
    if settings.database_url is None:
        raise RuntimeError("a process of `kai serve --workers` is given KAI_DATABASE_URL")
    return create_app(
        settings,
        database_url=settings.database_url.get_secret_value(),
        run_worker=os.environ.get(SERVE_JOBS_ENV) == "1",
    )


def _start_worker(runtime: Runtime) -> asyncio.Task[None]:
    from kai.kit.jobs.worker import run_worker

    async def run() -> None:
        try:
            await run_worker(
                runtime,
                runtime.database_url,
                concurrency=runtime.settings.jobs.concurrency,
                name="in-process",
                install_signal_handlers=False,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker.crashed")

    return asyncio.create_task(run(), name="kai-worker")


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An access token from `/api/v1/auth/login`, or an API key.",
            }
        }
        _declare_access(app, schema)
        app.openapi_schema = schema
    return app.openapi_schema


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    # ("permission", name), ("authenticated", None), ("public", None), or None when the
    # route declares nothing about its callers (a bug the tests catch).
    access: tuple[str, str | None] | None
    # The rate-limit class its access dependency charges: "standard", "auth", "expensive",
    # or None (not limited: probes, or a route that declares no access at all).
    rate_class: str | None = None
    # Whether the route takes an uploaded file (a multipart form).
    takes_files: bool = False


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API route with its full path and what it declares about its callers."""
    routes = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.path_format:
            continue
        declaration = _access_dependency(context.dependant)
        routes.append(
            RouteInfo(
                path=context.path_format,
                methods=frozenset(context.methods or ()),
                access=cast(tuple[str, str | None], declaration.kai_access)
                if declaration
                else None,
                rate_class=getattr(declaration, "kai_rate_class", None),
                takes_files=_takes_files(context.dependant),
            )
        )
    return routes


def _access_dependency(dependant: Any) -> Any:
    """The dependency that declares who may call the route (it carries `kai_access`)."""
    pending = list(dependant.dependencies)
    while pending:
        current = pending.pop()
        if getattr(current.call, "kai_access", None) is not None:
            return current.call
        pending.extend(current.dependencies)
    return None


# What a route needs beyond a credential, as its OpenAPI description says it.
_PASSWORD_PROOF = {
    "step-up": (
        "Needs a password proof from the last few minutes in this session: a password login, "
        "or `POST /api/v1/auth/step-up` (else 403 `step-up-required`)."
    ),
    "password-session": (
        "A single sign-on session needs `POST /api/v1/auth/step-up` first "
        "(else 403 `step-up-required`)."
    ),
    "other-organizations": (
        "A single sign-on session needs `POST /api/v1/auth/step-up` within the last few "
        "minutes (else 403 `step-up-required`)."
    ),
}


def _takes_files(dependant: Any) -> bool:
    pending = [dependant]
    while pending:
        current = pending.pop()
        if any(_is_file_field(param.field_info) for param in current.body_params):
            return True
        pending.extend(current.dependencies)
    return False


def _is_file_field(field_info: Any) -> bool:
    # A file parameter, or a form model (a request schema) with a file among its fields.
    if isinstance(field_info, params.File):
        return True
    form = field_info.annotation
    return isinstance(field_info, params.Form) and any(
        UploadFile in (field.annotation, *get_args(field.annotation))
        for field in getattr(form, "model_fields", {}).values()
    )


def _declare_access(app: FastAPI, schema: dict[str, Any]) -> None:
    # Each operation says whether it needs a credential, which permission, at which rate.
    paths = schema.get("paths", {})
    for route in api_routes(app):
        if route.access is None:
            continue
        kind, permission = route.access
        for method in route.methods:
            operation = paths.get(route.path, {}).get(method.lower())
            if operation is None:
                continue
            operation["security"] = [] if kind == "public" else [{"bearer": []}]
            if route.rate_class is not None:
                operation["x-kai-rate-class"] = route.rate_class
            if kind in _PASSWORD_PROOF:
                operation["x-kai-password-proof"] = kind
                operation["description"] = (
                    operation.get("description", "") + "\n\n" + _PASSWORD_PROOF[kind]
                ).strip()
            if permission is not None:
                operation["x-kai-permission"] = permission
                operation["description"] = (
                    operation.get("description", "") + f"\n\nNeeds the permission `{permission}`."
                ).strip()
            if route.rate_class == "expensive":
                operation["description"] = (
                    operation.get("description", "")
                    + "\n\nCounts against the `expensive` rate limit, per caller and per "
                    "organization."
                ).strip()
