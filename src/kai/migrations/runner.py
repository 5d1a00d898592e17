"""Applying migrations from code (`kai db ...`, embedded start-up, tests)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text

from kai.kit.db import APP_ROLE, sqlalchemy_url

MIGRATION_LOCK_ID = 7_311_042_001

# Every module that defines tables; the migrations' autogenerate compares against them.
MODEL_MODULES = (
    "kai.kit.jobs.models",
    "kai.identity.models",
    "kai.catalog.models",
    "kai.search.models",
    "kai.ml.models",
    "kai.recognition.models",
)


def model_modules() -> tuple[str, ...]:
    return MODEL_MODULES


def alembic_config(database_url: str, output: io.StringIO | None = None) -> Config:
    config = Config(stdout=output) if output is not None else Config()
    config.set_main_option("script_location", "kai:migrations")
    # ConfigParser interpolation would read `%` in an escaped URL as a reference.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.head is not None and self.current == (self.head,)


def status(database_url: str) -> MigrationStatus:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    return MigrationStatus(current=tuple(current), head=script.get_current_head())


def allow_app_login(owner_url: str) -> bool:
    """Let the app role log in (the embedded server); False until the migrations made it."""
    engine = create_engine(sqlalchemy_url(owner_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": APP_ROLE}
            ).scalar()
            if exists:
                connection.execute(text(f"ALTER ROLE {APP_ROLE} LOGIN"))
    finally:
        engine.dispose()
    return bool(exists)
