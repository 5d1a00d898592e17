"""Liveness, readiness and metrics, as an operator and Prometheus see them."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import async_sessionmaker

from kai.app import create_app
from kai.config import MetricsSettings, Settings
from kai.kit.db import create_engine
from kai.kit.storage import LocalStorage
from kai.runtime import Runtime

pytestmark = pytest.mark.database


async def test_healthz_answers_while_the_process_lives(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_part_when_all_answer(client: AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "storage": "ok", "job_queue": "ok"},
    }


async def test_readyz_names_unreachable_storage(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage root should be")
    broken = Runtime(
        settings=settings,
        database_url=runtime.database_url,
        engine=runtime.engine,
        session_factory=runtime.session_factory,
        storage=LocalStorage(blocker / "objects"),
    )
    app = create_app(settings, runtime=broken)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "storage failed" in detail
    assert "database" not in detail


async def test_readyz_names_an_unreachable_database(settings: Settings, runtime: Runtime) -> None:
    nowhere = "postgresql://kai@127.0.0.1:1/kai"
    engine = create_engine(
        nowhere, settings.database, pool_timeout=1, connect_args={"connect_timeout": 1}
    )
    broken = Runtime(
        settings=settings,
        database_url=nowhere,
        engine=engine,
        session_factory=async_sessionmaker(engine),
        storage=runtime.storage,
    )
    app = create_app(settings, runtime=broken)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test") as http:
        response = await http.get("/readyz")
    await engine.dispose()
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "database failed" in detail
    assert "job_queue failed" in detail
    assert "storage" not in detail


async def test_metrics_count_requests_by_route_template_and_status(
    settings: Settings, runtime: Runtime
) -> None:
    token = "scrape-token-for-prometheus-0123"
    scraped = settings.model_copy(update={"metrics": MetricsSettings(token=token)})
    app = create_app(scraped, runtime=runtime)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test") as client:
        for _ in range(3):
            await client.get(f"/api/v1/jobs/{uuid.uuid4()}")
        await client.get("/api/v1/definitely/unknown")

        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    job_route = r'route="/api/v1/jobs/\{job_id\}"'
    by_route = re.search(
        rf'kai_http_requests_total\{{method="GET",{job_route},status="401"\}} (\S+)', text
    )
    assert by_route is not None
    assert float(by_route.group(1)) >= 3
    # Unknown paths share one label, so scanners cannot blow up the series count.
    assert 'route="<unmatched>"' in text
    assert "/api/v1/definitely/unknown" not in text
    latency = re.search(
        rf'kai_http_request_duration_seconds_count\{{method="GET",{job_route}\}} (\S+)', text
    )
    assert latency is not None
    assert float(latency.group(1)) >= 3
    assert "kai_db_pool_checked_out" in text
