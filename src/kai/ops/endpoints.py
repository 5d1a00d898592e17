"""Operations routes: liveness, readiness and metrics. Public, outside `/api/v1`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from kai.deps import runtime_of
from kai.identity.dependencies import public
from kai.kit.errors import ServiceUnavailable, problem_responses
from kai.kit.metrics import REGISTRY
from kai.runtime import Runtime

# Probes and scrapes come from load balancers and Prometheus: public, never rate limited.
router = APIRouter(tags=["operations"], dependencies=[Depends(public(rate_class=None))])

CHECK_TIMEOUT_SECONDS = 3.0
_OK = b'{"status":"ok"}'


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", summary="The process is alive", response_model=Status)
async def healthz() -> Response:
    return Response(_OK, media_type="application/json")


async def _check_database(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check_queue(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        found = await connection.scalar(text("SELECT to_regclass('procrastinate_jobs')::text"))
    if found is None:
        raise RuntimeError("the job queue's tables are missing: run `kai db upgrade`")


async def _check_storage(runtime: Runtime) -> None:
    await runtime.storage.check()


CHECKS: dict[str, Callable[[Runtime], Awaitable[None]]] = {
    "database": _check_database,
    "storage": _check_storage,
    "job_queue": _check_queue,
}


async def run_check(check: Callable[[Runtime], Awaitable[None]], runtime: Runtime) -> str:
    try:
        await asyncio.wait_for(check(runtime), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return "timed out"
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


@router.get(
    "/readyz",
    summary="The database, storage and job queue are reachable",
    response_model=Readiness,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Readiness:
    runtime = runtime_of(request)
    results = await asyncio.gather(*(run_check(check, runtime) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        raise ServiceUnavailable(
            "Not ready: " + ", ".join(f"{name} {checks[name]}" for name in failing)
        )
    return Readiness(status="ok", checks=checks)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
