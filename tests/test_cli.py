"""The `kai` command as an operator uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kai import config
from kai.cli import app
from kai.config import Settings
from tests.commands import run_kai
from tests.security.peers import free_port

runner = CliRunner()

COMMANDS = [
    [],
    ["serve"],
    ["worker"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "status"],
    ["db", "embedded", "start"],
    ["db", "embedded", "stop"],
    ["config"],
    ["config", "show"],
    ["admin"],
    ["admin", "check"],
]


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    config.get_settings.cache_clear()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "kai")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_config_show_prints_effective_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAI_DATABASE_URL", "postgresql://kai:hunter2@db.example/kai")
    monkeypatch.setenv("KAI_PORT", "8123")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    shown = json.loads(result.output)
    assert shown["port"] == 8123
    assert shown["database_url"] == "**********"
    assert "hunter2" not in result.output


@pytest.mark.database
def test_db_status_and_admin_check_against_a_configured_server(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAI_DATABASE_URL", database_url)
    monkeypatch.setenv("KAI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KAI_LOG_LEVEL", "warning")

    status = runner.invoke(app, ["db", "status"])
    assert status.exit_code == 0, status.output
    assert "up to date" in status.output

    check = runner.invoke(app, ["admin", "check"])
    assert check.exit_code == 0, check.output
    assert check.output.splitlines() == [
        "database: ok",
        "storage: ok",
        "job_queue: ok",
        "migrations: up to date",
    ]


def test_admin_check_fails_when_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAI_DATABASE_URL", "postgresql://kai@127.0.0.1:1/kai")
    monkeypatch.setenv("KAI_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["admin", "check"])
    assert result.exit_code != 0


@pytest.mark.database
def test_logs_go_to_standard_error_and_standard_output_carries_only_the_answer(
    settings: Settings,
) -> None:
    # Alembic logs a few lines at the default level whenever it runs: none may be printed
    # where a script reads the command's answer.
    upgraded = run_kai(settings, "db", "upgrade")

    assert upgraded.returncode == 0, upgraded.stderr
    [answer] = upgraded.stdout.splitlines()
    assert answer.startswith("database at ")
    assert "Context impl PostgresqlImpl" in upgraded.stderr


@pytest.mark.database
def test_embedded_start_prints_its_url_alone(settings: Settings, tmp_path: Path) -> None:
    # As a script reads it: URL=$(kai db embedded start DIR --port P).
    cluster = tmp_path / "cluster"
    port = free_port()
    try:
        started = run_kai(settings, "db", "embedded", "start", str(cluster), "--port", str(port))

        assert started.returncode == 0, started.stderr
        [url] = started.stdout.splitlines()
        assert url.startswith("postgresql://")
        assert f"@127.0.0.1:{port}/" in url
        assert "embedded_postgres.started" in started.stderr
    finally:
        run_kai(settings, "db", "embedded", "stop", str(cluster))
