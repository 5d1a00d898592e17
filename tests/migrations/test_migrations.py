"""Migrations go up and down cleanly, and agree with the models."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from kai.kit.db import Base, libpq_url, sqlalchemy_url
from kai.migrations import runner
from tests.conftest import fresh_database

pytestmark = pytest.mark.database


def _objects(url: str) -> set[str]:
    """Tables, functions, types and extensions a migration could leave behind."""
    with psycopg.connect(libpq_url(url)) as connection:
        rows = connection.execute(
            """
            SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = 'public'
            UNION ALL
            SELECT 'function ' || proname FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
            UNION ALL
            SELECT 'type ' || typname FROM pg_type t
              JOIN pg_namespace n ON n.oid = t.typnamespace
              LEFT JOIN pg_class c ON c.oid = t.typrelid
             WHERE n.nspname = 'public' AND (t.typtype = 'e' OR c.relkind = 'c')
            UNION ALL
            SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
            """
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def empty_database(server_url: str, worker_name: str) -> object:
    with fresh_database(server_url, f"kai_migrations_{worker_name}") as url:
        yield url


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    url = empty_database
    assert _objects(url) == set()

    runner.upgrade(url)
    upgraded = _objects(url)
    assert {"table jobs", "table procrastinate_jobs", "extension vector", "extension pg_trgm"} <= (
        upgraded
    )
    assert runner.status(url).up_to_date

    runner.downgrade(url, "base")
    assert _objects(url) - {"table alembic_version"} == set()
    assert runner.status(url).current == ()

    runner.upgrade(url)
    assert _objects(url) == upgraded


def test_the_models_match_the_migrated_schema(empty_database: str) -> None:
    # A database of its own: other tests add tables of theirs to the shared one.
    runner.upgrade(empty_database)
    engine = create_engine(sqlalchemy_url(empty_database), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [
            diff
            for diff in compare_metadata(context, Base.metadata)
            # procrastinate's tables belong to procrastinate, not to our models.
            if not _is_procrastinate(diff)
        ]
    engine.dispose()
    assert differences == []


def _is_procrastinate(diff: object) -> bool:
    target = diff[0] if isinstance(diff, list) else diff
    name = getattr(target[1], "name", "") if isinstance(target, tuple) else ""
    table = (
        getattr(getattr(target[1], "table", None), "name", "") if isinstance(target, tuple) else ""
    )
    return str(name).startswith("procrastinate") or str(table).startswith("procrastinate")
