"""The composition root: settings, database, storage and the embedded server, wired once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kai.config import JobSettings, Settings
from kai.kit.crypto import SecretBox, master_key
from kai.kit.db import APP_ROLE, SETTINGS_INFO, create_engine, create_session_factory, libpq_url
from kai.kit.driver import Driver, PooledDriver
from kai.kit.images import ImageLimits
from kai.kit.jws import KeySet
from kai.kit.metrics import DB_POOL, PoolStats
from kai.kit.model_cache import MODELS
from kai.kit.outbound import OutboundClient, OutboundPolicy
from kai.kit.passwords import Passwords
from kai.kit.pgembed import EmbeddedPostgres, memory_options
from kai.kit.ratelimit import RateLimiter, create_rate_limiter
from kai.kit.replica import Replica
from kai.kit.storage import ObjectStorage, create_storage

T = TypeVar("T")

# Modules whose tasks every worker must know, by name: the job machinery in `kit` cannot
# import the domains. A domain with jobs adds its module here.
DOMAIN_TASK_MODULES = (
    "kai.identity.tasks",
    "kai.catalog.tasks",
    "kai.search.tasks",
    "kai.ml.tasks",
    "kai.recognition.tasks",
)


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    """The bundled server in the data dir, its memory sized to the machine (a server named by
    `KAI_DATABASE_URL` is configured by whoever runs it)."""
    return EmbeddedPostgres(settings.data_dir / "postgres", server_options=memory_options())


@dataclass(frozen=True)
class DatabaseUrls:
    # The schema's owner: runs the migrations.
    owner: str
    # What the application connects with; it acts as `kai_app` either way.
    app: str


def attach_database(
    settings: Settings, *, migrate: bool = False
) -> tuple[DatabaseUrls, EmbeddedPostgres | None]:
    """The database URLs to use, starting the embedded server when none is configured.

    Blocking: call before the event loop starts, or in a thread. The caller releases the
    embedded server it gets back.
    """
    # Alembic is slow to import and only needed here, not by every process holding a runtime.
    from kai.migrations import runner

    if settings.database_url is not None:
        app_url = settings.database_url.get_secret_value()
        migration_url = settings.database.migration_url
        owner = migration_url.get_secret_value() if migration_url else app_url
        if migrate:
            runner.upgrade(owner)
        return DatabaseUrls(owner=owner, app=app_url), None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres(settings)
    owner = server.acquire()
    try:
        if migrate:
            runner.upgrade(owner)
        # The embedded server listens on its own socket only: the app role logs in there, so
        # the app's connections never hold a role that could bypass row-level security.
        app_url = server.url(user=APP_ROLE) if runner.allow_app_login(owner) else owner
    except BaseException:
        server.release()
        raise
    return DatabaseUrls(owner=owner, app=app_url), server


@dataclass
class Runtime:
    """Everything a request or a job needs from the outside world."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    storage: ObjectStorage
    embedded: EmbeddedPostgres | None = field(default=None)
    # What "now" is for rules that depend on time (throttling, expiry); tests move it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Where the driver's statements run instead of the runtime's own pool (tests whose
    # sessions join one rolled-back transaction: `kai.kit.driver.JoinedDriver`).
    driver_override: Driver | None = field(default=None)
    # The domains' own per-runtime caches, by name (`kai.identity.authentication`'s, say).
    caches: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A process serves one runtime; /metrics reports the newest one's pool.
        DB_POOL.read_stats = self.pool_stats
        MODELS.configure(
            size=self.settings.ml.cache_size, idle_seconds=self.settings.ml.cache_idle_seconds
        )

    @property
    def job_settings(self) -> JobSettings:
        return self.settings.jobs

    @property
    def task_modules(self) -> tuple[str, ...]:
        return (*DOMAIN_TASK_MODULES, *self.settings.jobs.import_paths)

    @classmethod
    def create(
        cls, settings: Settings, database_url: str, embedded: EmbeddedPostgres | None = None
    ) -> Runtime:
        engine = create_engine(database_url, settings.database)
        runtime = cls(
            settings=settings,
            database_url=database_url,
            engine=engine,
            session_factory=create_session_factory(engine, info={SETTINGS_INFO: settings}),
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

    @cached_property
    def master_key(self) -> bytes:
        configured = self.settings.secret_key
        return master_key(
            configured.get_secret_value() if configured else None, self.settings.data_dir
        )

    @cached_property
    def image_limits(self) -> ImageLimits:
        """What an uploaded image may be (`KAI_IMAGES__*`)."""
        return ImageLimits(
            max_bytes=self.settings.images.max_bytes, max_pixels=self.settings.images.max_pixels
        )

    @cached_property
    def passwords(self) -> Passwords:
        return Passwords(self.settings.auth)

    @cached_property
    def token_keys(self) -> KeySet:
        return KeySet.from_settings(self.settings.auth, self.master_key)

    @cached_property
    def outbound(self) -> OutboundClient:
        """The client for every request to a URL a user named (`KAI_OUTBOUND__*`)."""
        return OutboundClient(OutboundPolicy.from_settings(self.settings.outbound))

    @cached_property
    def driver(self) -> Driver:
        """The driver's own pool, for what every request does (`kai.kit.driver`)."""
        if self.driver_override is not None:
            return self.driver_override
        return PooledDriver(libpq_url(self.database_url), self.settings.database, app_role=APP_ROLE)

    @cached_property
    def replica(self) -> Replica | None:
        """The read replica (`KAI_DATABASE__REPLICA_URL`), or None without one."""
        url = self.settings.database.replica_url
        if url is None:
            return None
        return Replica(
            url.get_secret_value(),
            self.settings.database,
            primary=self.engine,
            info={SETTINGS_INFO: self.settings},
        )

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        redis_url = self.settings.redis_url
        return create_rate_limiter(
            redis_url.get_secret_value() if redis_url else None,
            prefix=self.settings.rate_limits.redis_prefix,
            shared_table=self.settings.rate_limits.shared_table,
        )

    def secret_box(self, purpose: str) -> SecretBox:
        return SecretBox(self.master_key, purpose)

    async def close_services(self) -> None:
        """Close what the runtime opened besides the database engine (the driver's pool is the
        runtime's own)."""
        await self.storage.close()
        if "rate_limiter" in self.__dict__:
            await self.rate_limiter.close()
        if self.__dict__.get("replica") is not None:
            await self.__dict__["replica"].close()
        if "driver" in self.__dict__:
            await self.driver.close()

    async def close(self) -> None:
        await self.close_services()
        await self.engine.dispose()


def run_with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `work` in a new event loop against the app's database (the embedded server is
    started, migrated and released around it): what one-shot commands do."""

    async def main(url: str) -> T:
        runtime = Runtime.create(settings, url)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    urls, embedded = attach_database(settings, migrate=settings.embedded_database)
    try:
        return asyncio.run(main(urls.app))
    finally:
        if embedded is not None:
            embedded.release()
