"""HTTP conventions every route follows: problem+json errors, request ids, body limits, logs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel
from sqlalchemy import text

from kai.app import create_app
from kai.config import Settings
from kai.deps import DbSession
from kai.runtime import Runtime

pytestmark = pytest.mark.database

PROBLEM = "application/problem+json"


class Echo(BaseModel):
    name: str
    count: int


# Routes that exist only to exercise the shared machinery with a JSON body and a crash.
probe = APIRouter(prefix="/api/v1/_probe")


@probe.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@probe.get("/crash")
async def crash() -> None:
    raise RuntimeError("secret internal detail")


@probe.post("/store")
async def store(body: Echo, session: DbSession) -> Echo:
    await session.execute(text("SELECT CAST(:name AS text)"), {"name": body.name})
    return body


@probe.get("/slow")
async def slow(session: DbSession) -> None:
    await session.execute(text("SET LOCAL statement_timeout = 50"))
    await session.execute(text("SELECT pg_sleep(30)"))


@pytest.fixture
async def probe_client(settings: Settings, runtime: Runtime) -> AsyncIterator[AsyncClient]:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    app = create_app(small, runtime=runtime)
    app.include_router(probe)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kai.test"
    ) as client:
        yield client


def assert_problem(response: object, status: int, type_suffix: str) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert str(body["type"]).endswith("/" + type_suffix)
    assert body["title"]
    return body  # type: ignore[no-any-return]


async def test_an_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")
    body = assert_problem(response, 404, "not-found")
    assert body["instance"] == "/api/v1/no-such-thing"


async def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(client: AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET"


async def test_malformed_json_is_a_400_problem(probe_client: AsyncClient) -> None:
    response = await probe_client.post(
        "/api/v1/_probe/echo",
        content=b'{"name": "oak",',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


async def test_a_body_of_the_wrong_shape_is_a_422_problem_listing_fields(
    probe_client: AsyncClient,
) -> None:
    response = await probe_client.post("/api/v1/_probe/echo", json={"name": "oak", "count": "many"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [
        {
            "loc": ["body", "count"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]


async def test_a_declared_oversized_body_is_refused_with_413(probe_client: AsyncClient) -> None:
    response = await probe_client.post(
        "/api/v1/_probe/echo", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 413, "payload-too-large")
    assert "2048 bytes" in str(body["detail"])


async def test_an_oversized_streamed_body_is_refused_with_413(probe_client: AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    response = await probe_client.post(
        "/api/v1/_probe/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")


async def test_a_nul_character_in_the_url_is_a_400_problem(client: AsyncClient) -> None:
    response = await client.get("/api/v1/jobs", params={"kind": "catalog\x00reindex"})
    body = assert_problem(response, 400, "invalid-value")
    assert "NUL" in str(body["detail"])


async def test_a_value_the_database_cannot_hold_is_a_400_problem(
    probe_client: AsyncClient,
) -> None:
    response = await probe_client.post(
        "/api/v1/_probe/store", json={"name": "oak\u0000", "count": 1}
    )
    assert_problem(response, 400, "invalid-value")
    # The request's transaction was rolled back; the next one works normally.
    response = await probe_client.post("/api/v1/_probe/store", json={"name": "oak", "count": 1})
    assert response.status_code == 200


async def test_a_statement_stopped_by_the_timeout_is_a_503_problem_to_retry(
    probe_client: AsyncClient, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    response = await probe_client.get("/api/v1/_probe/slow")

    body = assert_problem(response, 503, "database-busy")
    assert int(response.headers["retry-after"]) > 0
    assert "pg_sleep" not in response.text
    [line] = [line for line in logged() if line["event"] == "request.statement_timeout"]
    assert "statement timeout" in line["error"]
    assert line["request_id"] == body["request_id"]
    # The request's transaction was rolled back; the next one works normally.
    response = await probe_client.post("/api/v1/_probe/store", json={"name": "oak", "count": 1})
    assert response.status_code == 200


async def test_a_body_within_the_limit_is_accepted(probe_client: AsyncClient) -> None:
    response = await probe_client.post("/api/v1/_probe/echo", json={"name": "oak", "count": 3})
    assert response.status_code == 200
    assert response.json() == {"name": "oak", "count": 3}


async def test_an_unexpected_error_is_a_500_problem_without_internals(
    probe_client: AsyncClient,
) -> None:
    response = await probe_client.get("/api/v1/_probe/crash")
    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


async def test_a_request_id_sent_by_the_client_is_echoed(client: AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123.client"})
    assert response.headers["x-request-id"] == "abc-123.client"


async def test_a_request_id_is_generated_when_absent_or_unusable(client: AsyncClient) -> None:
    plain = await client.get("/healthz")
    unusable = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    for response in (plain, unusable):
        generated = response.headers["x-request-id"]
        assert uuid.UUID(hex=generated)
    assert plain.headers["x-request-id"] != unusable.headers["x-request-id"]


async def test_every_log_line_of_a_request_carries_its_request_id(
    probe_client: AsyncClient, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    response = await probe_client.get("/api/v1/_probe/crash", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500

    lines = logged()
    assert lines, "the request logged nothing"
    assert all(line["request_id"] == "trace-me" for line in lines)
    events = {line["event"] for line in lines}
    assert "request.unhandled_error" in events


async def test_the_access_log_records_route_status_and_duration(
    settings: Settings, runtime: Runtime, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    app = create_app(settings.model_copy(update={"access_log": True}), runtime=runtime)
    logged()
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test") as http:
        await http.get(f"/api/v1/jobs/{uuid.uuid4()}", headers={"X-Request-ID": "access-1"})

    entries = logged()
    access = [entry for entry in entries if entry["event"] == "request"]
    assert len(access) == 1
    assert access[0]["route"] == "/api/v1/jobs/{job_id}"
    assert access[0]["status"] == 401  # no credential: refused before the lookup
    assert access[0]["request_id"] == "access-1"
    assert access[0]["duration_ms"] >= 0
