"""Background jobs on procrastinate, tracked in the `jobs` table.

A job is enqueued inside the caller's transaction (the `jobs` row and procrastinate's queue
row commit or roll back together). A worker runs each attempt in its own transaction: the
task's writes and the job's `succeeded` mark commit together, so a worker killed mid-job
leaves nothing half-done and the retried attempt starts from a clean state.

A task may name what to do once its job is given up (`on_final_failure`): its last attempt
failed, or it was cancelled. That runs in a transaction of its own (the attempt's is rolled
back), or in the cancelling request's, so what the job was working on (a batch, a model
version) never stays "running" for ever.

Heavy jobs (a task registered with `heavy=True`: batches, trainings, imports) of one
organization take one of its `heavy_per_organization` lock slots. Procrastinate runs the
jobs of one lock one at a time, in order, and its fetch skips a job whose lock is taken or
has an earlier job waiting; so an organization has at most that many heavy jobs running,
and the rest of its backlog is passed over for the next organization's jobs, which start on
the next free worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from procrastinate import App, JobContext, PsycopgConnector, RetryDecision
from procrastinate.exceptions import JobAborted
from procrastinate.retry import BaseRetryStrategy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.config import HEAVY_SLOTS_MAX, JobSettings, Settings
from kai.kit.db import SETTINGS_INFO, act_for_each_transaction, commit, scoped_transaction
from kai.kit.errors import KaiError
from kai.kit.images import ImageLimits
from kai.kit.jobs.models import Job, JobStatus
from kai.kit.jobs.repository import JobRepository
from kai.kit.metrics import JOB_DURATION, JOBS
from kai.kit.ratelimit import declared_rate_class
from kai.kit.storage import ObjectStorage
from kai.kit.storage.transactional import discard_uncommitted

log = structlog.get_logger(__name__)

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 5
# Job kinds are dotted lower-case names: `catalog.reindex`, `models.train`.
KIND_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
KIND_MAX_LENGTH = 100

# Tasks register on this app at import time; workers run a copy bound to a real connector
# (`job_app.with_connector(...)`). Deferring never uses this connector's pool: it always
# passes the caller's own database connection.
job_app = App(connector=PsycopgConnector())

# Kinds registered with `heavy=True`; known wherever their task module was imported.
HEAVY_KINDS: set[str] = set()
HEAVY_LOCK_PREFIX = "kai.heavy"
# Retry-After for a refused heavy job: the backlog drains at the pace of its jobs.
_QUEUE_FULL_RETRY_SECONDS = 60


class TooManyQueuedJobs(KaiError):
    status, type, title = 429, "too-many-queued-jobs", "Too many jobs are waiting"


class HeavyJobFromCheapRoute(RuntimeError):
    """A route queued heavy work without declaring the `expensive` rate class: a bug."""


class JobRuntime(Protocol):
    """What a running job may use; the worker passes it in procrastinate's context."""

    @property
    def session_factory(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def job_settings(self) -> JobSettings: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> ObjectStorage: ...

    @property
    def task_modules(self) -> tuple[str, ...]:
        """Modules whose tasks the worker must know (imported by name when it starts)."""
        ...


class PermanentJobError(Exception):
    """Raised by a task when retrying cannot help (bad input, missing object). `result`, if
    given, is kept as the failed job's result (what it found: an import's report)."""

    def __init__(self, message: str, *, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


# What the owner of a job given up is told, unless a PermanentJobError said why.
CANCELLED_REASON = "The job was cancelled."
UNEXPECTED_REASON = "The job stopped on an unexpected error; the server's log has the details."
RETRY_REASON = (
    "An attempt stopped on an unexpected error (the server's log has the details);"
    " the job will be tried again."
)


@dataclass(frozen=True)
class JobGivenUp:
    """A job that will not run again: its last attempt failed, or it was cancelled."""

    job_id: uuid.UUID
    kind: str
    organization_id: uuid.UUID | None
    params: dict[str, Any]
    cancelled: bool
    # Fit to show the job's owner, and the job's own `error`: a PermanentJobError's message,
    # or a fixed sentence (an unexpected error's own words stay in the log).
    reason: str


# Called with a session acting for the job's organization; must be idempotent (a job may be
# given up by its worker and by a cancelling request alike).
FinalFailureHook = Callable[[AsyncSession, JobGivenUp], Awaitable[None]]


class _RetryLater(Exception):
    def __init__(self, delay_seconds: float, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.delay_seconds = delay_seconds


class _TrackedRetry(BaseRetryStrategy):
    """Retries exactly when the tracking wrapper asked for it, after the delay it chose."""

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> RetryDecision | None:
        if isinstance(exception, _RetryLater):
            return RetryDecision(
                retry_at=datetime.now(UTC) + timedelta(seconds=exception.delay_seconds)
            )
        return None


def backoff_seconds(attempt: int, settings: JobSettings) -> float:
    """Delay before the attempt after `attempt` (1-based): base * 2**(attempt-1), capped."""
    return float(min(settings.retry_base_seconds * 2 ** (attempt - 1), settings.retry_max_seconds))


@dataclass
class JobRun:
    """One attempt of a job, as the task function sees it."""

    job_id: uuid.UUID
    kind: str
    attempt: int
    params: dict[str, Any]
    # Writes made here commit together with the job's success, or not at all.
    session: AsyncSession
    _session_factory: _TenantSessions = field(repr=False)
    _context: JobContext = field(repr=False)
    # The organization the job works for (None: the platform's own work).
    organization_id: uuid.UUID | None = None

    async def report_progress(self, done: int, total: int | None = None) -> None:
        """Publish progress at once, outside the attempt's transaction."""
        async with self._session_factory.begin() as progress_session:
            await JobRepository(progress_session).set_progress(self.job_id, done, total)

    @property
    def storage(self) -> ObjectStorage:
        """The object storage, for tasks that read or write files."""
        runtime: JobRuntime = self._context.additional_context["runtime"]
        return runtime.storage

    @property
    def settings(self) -> Settings:
        """The process's settings, for tasks tuned by them."""
        runtime: JobRuntime = self._context.additional_context["runtime"]
        return runtime.settings

    async def remember(self, params: dict[str, Any]) -> None:
        """Replace the job's params at once, outside the attempt's transaction.

        For what a later attempt must know because it cannot be undone (a message was sent),
        and for forgetting what the job no longer needs (an address, once it is done with).
        """
        async with self._session_factory.begin() as session:
            await JobRepository(session).set_params(self.job_id, params)
        self.params = dict(params)

    @contextlib.asynccontextmanager
    async def separate_transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction of its own, committed whatever becomes of the attempt's: for what a
        failing attempt must still record (its rollback would take it back)."""
        async with self._session_factory.begin() as session:
            yield session

    @property
    def image_limits(self) -> ImageLimits:
        """What an image may be (`KAI_IMAGES__*`), for tasks that decode images."""
        images = self.settings.images
        return ImageLimits(max_bytes=images.max_bytes, max_pixels=images.max_pixels)

    def should_abort(self) -> bool:
        """True once the job was cancelled; long tasks check it between units of work."""
        return bool(self._context.should_abort())


JobFunction = Callable[[JobRun], Awaitable[dict[str, Any] | None]]


# Every tracked task by kind, where its module was imported.
TASKS: dict[str, TrackedTask] = {}


class TrackedTask:
    """A task whose every job is visible in the `jobs` table. Create with `job_task`."""

    def __init__(
        self,
        kind: str,
        function: JobFunction,
        queue: str,
        max_attempts: int,
        heavy: bool,
        on_final_failure: FinalFailureHook | None = None,
    ) -> None:
        self.kind = kind
        self.function = function
        self.queue = queue
        self.max_attempts = max_attempts
        self.heavy = heavy
        self.on_final_failure = on_final_failure
        TASKS[kind] = self
        if heavy:
            HEAVY_KINDS.add(kind)
        self.procrastinate_task = job_app.task(
            name=kind, queue=queue, pass_context=True, retry=_TrackedRetry()
        )(self._run)

    async def enqueue(
        self,
        session: AsyncSession,
        *,
        params: dict[str, Any] | None = None,
        organization_id: uuid.UUID | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Record a job and queue it in `session`'s transaction; it runs once that commits."""
        return await enqueue_kind(
            session,
            self.kind,
            params=params,
            organization_id=organization_id,
            max_attempts=max_attempts or self.max_attempts,
            queue=self.queue,
        )

    async def _run(
        self, context: JobContext, job_id: str, organization_id: str | None = None
    ) -> dict[str, Any] | None:
        runtime: JobRuntime = context.additional_context["runtime"]
        tenant = uuid.UUID(organization_id) if organization_id else None
        # Every transaction of the job acts for the job's organization, and sees only it.
        factory = _TenantSessions(runtime.session_factory, tenant)
        tracked_id = uuid.UUID(job_id)
        bound = log.bind(job_id=job_id, kind=self.kind)

        async with factory.begin() as session:
            job = await JobRepository(session).start_attempt(tracked_id)
            if job is None:
                bound.info("job.skipped", reason="already finished or cancelled")
                await _finish_cancelling(factory, tracked_id, tenant)
                return None
            attempt, max_attempts, params = job.attempts, job.max_attempts, dict(job.params)

        started = time.perf_counter()
        outcome = "failed"
        try:
            async with factory.open() as session:
                run = JobRun(
                    tracked_id, self.kind, attempt, params, session, factory, context, tenant
                )
                result = await self.function(run)
                await JobRepository(session).set_status(
                    tracked_id, JobStatus.SUCCEEDED, result=result, error=None
                )
                await commit(session)
            outcome = "succeeded"
            bound.info("job.succeeded", attempt=attempt)
            return result
        except (JobAborted, asyncio.CancelledError):
            outcome = "cancelled"
            await asyncio.shield(
                _give_up(factory, tracked_id, JobStatus.CANCELLED, None, CANCELLED_REASON)
            )
            bound.info("job.cancelled", attempt=attempt)
            raise
        except Exception as exc:
            permanent = isinstance(exc, PermanentJobError)
            final = attempt >= max_attempts or permanent
            # The job's `error` is read by its owner: a PermanentJobError's own words, or a
            # fixed sentence. An unexpected error's words (a statement and its parameters, a
            # path) go to the log only, with its traceback, found there by the job's id.
            detail: dict[str, Any] = {}
            if permanent:
                error = str(exc)[:2000]
            else:
                error = UNEXPECTED_REASON if final else RETRY_REASON
                detail["exc_info"] = exc
            if final:
                found = exc.result if isinstance(exc, PermanentJobError) else None
                await _give_up(factory, tracked_id, JobStatus.FAILED, error, error, found)
                bound.error("job.failed", attempt=attempt, error=error, **detail)
                raise
            outcome = "retried"
            delay = backoff_seconds(attempt, runtime.job_settings)
            await _record(factory, tracked_id, JobStatus.RETRYING, error)
            bound.warning("job.retrying", attempt=attempt, retry_in_seconds=delay, **detail)
            raise _RetryLater(delay, exc) from exc
        finally:
            JOBS.labels(self.kind, outcome).inc()
            JOB_DURATION.labels(self.kind).observe(time.perf_counter() - started)


async def enqueue_kind(
    session: AsyncSession,
    kind: str,
    *,
    params: dict[str, Any] | None = None,
    organization_id: uuid.UUID | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    queue: str = DEFAULT_QUEUE,
) -> Job:
    """Queue a job by its kind alone, in `session`'s transaction.

    A domain asks a later domain for work this way (the catalog asks search to embed what
    changed) without importing it: the task is found by name in the worker that runs it.
    A heavy kind of an organization takes one of its lock slots (see the module's doc).
    """
    lock = None
    if kind in HEAVY_KINDS:
        _check_paid_for(kind)
        if organization_id is not None:
            lock = await _heavy_lock(session, organization_id)
    job = await JobRepository(session).add(
        Job(
            kind=kind,
            organization_id=organization_id,
            params=params or {},
            max_attempts=max_attempts,
            status=JobStatus.QUEUED,
        )
    )
    connection = await (await session.connection()).get_raw_connection()
    queue_job_id = await job_app.configure_task(
        name=kind, queue=queue, lock=lock, connection=connection.driver_connection
    ).defer_async(
        job_id=str(job.id), organization_id=str(organization_id) if organization_id else None
    )
    job.queue_job_id = queue_job_id
    await session.flush()
    return job


def _check_paid_for(kind: str) -> None:
    declared = declared_rate_class.get()
    # None: not in a request (a job, a command). In a request, only a route that pays the
    # expensive rate may start heavy work; anything else is a route that forgot to say so.
    if declared is not None and declared != "expensive":
        raise HeavyJobFromCheapRoute(
            f"{kind} is heavy work: only a route declaring rate_class='expensive' may queue it"
            f" (this one declared {declared or 'no rate class'!r})"
        )


def _job_settings(session: AsyncSession) -> JobSettings:
    settings = session.info.get(SETTINGS_INFO)
    return settings.jobs if isinstance(settings, Settings) else JobSettings()


async def _heavy_lock(session: AsyncSession, organization_id: uuid.UUID) -> str:
    """The organization's lock slot with the fewest heavy jobs waiting or running.

    Two transactions queueing at once may pick the same slot; that costs balance, not the
    cap, which procrastinate's fetch enforces per lock.
    """
    settings = _job_settings(session)
    # Every slot the organization could have: jobs queued before the setting was lowered
    # still count, and still hold their slots.
    every_slot = [
        f"{HEAVY_LOCK_PREFIX}:{organization_id}:{slot}" for slot in range(HEAVY_SLOTS_MAX)
    ]
    active = {
        row.lock: row.jobs
        for row in await session.execute(
            text(
                "SELECT lock, count(*) AS jobs FROM procrastinate_jobs"
                " WHERE lock = ANY(:locks) AND status IN ('todo', 'doing') GROUP BY lock"
            ),
            {"locks": every_slot},
        )
    }
    queued = sum(active.values())
    if queued >= settings.heavy_queued_per_organization:
        raise TooManyQueuedJobs(
            f"Your organization has {queued} heavy jobs (batches, trainings, imports) waiting or"
            " running; queue more once some have finished.",
            headers={"Retry-After": str(_QUEUE_FULL_RETRY_SECONDS)},
        )
    slots = every_slot[: settings.heavy_per_organization]
    return min(slots, key=lambda lock: active.get(lock, 0))


_ASKED = "kai.kit.jobs.asked_in_transaction"


async def enqueue_unless_waiting(
    session: AsyncSession, kind: str, *, organization_id: uuid.UUID, max_attempts: int = 3
) -> Job | None:
    """Queue a job of `kind` for the organization unless one is already waiting to start.

    For jobs that work through whatever is pending when they run (idempotent sweeps): a burst
    of edits then costs one job, not one per edit.
    """
    # Asked again in the same transaction (an import updating thousands of rows), the answer
    # stands: the job found or queued will start only after this transaction ends.
    asked: dict[tuple[str, uuid.UUID], object] = session.info.setdefault(_ASKED, {})
    transaction = session.get_transaction()
    if transaction is not None and asked.get((kind, organization_id)) is transaction:
        return None
    job = None
    if not await JobRepository(session).has_waiting(kind, organization_id):
        job = await enqueue_kind(
            session, kind, organization_id=organization_id, max_attempts=max_attempts
        )
    asked[(kind, organization_id)] = session.get_transaction()
    return job


class _TenantSessions:
    """Sessions whose transactions act for one organization (None: the platform's own)."""

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], organization_id: uuid.UUID | None
    ) -> None:
        self.factory = factory
        self.organization_id = organization_id

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        async with scoped_transaction(
            self.factory, organization_id=self.organization_id
        ) as session:
            yield session

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncSession]:
        """A session the caller commits; each transaction is scoped as it begins (none is
        opened until one is used). Objects written for rows it did not commit are removed
        when it closes."""
        async with self.factory() as session:
            act_for_each_transaction(session, organization_id=self.organization_id)
            try:
                yield session
            finally:
                # What the caller left uncommitted ends here, not later in close(), so that
                # its objects are known to be orphans.
                await session.rollback()
                await discard_uncommitted(session)


async def _record(
    factory: _TenantSessions,
    job_id: uuid.UUID,
    status: JobStatus,
    error: str | None,
) -> None:
    async with factory.begin() as session:
        await JobRepository(session).set_status(job_id, status, error=error)


async def _give_up(
    factory: _TenantSessions,
    job_id: uuid.UUID,
    status: JobStatus,
    error: str | None,
    reason: str,
    result: dict[str, Any] | None = None,
) -> None:
    """Record the job's end (with `result`, what a failed one found) and let its task clean
    up after it, in one transaction; the hook is told the job's params as they are now (a
    task may have changed them as it went)."""
    async with factory.begin() as session:
        repository = JobRepository(session)
        found = {} if result is None else {"result": result}
        await repository.set_status(job_id, status, error=error, **found)
        job = await repository.get(job_id, organization_id=factory.organization_id)
        if job is not None:
            cancelled = status == JobStatus.CANCELLED
            await final_failure(session, given_up_as(job, reason=reason, cancelled=cancelled))


async def final_failure(session: AsyncSession, given_up: JobGivenUp) -> None:
    """Run the `on_final_failure` hook of the job's task, if it has one, in a savepoint of
    `session`'s transaction: a hook that fails is logged, and takes nothing else back."""
    task = TASKS.get(given_up.kind)
    if task is None or task.on_final_failure is None:
        return
    try:
        async with session.begin_nested():
            await task.on_final_failure(session, given_up)
    except Exception:
        log.exception("job.final_failure_hook_failed", job_id=str(given_up.job_id))


async def finish_cancelling(
    session_factory: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    organization_id: uuid.UUID | None,
) -> None:
    """End a job that was being cancelled and will not run again (its worker found it so
    before beginning, or died): it is cancelled, and its task told it was given up. A job in
    any other state is left as it is."""
    await _finish_cancelling(
        _TenantSessions(session_factory, organization_id), job_id, organization_id
    )


async def _finish_cancelling(
    factory: _TenantSessions, job_id: uuid.UUID, organization_id: uuid.UUID | None
) -> None:
    async with factory.begin() as session:
        repository = JobRepository(session)
        job = await repository.get(job_id, organization_id=organization_id, for_update=True)
        if job is not None and job.status == JobStatus.CANCELLING:
            await repository.set_status(job_id, JobStatus.CANCELLED)
            await final_failure(session, given_up_as(job))


def given_up_as(job: Job, *, reason: str = CANCELLED_REASON, cancelled: bool = True) -> JobGivenUp:
    """What a hook is told of `job`: by default, that it was cancelled."""
    return JobGivenUp(job.id, job.kind, job.organization_id, dict(job.params), cancelled, reason)


def job_task(
    kind: str,
    *,
    queue: str = DEFAULT_QUEUE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    heavy: bool = False,
    on_final_failure: FinalFailureHook | None = None,
) -> Callable[[JobFunction], TrackedTask]:
    """Register `function` as the task run for jobs of `kind` (a dotted name).

    `heavy`: work that grows with an organization's input (a batch, a training, an import):
    capped per organization on the shared queue, and queued only by expensive-class routes.
    `on_final_failure`: called once the job is given up (its last attempt failed, or it was
    cancelled, queued or running), in a transaction that commits whatever became of the
    attempt's: for marking what the job was working on as failed, or removing its files.
    """
    if not re.fullmatch(KIND_PATTERN, kind) or len(kind) > KIND_MAX_LENGTH:
        raise ValueError(f"job kind {kind!r} is not a dotted lower-case name")

    def register(function: JobFunction) -> TrackedTask:
        return TrackedTask(kind, function, queue, max_attempts, heavy, on_final_failure)

    return register
