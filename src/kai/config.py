"""Settings: one object, read from KAI_* environment variables and an optional `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class S3Settings(BaseModel):
    """Where an S3-compatible bucket lives and how to reach it."""

    bucket: str = "kai"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    prefix: str = ""


class StorageSettings(BaseModel):
    backend: Literal["local", "s3"] = "local"
    # Empty means `<data_dir>/objects`.
    local_root: Path | None = None
    s3: S3Settings = Field(default_factory=S3Settings)


class DatabaseSettings(BaseModel):
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    statement_timeout_ms: int = Field(default=30_000, ge=0)


class JobSettings(BaseModel):
    concurrency: int = Field(default=4, ge=1)
    # Backoff before retry n is base * 2**(n-1) seconds, capped.
    retry_base_seconds: float = Field(default=2.0, ge=0)
    retry_max_seconds: float = Field(default=600.0, ge=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    # A running job whose worker has been silent this long is handed to another worker.
    stalled_after_seconds: float = Field(default=60.0, gt=0)
    stalled_check_seconds: float = Field(default=15.0, gt=0)
    keep_finished_days: int = Field(default=30, ge=1)
    # Extra modules whose tasks a worker should know (plugins, deployments' own tasks).
    import_paths: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Everything KAI reads from its environment. Nothing is required for the embedded run."""

    model_config = SettingsConfigDict(
        env_prefix="KAI_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("kai-data")
    # Empty means: start the bundled PostgreSQL inside data_dir.
    database_url: SecretStr | None = None
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = True

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def local_storage_root(self) -> Path:
        return self.storage.local_root or self.data_dir / "objects"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets shown as `**********`."""
        return self.model_dump(mode="json")


@lru_cache
def get_settings() -> Settings:
    return Settings()
