"""Settings come from KAI_* variables and `.env`, nested with `__`; secrets never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from kai.config import Settings


def test_the_embedded_defaults_need_no_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.embedded_database
    assert settings.data_dir == tmp_path / "kai-data"
    assert settings.local_storage_root == tmp_path / "kai-data" / "objects"
    assert settings.max_body_bytes == 25 * 1024 * 1024


def test_environment_variables_with_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAI_PORT", "9100")
    monkeypatch.setenv("KAI_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("KAI_STORAGE__S3__BUCKET", "tiles")
    monkeypatch.setenv("KAI_JOBS__CONCURRENCY", "8")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == 9100
    assert settings.storage.backend == "s3"
    assert settings.storage.s3.bucket == "tiles"
    assert settings.jobs.concurrency == 8


def test_a_dotenv_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KAI_PORT=9200\nKAI_HOST=0.0.0.0\n")
    monkeypatch.setenv("KAI_HOST", "127.0.0.2")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.port == 9200
    assert settings.host == "127.0.0.2"


def test_secrets_are_masked_when_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAI_DATABASE_URL", "postgresql://kai:hunter2@db/kai")
    monkeypatch.setenv("KAI_STORAGE__S3__SECRET_ACCESS_KEY", "s3-secret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    shown = str(settings.masked())
    assert "hunter2" not in shown
    assert "s3-secret" not in shown
    assert settings.masked()["database_url"] == "**********"
    assert not settings.embedded_database


@pytest.mark.parametrize(
    ("name", "value"), [("KAI_PORT", "70000"), ("KAI_STORAGE__BACKEND", "ftp")]
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name.removeprefix("KAI_").lower().split("__")[-1]):
        Settings(_env_file=None)  # type: ignore[call-arg]
