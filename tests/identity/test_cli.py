"""`kai admin` and `kai audit` against a real database, as an operator runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from kai import config
from kai.cli import app
from kai.kit.db import libpq_url
from tests.conftest import empty_committed_tables

pytestmark = pytest.mark.database
runner = CliRunner()
PASSWORD = "porphyry column 1911"


@pytest.fixture
async def operator_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, owner_engine: AsyncEngine
) -> AsyncIterator[None]:
    for name, value in {
        "KAI_DATABASE_URL": database_url,
        "KAI_DATA_DIR": str(tmp_path),
        "KAI_ENVIRONMENT": "test",
        "KAI_AUTH__PASSWORD_HASH__MEMORY_KIB": "1024",
        "KAI_AUTH__PASSWORD_HASH__ITERATIONS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    config.get_settings.cache_clear()
    yield
    config.get_settings.cache_clear()
    await empty_committed_tables(owner_engine)


def _kai(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.usefixtures("operator_env")
def test_an_operator_creates_resets_and_unlocks_people() -> None:
    out = _kai(
        "admin",
        "create-user",
        "--email",
        "Boss@Quarry.example",
        "--organization",
        "quarry",
        "--password",
        PASSWORD,
    )
    assert "is owner of quarry" in out
    out = _kai(
        "admin",
        "create-user",
        "--email",
        "clerk@quarry.example",
        "--organization",
        "quarry",
        "--role",
        "analyst",
        "--password",
        PASSWORD,
    )
    assert "is analyst of quarry" in out

    again = runner.invoke(
        app,
        [
            "admin",
            "create-user",
            "--email",
            "boss@quarry.example",
            "--organization",
            "quarry",
            "--password",
            PASSWORD,
        ],
    )
    assert again.exit_code == 1
    assert "has an account already" in again.output
    weak = runner.invoke(
        app,
        [
            "admin",
            "create-user",
            "--email",
            "x@quarry.example",
            "--organization",
            "quarry",
            "--password",
            "password1",
        ],
    )
    assert weak.exit_code == 1
    unknown_role = runner.invoke(
        app,
        [
            "admin",
            "create-user",
            "--email",
            "y@quarry.example",
            "--organization",
            "quarry",
            "--role",
            "emperor",
            "--password",
            PASSWORD,
        ],
    )
    assert unknown_role.exit_code == 1

    assert "reset" in _kai(
        "admin",
        "reset-password",
        "--email",
        "clerk@quarry.example",
        "--password",
        "granite counter 2030",
    )
    assert "was not locked" in _kai("admin", "unlock", "--email", "clerk@quarry.example")
    assert "audit log intact" in _kai("audit", "verify")


@pytest.mark.usefixtures("operator_env")
def test_audit_verify_fails_on_a_tampered_log(database_url: str) -> None:
    _kai(
        "admin",
        "create-user",
        "--email",
        "a@quarry.example",
        "--organization",
        "quarry2",
        "--password",
        PASSWORD,
    )
    with psycopg.connect(libpq_url(database_url)) as connection:
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute("UPDATE audit_events SET action = 'nothing.happened'")
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "broken at event 1" in result.output
