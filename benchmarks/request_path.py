"""What one request costs in the server's own process, without the network or a load generator.

Each app is called as an ASGI callable by `--clients` concurrent loops in one event loop
(uvloop, as `kai serve` runs), with no socket in between: what is left is the framework,
the middleware, the dependencies, authentication and the database round trips, which are
what issue 16's first point is about. The same for `benchmarks.ceiling`'s bare FastAPI
route on the same database, in the same run. With `--profile`, cProfile's view of KAI's
requests is printed (sorted by own time) after the figures.

`--layers` adds probe routes in front of KAI's own, each adding one part of the authenticated
read to the one before (a dependency, the request's database session, one statement through
it, two, the permission check): what each part costs on its own.

    python -m benchmarks.request_path [--requests 4000] [--clients 8] [--layers] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import uvloop
from fastapi import APIRouter, Depends
from sqlalchemy import text

from benchmarks import ceiling
from benchmarks.run import BENCH_EMAIL, BENCH_PASSWORD, create_account
from kai.app import create_app
from kai.config import Settings
from kai.deps import DbSession
from kai.identity.actor import Actor
from kai.identity.dependencies import require
from kai.identity.permissions import Permission
from kai.kit.db import libpq_url
from kai.runtime import attach_database

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
MembersRead = Annotated[Actor, Depends(require(Permission.MEMBERS_READ))]


async def _nothing() -> int:
    return 1


Nothing = Annotated[int, Depends(_nothing)]


def probes() -> APIRouter:
    """Routes that each add one part of the authenticated read to the one before."""
    router = APIRouter(prefix="/probe")

    @router.get("/plain")
    async def plain() -> dict[str, int]:
        return {"ok": 1}

    @router.get("/dependency")
    async def dependency(_value: Nothing) -> dict[str, int]:
        return {"ok": 1}

    @router.get("/session")
    async def session_only(_session: DbSession) -> dict[str, int]:
        return {"ok": 1}

    @router.get("/one-statement")
    async def one_statement(session: DbSession) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        return {"ok": 1}

    @router.get("/two-statements")
    async def two_statements(session: DbSession) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        await session.execute(text("SELECT 1"))
        return {"ok": 1}

    @router.get("/permission")
    async def permission(_actor: MembersRead) -> dict[str, int]:
        return {"ok": 1}

    return router


class Answer:
    """What the app sent for one request."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


def scope_of(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    raw_path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(
    app: Asgi, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> Answer:
    answer = Answer()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client that stays connected
        raise AssertionError

    await app(scope_of(method, path, headers), receive, answer.send)
    return answer


async def drive(
    app: Asgi, path: str, headers: list[tuple[bytes, bytes]], requests: int, clients: int
) -> dict[str, float]:
    """`requests` GETs of `path` from `clients` loops; per-request figures in microseconds."""
    latencies: list[float] = []
    remaining = requests

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            answer = await call(app, "GET", path, headers)
            latencies.append(time.perf_counter() - started)
            if answer.status != 200:
                raise RuntimeError(f"{path} answered {answer.status}: {answer.body[:300]!r}")

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    latencies.sort()
    return {
        "requests_per_s": requests / wall,
        "wall_us_per_request": wall / requests * 1e6,
        "cpu_us_per_request": cpu / requests * 1e6,
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
    }


@contextlib.asynccontextmanager
async def lifespan_of(app: Any) -> Any:
    async with app.router.lifespan_context(app):
        yield


async def measure(
    kai_app: Any, ceiling_app: Any, requests: int, clients: int, profile: bool, layers: bool
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with lifespan_of(kai_app), lifespan_of(ceiling_app):
        login = await call(
            kai_app,
            "POST",
            "/api/v1/auth/login",
            [(b"content-type", b"application/json")],
            json.dumps({"email": BENCH_EMAIL, "password": BENCH_PASSWORD}).encode(),
        )
        if login.status != 200:
            raise RuntimeError(f"login answered {login.status}: {login.body!r}")
        token = json.loads(login.body)["access_token"]
        bearer = [(b"authorization", f"Bearer {token}".encode())]
        targets: list[tuple[str, Any, str, list[tuple[bytes, bytes]]]] = [
            ("kai: GET /healthz", kai_app, "/healthz", []),
            ("kai: GET /api/v1/organization", kai_app, "/api/v1/organization", bearer),
            ("ceiling: bare FastAPI route", ceiling_app, "/organization", bearer),
        ]
        if layers:
            targets += [
                (f"probe: {name}", kai_app, f"/probe/{name}", bearer)
                for name in (
                    "plain",
                    "dependency",
                    "session",
                    "one-statement",
                    "two-statements",
                    "permission",
                )
            ]
        # Twice each, in turn: the first round warms the pools and caches.
        for _round in ("warm-up", "measured"):
            for name, app, path, headers in targets:
                results[name] = await drive(app, path, headers, requests, clients)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(kai_app, "/api/v1/organization", bearer, requests, clients)
            profiler.disable()
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(45)
            results["profile"] = text.getvalue()
    return results


def ceiling_database(owner_url: str) -> str:
    """A database of its own on the same server for the ceiling's table."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    owner_url = libpq_url(owner_url)
    with psycopg.connect(owner_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = 'ceiling'")
        if exists.fetchone() is None:
            connection.execute("CREATE DATABASE ceiling")
    return make_conninfo(**{**conninfo_to_dict(owner_url), "dbname": "ceiling"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_path", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="requests per target")
    parser.add_argument("--clients", type=int, default=8, help="concurrent loops")
    parser.add_argument("--profile", action="store_true", help="print cProfile's view of KAI")
    parser.add_argument("--layers", action="store_true", help="measure the probe routes too")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kai-request-path-") as scratch:
        data_dir = Path(scratch) / "kai-data"
        os.environ.pop("KAI_DATABASE_URL", None)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            access_log=False,
            log_level="warning",
            rate_limits={"enabled": False},
        )
        urls, embedded = attach_database(settings, migrate=True)
        try:
            create_account(data_dir)
            ceiling_url = ceiling_database(urls.owner)
            ceiling.prepare(ceiling_url)
            kai_app = create_app(settings, database_url=urls.app)
            if options.layers:
                # In front of every other route, so that finding them costs next to nothing.
                kai_app.include_router(probes())
                kai_app.router.routes.insert(0, kai_app.router.routes.pop())
            ceiling_app = ceiling.fastapi_app(ceiling_url)
            results = uvloop.run(
                measure(
                    kai_app,
                    ceiling_app,
                    options.requests,
                    options.clients,
                    options.profile,
                    options.layers,
                )
            )
        finally:
            if embedded is not None:
                embedded.release()
    profile = results.pop("profile", None)
    print(f"{options.requests} requests per target, {options.clients} concurrent, in-process")
    print("| target | req/s | wall µs/req | CPU µs/req | p50 µs | p99 µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['requests_per_s']:,.0f} | {figures['wall_us_per_request']:.0f}"
            f" | {figures['cpu_us_per_request']:.0f} | {figures['p50_us']:.0f}"
            f" | {figures['p99_us']:.0f} |"
        )
    kai = results["kai: GET /api/v1/organization"]["requests_per_s"]
    bare = results["ceiling: bare FastAPI route"]["requests_per_s"]
    print(f"\nKAI's read / the bare route: {kai / bare:.0%}")
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
