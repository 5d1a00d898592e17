"""Settings: one object, read from KAI_* environment variables and an optional `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
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
    # Where migrations run, as the schema's owner; empty means `KAI_DATABASE_URL`. The app
    # itself always acts as the role `kai_app` (see `kai.kit.db.APP_ROLE`).
    migration_url: SecretStr | None = None
    # A request waits for one of the pool's connections rather than opening another: under
    # 32 concurrent requests on 2 cores, overflow connections opened and closed per burst
    # cost more than the wait (24-43 % more requests a second with 10 and no overflow than
    # with 20 + 20, benchmarks/README.md). More cores or slower queries: raise pool_size.
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=0, ge=0)
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    # A streaming replica of the database for searches and listings; empty: none.
    replica_url: SecretStr | None = None
    # Every read goes to the primary while the replica is further behind than this (and a
    # caller's until the replica holds its last write).
    replica_max_lag_seconds: float = Field(default=5.0, gt=0)


# The most heavy-job slots an organization may have (procrastinate locks; see kit/jobs/queue).
HEAVY_SLOTS_MAX = 64


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
    # Heavy jobs (batches, trainings, imports, reindexing) of one organization running at
    # once, across every worker: another organization's job starts on the next free worker
    # instead of waiting behind this one's backlog. 1 isolates best on a shared platform;
    # raise it where one organization has the workers to itself.
    heavy_per_organization: int = Field(default=2, ge=1, le=HEAVY_SLOTS_MAX)
    # Heavy jobs an organization may have waiting or running; more are refused (429).
    heavy_queued_per_organization: int = Field(default=100, ge=1)
    # Extra modules whose tasks a worker should know (plugins, deployments' own tasks).
    import_paths: list[str] = Field(default_factory=list)


class ImageSettings(BaseModel):
    """What an uploaded image may be: refused beyond these, before it is decoded."""

    max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Width times height: a decompression bomb is refused from its header.
    max_pixels: int = Field(default=50_000_000, ge=1)


class PasswordHashSettings(BaseModel):
    """argon2id cost. The defaults are OWASP's minimum for argon2id; lower is refused."""

    memory_kib: int = Field(default=19_456, ge=1024)
    iterations: int = Field(default=2, ge=1)
    parallelism: int = Field(default=1, ge=1)


class JwtKey(BaseModel):
    """One access-token signing key. HMAC keys carry `secret`; the others PEM keys."""

    kid: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    algorithm: Literal["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"]
    secret: SecretStr | None = None
    private_key: SecretStr | None = None  # PEM; absent on keys kept only to verify
    public_key: str | None = None  # PEM


class AuthSettings(BaseModel):
    issuer: str = "kai"
    audience: str = "kai-api"
    access_token_minutes: int = Field(default=15, ge=1, le=15)
    # How long a process keeps what a session or API key was found to allow: a revocation
    # made in another process takes effect here within this (in the process that made it,
    # at once). 0 asks the database on every request.
    access_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # Keys, newest first: the first key with a private part (or secret) signs; all verify.
    # Empty: one HS256 key derived from the secret key (one instance, or all sharing it).
    jwt_keys: list[JwtKey] = Field(default_factory=list)
    # Algorithms a token may use at all, whatever its key says.
    jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"]
    )
    refresh_token_days: int = Field(default=30, ge=1)
    # The absolute session lifetime when the organization sets none.
    session_lifetime_hours: int = Field(default=24 * 7, ge=1)
    password_hash: PasswordHashSettings = Field(default_factory=PasswordHashSettings)
    password_min_length: int = Field(default=8, ge=8)
    password_max_length: int = Field(default=128, ge=64, le=1024)
    # zxcvbn score (0-4) a new password must reach.
    password_min_score: int = Field(default=2, ge=0, le=4)
    # Failed password checks (logins and re-authentications alike) before each next try of
    # an address waits (1 s, 2 s, 4 s... up to the maximum), and the count that locks it
    # (NIST: <= 100).
    throttle_after_failures: int = Field(default=5, ge=1)
    throttle_max_seconds: int = Field(default=900, ge=1)
    lockout_after_failures: int = Field(default=100, ge=1, le=100)
    # A lock lasts `lockout_minutes`, each further one `lockout_growth` times longer, up to
    # `lockout_max_minutes` (15 min, 1 h, 4 h, 16 h, 24 h): never for good.
    lockout_minutes: int = Field(default=15, ge=1)
    lockout_growth: int = Field(default=4, ge=1, le=100)
    lockout_max_minutes: int = Field(default=24 * 60, ge=1)
    # How long a password proof (a password login, `POST /auth/step-up`) allows changes to
    # the account's credentials and sessions.
    step_up_minutes: int = Field(default=15, ge=1, le=24 * 60)
    email_token_hours: int = Field(default=24, ge=1)
    password_reset_minutes: int = Field(default=30, ge=5)
    invitation_days: int = Field(default=7, ge=1)
    allow_signup: bool = True
    # Where links in emails (and single sign-on redirects) point: the address people reach
    # the server at. Unset, the server's own (`KAI_HOST`, `KAI_PORT`).
    public_url: str | None = None


class RatePolicy(BaseModel):
    limit: int = Field(ge=1)
    period_seconds: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)


class SearchSettings(BaseModel):
    """How semantic and hybrid search rank the catalog."""

    # Materials taken from the nearest by meaning, before filters (semantic mode returns at
    # most this many; hybrid fuses them with every full-text match).
    semantic_candidates: int = Field(default=100, ge=1, le=1000)
    # Cosine similarity under which a material is not considered related to the query at all
    # (all-MiniLM-L6-v2 puts unrelated texts at 0 to 0.25; a material and a query about it
    # usually above 0.35).
    semantic_min_similarity: float = Field(default=0.3, ge=-1.0, le=1.0)
    # Reciprocal-rank fusion: a result at rank r in one list scores 1 / (rrf_k + r).
    rrf_k: int = Field(default=60, ge=1)
    # Materials embedded per job before the job hands the rest to a follow-up job.
    embed_batch: int = Field(default=500, ge=1)


class RateLimitSettings(BaseModel):
    """Requests allowed per API key, per user, or per client address when anonymous; and per
    organization, whatever number of keys and members share it."""

    enabled: bool = True
    standard: RatePolicy = Field(default_factory=lambda: RatePolicy(limit=1200, period_seconds=60))
    # Logins, sign-ups, resets: per client address, on top of per-account login throttling.
    auth: RatePolicy = Field(
        default_factory=lambda: RatePolicy(limit=30, period_seconds=60, burst=10)
    )
    # Work that grows with its input or runs a model: recognitions, batches, imports, exports,
    # training, model uploads, image uploads, bulk writes, near-duplicate scans, image search.
    expensive: RatePolicy = Field(default_factory=lambda: RatePolicy(limit=120, period_seconds=60))
    # An organization's own bucket in each class holds this many credentials' worth (limit
    # and burst): every request spends its credential's bucket and its organization's, so
    # minting more API keys or inviting more members buys no more than this.
    organization_multiple: int = Field(default=5, ge=1)
    # Emailed links of one kind (password resets, address confirmations) asked for one
    # address, whoever asks: past it, requests are answered alike and dropped. (The job that
    # sends them also sends at most one link of a kind to an address every few minutes.)
    email_address: RatePolicy = Field(
        default_factory=lambda: RatePolicy(limit=6, period_seconds=3600, burst=3)
    )

    # Where the buckets' keys go in Redis: deployments sharing one Redis keep apart by it.
    redis_prefix: str = Field(default="kai:ratelimit:", min_length=1, max_length=100)
    # The table file the processes of one `kai serve --workers N` share their buckets through
    # when there is no Redis: set by that command for the processes it starts.
    shared_table: Path | None = None

    def policy(self, rate_class: str) -> RatePolicy | None:
        if not self.enabled:
            return None
        policy: RatePolicy = getattr(self, rate_class)
        return policy


class EmailSettings(BaseModel):
    backend: Literal["outbox", "smtp"] = "outbox"
    sender: str = "KAI <no-reply@kai.local>"
    # Empty means `<data_dir>/outbox`.
    outbox_dir: Path | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)


class ModelSandboxSettings(BaseModel):
    """The child processes that run organizations' uploaded image models (and check them
    on upload): each serves one model of one organization, within these limits."""

    # Address space of one child (RLIMIT_AS): the runtime, the model (a 240 MB ResNet-152
    # needs about three times its size while it loads) and its activations.
    memory_mb: int = Field(default=3072, ge=256)
    # Processor time of one request (loading and checking a model, or embedding up to 32
    # views of 224 px, fewer of larger ones), and the wall-clock time the server waits for it.
    cpu_seconds: float = Field(default=30.0, gt=0)
    wall_seconds: float = Field(default=60.0, gt=0)
    # Children per model (a batch embeds photos on several at once) and in all, upload checks
    # included; an idle child is stopped after idle_seconds, the least recently used first
    # when a cap is reached. When none may start, the caller is answered at once (429 when its
    # organization's are busy, 503 when the server's are), never kept waiting.
    processes_per_model: int = Field(default=2, ge=1)
    max_processes: int = Field(default=8, ge=1)
    # The part of max_processes one organization's models and checks may hold at once (at
    # least one): the rest stays for the others.
    organization_share: float = Field(default=0.5, gt=0, le=1)
    idle_seconds: float = Field(default=600.0, gt=0)
    # A model that failed (out of time or memory, or refused) is not started again for this
    # long: its recognitions fail at once with the same reason.
    retry_after_seconds: float = Field(default=60.0, ge=0)


class VisionSettings(BaseModel):
    """How photos are prepared and embedded for recognition."""

    # Exported and user-supplied image models; empty means `<data_dir>/models`.
    model_dir: Path | None = None
    # Threads of one image-model call (0: every core). One: a recognition runs its backbones
    # side by side, one a core, and batches run photos side by side; measured on 2 cores,
    # EfficientNet-Lite0 and the descriptor took 19 ms together so, and 30 ms in the server
    # with two threads each, fighting over both cores.
    threads: int = Field(default=1, ge=0)
    # Threads a recognition batch decodes and embeds photos on (0: one a core). Set it to the
    # cores a container is given where the machine reports more.
    batch_workers: int = Field(default=0, ge=0)
    # Optional enhancement before embedding: grey-world white balance, and contrast-limited
    # adaptive histogram equalisation of lightness.
    white_balance: bool = False
    clahe: bool = False
    sandbox: ModelSandboxSettings = Field(default_factory=ModelSandboxSettings)


class MlSettings(BaseModel):
    """Models in memory: one cache per process (`kai.kit.model_cache`) holds the loaded image
    backbones, uploaded models' process pools, and each model version's heads."""

    # Entries kept at most (the least recently used goes first). A built-in backbone is
    # 20-60 MB in memory, a version's heads a few hundred KB.
    cache_size: int = Field(default=24, ge=1)
    # What no recognition or training used for this long is let go.
    cache_idle_seconds: float = Field(default=1800.0, gt=0)
    # Every trained version recorded as an MLflow run and registered model version, with the
    # aliases champion and challenger kept in step (kai.ml.registry).
    tracking: bool = True
    # MLflow's store (a SQLAlchemy URL); empty: a database of its own beside KAI's
    # (`<database>_mlflow`, made when first needed).
    mlflow_tracking_uri: SecretStr | None = None
    # Where MLflow keeps run files; empty: `mlflow/` in KAI's object store.
    mlflow_artifact_root: str | None = None


class OutboundSettings(BaseModel):
    """Requests the server makes to URLs that organizations name (SSO issuers, later webhooks
    and connectors): only to public addresses over https, unless listed here."""

    # Host names or addresses an operator trusts: requests to them may reach any address,
    # internal ones included (an identity provider inside the company network).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Addresses an operator trusts, whatever name leads to them (`10.20.0.0/16`).
    allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    # Plain http to the hosts and networks above only (a provider on this machine while
    # developing); everything else is https.
    allow_http: bool = False
    # From the first byte sent to the last byte read, whatever the remote side does.
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Answers larger than this are cut off and the request fails (discovery documents and key
    # sets are a few KiB).
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024)

    @field_validator("allowed_hosts")
    @classmethod
    def _normalised_hosts(cls, hosts: list[str]) -> list[str]:
        return [host.strip().strip("[]").rstrip(".").lower() for host in hosts if host.strip()]


class MetricsSettings(BaseModel):
    """Where Prometheus may read `/metrics`. Neither set: nowhere (see the README)."""

    # A second listener of `kai serve` that serves `/metrics` only, without a token: bind it
    # where only the scraper reaches it.
    port: int | None = Field(default=None, ge=0, le=65535)
    host: str = "127.0.0.1"
    # `/metrics` on the public listener, to `Authorization: Bearer <token>` only.
    token: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _long_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 24:
            raise ValueError("the metrics token must be at least 24 characters")
        return token


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
    # Server processes `kai serve` runs on the one port; empty: one with the embedded database,
    # one per core with a configured one (the server profile).
    workers: int | None = Field(default=None, ge=1)
    # API reads (GET, HEAD) a server process works on at once; the rest wait their turn in
    # order (kai.kit.turns). As many as the database pool's connections: fewer left a core
    # idle while the database worked (64 clients: 4 turns 120 searches a second, 10 turns
    # 135), and more only share the pool by turns, the slowest waiting longest.
    reads_at_once: int = Field(default=10, ge=1)
    data_dir: Path = Path("kai-data")
    # Empty means: start the bundled PostgreSQL inside data_dir.
    database_url: SecretStr | None = None
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    ml: MlSettings = Field(default_factory=MlSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    # Derives the default token key and encrypts stored secrets (TOTP seeds, SSO client
    # secrets). Empty: generated once into `<data_dir>/secret_key`. Set it for several
    # instances, and keep it: stored secrets cannot be read without it.
    secret_key: SecretStr | None = None
    # Rate-limit state; empty means in-process (one instance).
    redis_url: SecretStr | None = None
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # What the archives of one request (batch zips, catalog import zips) may unpack to, all
    # together, as a multiple of max_body_bytes; counted while inflating, whatever the zip
    # claims. Photos barely compress; CSV does, hence a few times the body.
    archive_inflate_factor: int = Field(default=4, ge=1, le=64)
    # The built web app (`web/dist` of a checkout when empty); without one, `/` says so.
    web_dir: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = True
    # FastAPI's own OpenTelemetry spans, metrics and logs, exported as its
    # `FASTAPI_OTEL_AUTO_CONFIGURE` and the `OTEL_*` variables say. Off by default: KAI's
    # metrics and logs are its own (/metrics, JSON logs), and the check alone cost 3 % of a
    # small request.
    opentelemetry: bool = False

    @property
    def public_url(self) -> str:
        """The address people reach this server at, without a trailing slash."""
        if self.auth.public_url:
            return self.auth.public_url.rstrip("/")
        # A server bound to every interface is reached on this machine by loopback; one
        # reached from elsewhere sets KAI_AUTH__PUBLIC_URL.
        everywhere = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - read
        host = everywhere.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @model_validator(mode="after")
    def _owasp_password_cost(self) -> Settings:
        # Tests may hash cheaply; nothing else may go below OWASP's argon2id minimum.
        cost = self.auth.password_hash
        if self.environment != "test" and (
            cost.memory_kib < 19_456 or cost.iterations < 2 or cost.parallelism < 1
        ):
            raise ValueError("argon2id cost below OWASP's minimum (m=19456 KiB, t=2, p=1)")
        return self

    @model_validator(mode="after")
    def _metrics_on_its_own_port(self) -> Settings:
        # The listener is told apart by its port: one port for both would serve the API's
        # metrics to everyone, or the API to the scraper.
        if self.metrics.port and self.metrics.port == self.port:
            raise ValueError("KAI_METRICS__PORT must differ from KAI_PORT")
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def max_inflated_bytes(self) -> int:
        """What one request's archives may unpack to, all together."""
        return self.archive_inflate_factor * self.max_body_bytes

    @property
    def local_storage_root(self) -> Path:
        return self.storage.local_root or self.data_dir / "objects"

    @property
    def model_dir(self) -> Path:
        return self.vision.model_dir or self.data_dir / "models"

    @property
    def outbox_dir(self) -> Path:
        return self.email.outbox_dir or self.data_dir / "outbox"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets shown as `**********`."""
        return self.model_dump(mode="json")


@lru_cache
def get_settings() -> Settings:
    return Settings()
