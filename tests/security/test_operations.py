"""Operations endpoints as a stranger on the public listener finds them.

`/metrics` tells how busy every organization keeps the platform: nobody on the public listener
reads it without the scrape token, and where the operator gives it a listener of its own, the
public one does not serve it at all. `/readyz` is public and unauthenticated: a flood of it
costs one database check a second, not one pooled connection a call.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event

from kai.app import create_app
from kai.config import MetricsSettings, Settings
from kai.ops.endpoints import READY_CACHE_SECONDS, ReadinessProbe
from kai.ops.listeners import bind_listeners
from kai.runtime import Runtime
from tests.security.peers import free_port

pytestmark = pytest.mark.database

TOKEN = "scrape-token-0123456789abcdefghij"
PROBLEMS = "https://kai.dev/problems/"


def _with_metrics(settings: Settings, **metrics: Any) -> Settings:
    return settings.model_copy(update={"metrics": MetricsSettings(**metrics)})


@pytest.fixture
async def tokened(settings: Settings, runtime: Runtime) -> AsyncIterator[AsyncClient]:
    app = create_app(_with_metrics(settings, token=TOKEN), runtime=runtime)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test") as http:
        yield http


async def test_metrics_are_not_on_the_public_listener_by_default(client: AsyncClient) -> None:
    await client.get("/healthz")

    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "kai_http_requests" not in response.text


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong-token-0123456789abcdefghij", f"Basic {TOKEN}", TOKEN],
    ids=["none", "empty", "wrong", "other-scheme", "bare"],
)
async def test_metrics_are_refused_without_the_token(
    tokened: AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = await tokened.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.json()["type"] == PROBLEMS + "metrics-token-required"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "kai_http_requests" not in response.text


async def test_metrics_are_served_to_the_token(tokened: AsyncClient) -> None:
    response = await tokened.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert "kai_db_pool_checked_out" in response.text


def test_the_metrics_token_must_be_long_and_its_port_its_own() -> None:
    with pytest.raises(ValueError, match="at least 24"):
        MetricsSettings(token="short")
    with pytest.raises(ValueError, match="must differ"):
        Settings(_env_file=None, port=9100, metrics={"port": 9100})  # type: ignore[call-arg]


@dataclass(frozen=True)
class Listeners:
    public: str
    metrics: str


async def _serving(app: FastAPI, settings: Settings) -> AsyncIterator[Listeners]:
    """`kai serve`'s listeners, bound as it binds them, on free loopback ports."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        access_log=False,
        ws="none",
    )
    sockets = bind_listeners(app, config, settings.metrics)
    assert sockets is not None
    public_port, metrics_port = (int(sock.getsockname()[1]) for sock in sockets)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=sockets))
    try:
        while not server.started:
            assert not serving.done(), "the server stopped before it started"
            await asyncio.sleep(0.01)
        yield Listeners(
            public=f"http://127.0.0.1:{public_port}", metrics=f"http://127.0.0.1:{metrics_port}"
        )
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def listeners(settings: Settings, runtime: Runtime) -> AsyncIterator[Listeners]:
    configured = _with_metrics(settings, port=0, host="127.0.0.1")
    app = create_app(configured, runtime=runtime)
    async for served in _serving(app, configured):
        yield served


async def test_a_metrics_listener_keeps_metrics_off_the_public_one(listeners: Listeners) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        public_metrics = await http.get(f"{listeners.public}/metrics")
        scraped = await http.get(f"{listeners.metrics}/metrics")
        public_ready = await http.get(f"{listeners.public}/readyz")
        # The scrape port is for the scraper: the API is not there.
        api_on_scrape_port = [
            (await http.get(f"{listeners.metrics}{path}")).status_code
            for path in ("/api/v1/me", "/readyz", "/openapi.json", "/docs", "/metrics/")
        ]

    assert public_metrics.status_code == 404
    assert "kai_http_requests" not in public_metrics.text
    assert scraped.status_code == 200
    assert 'route="/metrics"' in scraped.text or "kai_http_requests" in scraped.text
    assert public_ready.status_code == 200
    assert api_on_scrape_port == [404] * 5


async def test_concurrent_readiness_calls_share_one_database_check(
    settings: Settings, runtime: Runtime
) -> None:
    app = create_app(settings, runtime=runtime)
    # Long enough that a loaded test machine cannot outlast it mid-burst; shortened below.
    probe = app.state.readiness = ReadinessProbe(cache_seconds=60)
    checkouts: list[object] = []

    def count(*_: object) -> None:
        checkouts.append(None)

    pool = runtime.engine.sync_engine.pool
    event.listen(pool, "checkout", count)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://kai.test"
        ) as client:
            burst = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
            again = [await client.get("/readyz") for _ in range(20)]
            during_cache = len(checkouts)
            probe.cache_seconds = 0.2
            await asyncio.sleep(0.3)
            after_cache = await client.get("/readyz")
    finally:
        event.remove(pool, "checkout", count)

    assert {response.status_code for response in [*burst, *again, after_cache]} == {200}
    assert during_cache == 1
    # Once the answer is older than the cache time, the next call checks again.
    assert len(checkouts) == 2


def test_readiness_answers_are_kept_for_a_second_by_default() -> None:
    assert ReadinessProbe().cache_seconds == READY_CACHE_SECONDS == 1.0


def test_kai_serve_answers_metrics_on_its_own_port_only(
    tmp_path: Path, database_url: str, model_dir: Path
) -> None:
    public_port, metrics_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
    env.update(
        {
            # The test database (migrated already) and image models (exported already).
            "KAI_DATABASE_URL": database_url,
            "KAI_VISION__MODEL_DIR": str(model_dir),
            "KAI_DATA_DIR": str(tmp_path / "kai-data"),
            "KAI_LOG_LEVEL": "warning",
            "KAI_METRICS__PORT": str(metrics_port),
        }
    )
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kai", "serve", "--no-worker", "--port", str(public_port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "kai serve never became ready"
            try:
                if httpx.get(f"http://127.0.0.1:{public_port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)

        public = httpx.get(f"http://127.0.0.1:{public_port}/metrics")
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        api_there = httpx.get(f"http://127.0.0.1:{metrics_port}/api/v1/me")

        assert public.status_code == 404
        assert scraped.status_code == 200
        assert "kai_http_requests" in scraped.text
        assert api_there.status_code == 404
        # (Shutting down waits for the models warming up since the start.)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
