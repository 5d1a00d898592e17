"""Shared fixtures: a real PostgreSQL database per test worker, built once by the migrations.

Without `KAI_TEST_DATABASE_URL` the tests start the bundled PostgreSQL (one cluster shared by
all test workers). With it, they use that server instead: `.ci/run` points it at a second
cluster reached over TCP, so the server profile is exercised too. Each test worker gets its
own database named after the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from kai.app import create_app
from kai.config import Settings
from kai.identity import sso
from kai.kit.db import create_engine, libpq_url
from kai.kit.driver import JoinedDriver
from kai.kit.jobs.worker import run_worker
from kai.kit.logging import configure_logging
from kai.kit.pgembed import EmbeddedPostgres
from kai.kit.storage import create_storage
from kai.migrations import runner
from kai.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tables emptied after tests that commit (the ones a worker in another connection must see).
COMMITTED_TABLES = (
    "jobs",
    "procrastinate_jobs",
    "procrastinate_periodic_defers",
    "organizations",
    "users",
    "login_throttles",
    "sso_login_attempts",
)


def _test_cluster() -> EmbeddedPostgres:
    digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:10]
    return EmbeddedPostgres(
        Path(tempfile.gettempdir()) / f"kai-test-postgres-{digest}",
        # Durability buys nothing in throwaway test databases.
        server_options={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(server: str, name: str) -> Iterator[str]:
    """An empty database `name` on `server`, dropped afterwards."""
    admin = libpq_url(_with_database(server, "postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(server_url: str, worker_name: str) -> Iterator[str]:
    """This test worker's database, migrated to head."""
    with fresh_database(server_url, f"kai_test_{worker_name}") as url:
        runner.upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str, settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, settings.database)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def owner_engine(database_url: str, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Connections as the database's owner, which row-level security does not restrict."""
    engine = create_engine(database_url, settings.database, as_app=False)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kai-data")


@pytest.fixture(scope="session")
def settings(data_dir: Path, database_url: str, model_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        access_log=False,
        # Cheap hashing keeps the suite fast; the production cost has tests of its own.
        auth={"password_hash": {"memory_kib": 1024, "iterations": 1, "parallelism": 1}},
        jobs={
            "heartbeat_seconds": 0.5,
            # A loaded 2-core CI machine can hold an event loop for seconds: a shorter silence
            # handed a live job's entry back and ran it twice. Tests of recovery hand back
            # entries no worker holds, which the recovery takes whatever this is.
            "stalled_after_seconds": 10,
            "stalled_check_seconds": 0.5,
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 1,
        },
        # One image-model store for the run: EfficientNet-Lite0 is exported once.
        vision={"model_dir": model_dir},
        # The API's tests see the server as a `pip install` runs it: no web app built (the
        # app's own tests, in web/e2e, serve the checkout's build).
        web_dir=data_dir / "no-web-build",
    )


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session whose commits become savepoints of the test's outer transaction."""
    async with AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as session:
        yield session


@pytest.fixture(autouse=True)
def forget_identity_providers() -> None:
    """Each test meets providers afresh: the SSO caches live for the process, keyed by URL,
    and a loopback peer's port is soon reused by another test's peer."""
    for cache in (sso.metadata_cache, sso.keys_cache, sso.failed_discoveries):
        cache.entries.clear()


@pytest.fixture
async def runtime(
    settings: Settings, engine: AsyncEngine, connection: AsyncConnection
) -> AsyncIterator[Runtime]:
    """A runtime whose every session joins the test's rolled-back transaction."""
    runtime = Runtime(
        settings=settings,
        database_url=str(settings.database_url.get_secret_value()) if settings.database_url else "",
        engine=engine,
        session_factory=async_sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        ),
        storage=create_storage(settings),
    )
    # The driver's statements join the same transaction (`kai.kit.driver.JoinedDriver`).
    raw = await connection.get_raw_connection()
    assert raw.driver_connection is not None
    runtime.driver_override = JoinedDriver(raw.driver_connection)
    yield runtime
    await runtime.close_services()


@pytest.fixture
async def committed_runtime(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine
) -> AsyncIterator[Runtime]:
    """A runtime that really commits (workers in other connections see its writes).

    The tables it may touch are emptied afterwards.
    """
    async with committing_runtime(settings, engine, owner_engine) as runtime:
        yield runtime


@contextlib.asynccontextmanager
async def committing_runtime(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine, *, owns_engine: bool = False
) -> AsyncIterator[Runtime]:
    """A runtime on `engine` whose sessions really commit; the tables it may touch are emptied
    afterwards (and `engine` disposed of, when the runtime `owns_engine`)."""
    assert settings.database_url is not None
    runtime = Runtime(
        settings=settings,
        database_url=settings.database_url.get_secret_value(),
        engine=engine,
        session_factory=async_sessionmaker(engine, expire_on_commit=False),
        storage=create_storage(settings),
    )
    try:
        yield runtime
    finally:
        await (runtime.close() if owns_engine else runtime.close_services())
        await empty_committed_tables(owner_engine)


async def empty_committed_tables(owner_engine: AsyncEngine) -> None:
    async with owner_engine.begin() as connection:
        # The audit log refuses TRUNCATE by trigger; replica mode skips triggers.
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(
            text(f"TRUNCATE {', '.join(COMMITTED_TABLES)}, audit_events RESTART IDENTITY CASCADE")
        )
        await connection.execute(
            text(
                "UPDATE audit_chain_head"
                " SET last_seq = 0, last_hash = decode(repeat('00', 32), 'hex')"
            )
        )


def _client_of(settings: Settings, runtime: Runtime) -> AsyncClient:
    app = create_app(settings, runtime=runtime)
    return AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://kai.test",
    )


@pytest.fixture
async def client(settings: Settings, runtime: Runtime) -> AsyncIterator[AsyncClient]:
    async with _client_of(settings, runtime) as client:
        yield client


@pytest.fixture
async def committed_client(
    settings: Settings, committed_runtime: Runtime
) -> AsyncIterator[AsyncClient]:
    """A client of an app whose requests really commit, for tests with a running worker."""
    async with _client_of(settings, committed_runtime) as client:
        yield client


@pytest.fixture
async def running_worker(committed_runtime: Runtime) -> AsyncIterator[None]:
    """A job worker in this process, as `kai serve` runs one, for the test's duration."""
    async with worker_running(committed_runtime):
        yield


@contextlib.asynccontextmanager
async def worker_running(runtime: Runtime) -> AsyncIterator[None]:
    """A job worker in this process for the block's duration (jobs queued later wait)."""
    worker = asyncio.create_task(
        run_worker(
            runtime,
            runtime.database_url,
            concurrency=2,
            name="test-worker",
            install_signal_handlers=False,
        )
    )
    try:
        yield
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def logged(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines written since the last call, as the server writes them to stderr.

    Logging goes through the standard library's root handler, which this points at the
    captured stderr: a structlog logger cached by an earlier test still reaches it (structlog's
    own capture would miss those). The handler goes afterwards, before its stream closes.
    """
    configure_logging("info", "json")
    # Written to whatever stderr is when a line is logged: pytest points it at the capture
    # only while the test runs, after this fixture is set up.
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(_CurrentStderr())
    capsys.readouterr()

    def read() -> list[dict[str, Any]]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    yield read
    logging.getLogger().handlers[:] = []
