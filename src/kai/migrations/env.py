"""Alembic environment: runs migrations on the URL that `kai.migrations.runner` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from kai.kit.db import Base, sqlalchemy_url
from kai.migrations.runner import MIGRATION_LOCK_ID, model_modules

for module in model_modules():
    __import__(module)

config = context.config
configured_url = config.get_main_option("sqlalchemy.url")
if not configured_url:
    raise RuntimeError("no database URL given to the migrations")
url: str = configured_url


def _include_object(obj: object, name: str | None, type_: str, *args: object) -> bool:
    # procrastinate's tables come from its own schema file, not from our models.
    return not (name or "").startswith("procrastinate")


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_type=True,
            include_object=_include_object,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            # Two processes starting together (serve and worker) must not migrate twice.
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
