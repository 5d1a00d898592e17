"""The composition root: settings, database, storage and the embedded server, wired once."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kai.config import JobSettings, Settings
from kai.kit.db import create_engine, create_session_factory
from kai.kit.metrics import DB_POOL, PoolStats
from kai.kit.pgembed import EmbeddedPostgres
from kai.kit.storage import ObjectStorage, create_storage


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.data_dir / "postgres")


def attach_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The database URL to use, starting the embedded server when none is configured.

    Blocking: call before the event loop starts, or in a thread.
    """
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres(settings)
    return server.acquire(), server


@dataclass
class Runtime:
    """Everything a request or a job needs from the outside world."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    storage: ObjectStorage
    embedded: EmbeddedPostgres | None = field(default=None)

    def __post_init__(self) -> None:
        # A process serves one runtime; /metrics reports the newest one's pool.
        DB_POOL.read_stats = self.pool_stats

    @property
    def job_settings(self) -> JobSettings:
        return self.settings.jobs

    @classmethod
    def create(
        cls, settings: Settings, database_url: str, embedded: EmbeddedPostgres | None = None
    ) -> Runtime:
        engine = create_engine(database_url, settings.database)
        runtime = cls(
            settings=settings,
            database_url=database_url,
            engine=engine,
            session_factory=create_session_factory(engine),
            storage=create_storage(settings),
            embedded=embedded,
        )
        return runtime

    def pool_stats(self) -> PoolStats | None:
        pool = self.engine.sync_engine.pool
        size = getattr(pool, "size", None)
        if size is None:
            return None
        return PoolStats(
            size=pool.size(),  # type: ignore[attr-defined]
            checked_out=pool.checkedout(),  # type: ignore[attr-defined]
            overflow=max(pool.overflow(), 0),  # type: ignore[attr-defined]
            idle=pool.checkedin(),  # type: ignore[attr-defined]
        )

    async def close(self) -> None:
        await self.storage.close()
        await self.engine.dispose()
