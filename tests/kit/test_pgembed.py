"""The bundled PostgreSQL: started by its first holder, stopped by its last, data kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from kai.kit.pgembed import EmbeddedPostgres, memory_options


@pytest.fixture
def cluster(tmp_path: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(tmp_path / "pg")
    yield server
    if server.is_running():
        server.stop()


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def test_first_holder_starts_it_last_stops_it_and_data_survives(cluster: EmbeddedPostgres) -> None:
    url = cluster.acquire()
    assert cluster.is_running()
    with _connect(url) as connection:
        versions = connection.execute(
            "SELECT name FROM pg_available_extensions WHERE name IN ('vector', 'pg_trgm')"
        ).fetchall()
        assert sorted(name for (name,) in versions) == ["pg_trgm", "vector"]
        connection.execute("CREATE TABLE kept (value text)")
        connection.execute("INSERT INTO kept VALUES ('still here')")

    cluster.release()
    assert not cluster.is_running()

    with _connect(cluster.acquire()) as connection:
        assert connection.execute("SELECT value FROM kept").fetchone() == ("still here",)
    cluster.release()
    assert not cluster.is_running()


def test_it_keeps_running_while_another_live_process_holds_it(cluster: EmbeddedPostgres) -> None:
    cluster.acquire()
    other = subprocess.Popen(["sleep", "60"])
    try:
        (cluster.holders_dir / str(other.pid)).touch()
        cluster.release()
        assert cluster.is_running()
    finally:
        other.kill()
        other.wait()
    # The other holder died without releasing: the next release sees it is gone.
    cluster.acquire()
    cluster.release()
    assert not cluster.is_running()


def test_a_data_dir_too_deep_for_a_socket_path_still_works(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5, "pg")
    server = EmbeddedPostgres(deep)
    try:
        url = server.acquire()
        assert len(str(deep / "run" / ".s.PGSQL.5432")) > 107
        with _connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_the_embedded_servers_memory_follows_the_machines() -> None:
    mib = 1024 * 1024
    # A small machine keeps PostgreSQL's default; a large one stops at 1 GiB of buffers.
    assert memory_options(512 * mib)["shared_buffers"] == "128MB"
    assert memory_options(4096 * mib) == {
        "shared_buffers": "512MB",
        "effective_cache_size": "2048MB",
        "work_mem": "32MB",
    }
    assert memory_options(65536 * mib)["shared_buffers"] == "1024MB"
