"""Fixtures both test trees share, `tests/` and the web app's `web/e2e/`: the PostgreSQL
server the tests make databases on, the test worker's name, and the image-model store.

They live here, once, because the embedded server is held per process: a second definition
of the same fixture in another tree would hold it twice and its first release would stop it
under the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _test_cluster


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server with pgvector on which the tests may create databases."""
    configured = os.environ.get("KAI_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    cluster = _test_cluster()
    url = cluster.acquire()
    try:
        yield url
    finally:
        cluster.release()


@pytest.fixture(scope="session")
def worker_name(request: pytest.FixtureRequest) -> str:
    """This test process's name among all running on the server: the xdist worker and the
    process id, so two test runs sharing the cluster (two checkouts, CI beside a developer)
    never drop each other's databases."""
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    return f"{worker}_{os.getpid()}"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One image-model store for every test worker of the run, so the export happens once."""
    shared = tmp_path_factory.getbasetemp().parent / "kai-models"
    shared.mkdir(exist_ok=True)
    return shared
