"""Organizations' uploaded image models, run in sandbox children (kai.kit.sandbox), never in
the server: checked with `onnx` and loaded there (kai.vision.model_child), with limits on
memory, processor and wall-clock time.

A child serves one model of one organization and lives on between requests (starting one
costs about a second; a request then costs the pipe). Children and upload checks are counted
together: at most `processes_per_model` children a model, an organization's `organization_share`
of `max_processes`, and `max_processes` in all. When none may start (idle ones are stopped to
make room first), the caller is answered at once with ImageModelsBusy (429 when its
organization's share is used, 503 when the server's children are) rather than kept waiting; only
a caller embedding on several threads at once (a batch) waits, for the children it holds itself.
A child that fails is discarded and its model is not started again for `retry_after_seconds`.
What onnxruntime says goes to the log with the request id; callers read fixed words.

Blocking work (starting, checking, embedding) runs in threads; an upload's check runs on this
module's own threads, one a child at most, never on the event loop's default executor.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import structlog

from kai.config import ModelSandboxSettings, VisionSettings
from kai.kit.errors import Unprocessable
from kai.kit.sandbox import Limits, Sandbox, SandboxFailed
from kai.vision.backbones.base import BackboneUnavailable
from kai.vision.backbones.onnx import MAX_BATCH, fingerprint_of, photo_embeddings
from kai.vision.onnx_check import REFUSALS
from kai.vision.onnx_session import OnnxModelSpec

log = structlog.get_logger(__name__)

CHILD_MODULE = "kai.vision.model_child"
# Pixels sent to a child in one request: 32 views of 224 px. A model for larger images gets
# fewer views a request, so that one request's processor time stays bounded.
PIXELS_PER_REQUEST = MAX_BATCH * 224 * 224
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


T = TypeVar("T")
# Retry-After of a busy answer: a child's request usually takes well under a second, a
# hostile model's at most wall_seconds.
BUSY_RETRY_SECONDS = 5


class ImageModelFailed(Unprocessable):
    type, title = "image-model-failed", "The image model cannot be used"


class ImageModelsBusy(BackboneUnavailable):
    """No image-model process may start now: the server's are all busy (503)."""

    type, title = "image-models-busy", "Every image-model process is busy"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(BUSY_RETRY_SECONDS)})


class ImageModelShareUsed(ImageModelsBusy):
    """The organization's share of the processes (or its model's) is busy (429)."""

    status = 429
    type, title = "image-model-share-used", "The organization's image-model processes are busy"


@dataclass(frozen=True)
class _Model:
    """What a child needs to load a model, and the words for its failures."""

    spec: OnnxModelSpec
    settings: VisionSettings
    max_bytes: int
    # In use (training, recognitions): its failures name it; an upload's check need not.
    named: bool = False

    def error(self, words: str) -> ImageModelFailed:
        return ImageModelFailed(f"{self.spec.name}: {words}" if self.named else words)

    @property
    def limits(self) -> Limits:
        sandbox = self.settings.sandbox
        return Limits(
            memory_bytes=sandbox.memory_mb * 1024 * 1024,
            cpu_seconds=sandbox.cpu_seconds,
            wall_seconds=sandbox.wall_seconds,
        )

    def failure(self, reason: str, *, loading: bool) -> str:
        sandbox = self.settings.sandbox
        side = self.spec.input_side
        return {
            "memory": f"The model needs more than {sandbox.memory_mb} MB of memory.",
            "cpu": f"The model needs more than {sandbox.cpu_seconds:g} s of processor time.",
            "time": f"The model did not answer within {sandbox.wall_seconds:g} s.",
            "crashed": "The model stopped the process it ran in.",
            "not-a-number": "The model's output is not a number for this photo.",
            "runtime": (
                f"The model does not run on {side} px RGB images, several at once (a "
                "dynamic batch size), as declared."
                if loading
                else "The model failed on this photo."
            ),
        }.get(reason, "The model's process failed.")

    def mismatch(self, what: str, value: str) -> str:
        if what == "input":
            return f"The model has no input named {self.spec.input!r}."
        if what == "output":
            return f"The model has no output named {self.spec.output!r}."
        rank = value if value.isdigit() else "other"
        return (
            f"The model's output has {rank} dimensions; expected a feature map "
            "(N x C x H x W) or vectors (N x D)."
        )


async def check(
    data: bytes,
    spec: OnnxModelSpec,
    *,
    organization_id: uuid.UUID,
    settings: VisionSettings,
    max_bytes: int,
) -> int:
    """Check, load and run the model once in a child of its own, counted as one of the
    organization's: its embedding's width, ImageModelFailed saying why it cannot be used, or
    ImageModelsBusy at once when no child may start now."""
    model = _Model(spec=spec, settings=settings, max_bytes=max_bytes)
    with _lock:
        stopping = _make_room(organization_id, None, settings.sandbox)
        _checks[organization_id] += 1

    def run() -> int:
        for child in stopping:
            child.sandbox.close()
        sandbox, dimension = _start(model, data)
        sandbox.close()
        return dimension

    def done() -> None:
        for child in stopping:  # already stopped, unless the check never began
            child.sandbox.close()
        with _lock:
            _checks[organization_id] -= 1
            if not _checks[organization_id]:
                del _checks[organization_id]
            _lock.notify_all()

    return await _on_own_threads(run, settings.sandbox, done=done)


async def _on_own_threads(
    work: Callable[[], T], settings: ModelSandboxSettings, *, done: Callable[[], None]
) -> T:
    """`work` on this module's threads; `done` once it has ended, even when the caller stops
    waiting (the child goes on to its end, counted until then)."""

    def run() -> T:
        try:
            return work()
        finally:
            done()

    # In the caller's context, as asyncio.to_thread would: the log lines keep the request id.
    future = _threads(settings.max_processes).submit(contextvars.copy_context().run, run)

    def cancelled(finished: Future[T]) -> None:
        if finished.cancelled():  # never began: `run` will not say it is done
            done()

    future.add_done_callback(cancelled)
    return await asyncio.wrap_future(future)


@functools.cache
def _threads(size: int) -> ThreadPoolExecutor:
    """Threads for the children's blocking work: as many as children may run, so that work
    that holds a counted place never waits for a thread."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="kai-sandbox")


def _start(model: _Model, data: bytes) -> tuple[Sandbox, int]:
    """A child with the model loaded, and its embedding's width."""
    try:
        sandbox = Sandbox(CHILD_MODULE, model.limits)
    except SandboxFailed as exc:
        raise _failed(model, exc.reason, loading=True) from None
    except OSError as exc:  # no process could be started (the machine's limits)
        log.error("vision.sandbox_not_started", model=model.spec.name, error=str(exc))
        raise BackboneUnavailable("The image model cannot be started now; try again.") from None
    try:
        answer, _ = sandbox.call(
            {
                "op": "load",
                "spec": model.spec.to_json(),
                "threads": model.settings.threads,
                "max_bytes": model.max_bytes,
            },
            data,
            max_reply_bytes=0,
        )
    except SandboxFailed as exc:
        raise _failed(model, exc.reason, loading=True) from None
    dimension = answer.get("dimension")
    if answer.get("ok") is True and isinstance(dimension, int) and dimension > 0:
        if not sandbox.landlock or not sandbox.seccomp:
            log.warning(
                "vision.sandbox_confined_less",
                model=model.spec.name,
                landlock=sandbox.landlock,
                seccomp=sandbox.seccomp,
            )
        return sandbox, dimension
    sandbox.close()
    raise _refusal(model, answer, loading=True)


def _refusal(model: _Model, answer: dict[str, Any], *, loading: bool) -> ImageModelFailed:
    """The words for a child's answer that is not a result."""
    rule = answer.get("refused")
    if isinstance(rule, str) and rule in REFUSALS:
        subject = answer.get("subject")
        named = f" ({subject})" if isinstance(subject, str) and _PLAIN_NAME.match(subject) else ""
        return model.error(REFUSALS[rule].format(subject=named))
    what, value = answer.get("mismatch"), answer.get("value")
    if isinstance(what, str) and isinstance(value, str):
        return model.error(model.mismatch(what, value))
    reason = answer.get("failed")
    return _failed(
        model, reason if isinstance(reason, str) else "protocol", loading=loading, said=answer
    )


def _failed(
    model: _Model, reason: str, *, loading: bool, said: dict[str, Any] | None = None
) -> ImageModelFailed:
    runtime_error = (said or {}).get("log")
    log.warning(
        "vision.image_model_failed",
        model=model.spec.name,
        reason=reason,
        loading=loading,
        runtime_error=str(runtime_error)[:2000] if runtime_error is not None else None,
    )
    return model.error(model.failure(reason, loading=loading))


@dataclass(eq=False)
class _Child:
    sandbox: Sandbox
    last_used: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Pool:
    """The children of one model of one organization."""

    organization_id: uuid.UUID
    model: _Model
    dimension: int
    read_model: Callable[[], bytes]
    idle: list[_Child] = field(default_factory=list)
    busy: int = 0
    starting: int = 0
    broken_until: float = 0.0
    broken_because: str = ""
    forgotten: bool = False

    @property
    def live(self) -> int:
        return len(self.idle) + self.busy + self.starting


@dataclass(eq=False)
class _Caller:
    """One user of a backbone (a recognition, a batch, a training): the children it holds."""

    holding: int = 0


_lock = threading.Condition()
# Never emptied but by stop_all: a pool is a few words once its children are stopped.
_pools: dict[tuple[Any, ...], _Pool] = {}
# Pools whose model was deleted (or stopped) while children of theirs were busy: still counted
# until those are released.
_draining: set[_Pool] = set()
# Upload checks running, by organization.
_checks: Counter[uuid.UUID] = Counter()


def _every_pool() -> list[_Pool]:
    return [*_pools.values(), *_draining]


def in_use(organization_id: uuid.UUID | None = None) -> int:
    """Children alive or starting and checks running: the organization's, or all."""
    with _lock:
        return _in_use(organization_id)


def _in_use(organization_id: uuid.UUID | None = None) -> int:
    pools = _every_pool()
    if organization_id is None:
        return sum(pool.live for pool in pools) + sum(_checks.values())
    return (
        sum(pool.live for pool in pools if pool.organization_id == organization_id)
        + _checks[organization_id]
    )


def organization_processes(settings: ModelSandboxSettings) -> int:
    """How many children (and checks) one organization may hold at once."""
    return max(1, math.floor(settings.max_processes * settings.organization_share))


def _make_room(
    organization_id: uuid.UUID, pool: _Pool | None, settings: ModelSandboxSettings
) -> list[_Child]:
    """Room for one more child of the organization (of `pool`'s model, if given): the idle
    children to stop for it (taken out of their pools; the caller stops them, unlocked), or
    ImageModelsBusy, changing nothing, when busy ones fill a cap."""
    if pool is not None and pool.live >= settings.processes_per_model:
        raise ImageModelShareUsed(
            f"{pool.model.spec.name} may run in {settings.processes_per_model} processes at "
            "once, and all are busy; try again in a few seconds."
        )
    share = organization_processes(settings)
    # Idle children, the least recently used first.
    idle = sorted(
        ((owner, child) for owner in _pools.values() for child in owner.idle),
        key=lambda entry: entry[1].last_used,
    )
    own = [entry for entry in idle if entry[0].organization_id == organization_id]
    own_needed = max(0, _in_use(organization_id) + 1 - share)
    if len(own) < own_needed:
        raise ImageModelShareUsed(
            f"The organization's image models may run in {share} processes at once, and all "
            "are busy; try again in a few seconds."
        )
    chosen = own[:own_needed]
    others = [entry for entry in idle if entry not in chosen]
    needed = max(0, _in_use() - len(chosen) + 1 - settings.max_processes)
    if len(others) < needed:
        raise ImageModelsBusy(
            "Every image-model process of this server is busy; try again in a few seconds."
        )
    chosen += others[:needed]
    for owner, child in chosen:
        owner.idle.remove(child)
    return [child for _, child in chosen]


def _acquire(pool: _Pool, caller: _Caller) -> _Child:
    sandbox_settings = pool.model.settings.sandbox
    deadline = time.monotonic() + sandbox_settings.wall_seconds
    stopping: list[_Child] = []
    try:
        with _lock:
            while True:
                now = time.monotonic()
                stopping += _reap(now)
                if pool.forgotten:
                    # Its model was deleted: a child started now would be nobody's to count.
                    raise BackboneUnavailable(
                        f"The image model {pool.model.spec.name!r} was deleted."
                    )
                if now < pool.broken_until:
                    raise ImageModelFailed(pool.broken_because)
                while pool.idle:
                    child = pool.idle.pop()
                    if child.sandbox.alive:
                        pool.busy += 1
                        caller.holding += 1
                        return child
                    stopping.append(child)  # died while idle (killed from outside): replaced
                try:
                    stopping += _make_room(pool.organization_id, pool, sandbox_settings)
                except ImageModelsBusy:
                    # A caller on several threads (a batch) waits for the children it holds
                    # itself, which come back within a request's time; nobody waits for others.
                    if not caller.holding or now >= deadline:
                        raise
                    _lock.wait(deadline - now)
                    continue
                pool.starting += 1
                caller.holding += 1
                break
    finally:
        for child in stopping:
            child.sandbox.close()
    try:
        sandbox, dimension = _start(pool.model, pool.read_model())
    except BaseException as exc:
        with _lock:
            pool.starting -= 1
            caller.holding -= 1
            if isinstance(exc, ImageModelFailed):
                _break(pool, exc)
            _drained(pool)
            _lock.notify_all()
        raise
    with _lock:
        pool.starting -= 1
        pool.busy += 1
    if dimension != pool.dimension:  # not the model that was checked on upload
        _release(pool, caller, _Child(sandbox), failed=True)
        failure = _failed(pool.model, "protocol", loading=True)
        with _lock:
            _break(pool, failure)
        raise failure
    _start_reaper()
    return _Child(sandbox)


def _release(pool: _Pool, caller: _Caller, child: _Child, *, failed: bool) -> None:
    with _lock:
        pool.busy -= 1
        caller.holding -= 1
        keep = not failed and not pool.forgotten and child.sandbox.alive
        if keep:
            child.last_used = time.monotonic()
            pool.idle.append(child)
        _drained(pool)
        _lock.notify_all()
    if not keep:
        child.sandbox.close()


def _drained(pool: _Pool) -> None:
    """A forgotten pool whose last child has ended is no longer counted."""
    if pool.forgotten and not pool.live:
        _draining.discard(pool)


def _break(pool: _Pool, failure: ImageModelFailed) -> None:
    pool.broken_until = time.monotonic() + pool.model.settings.sandbox.retry_after_seconds
    pool.broken_because = failure.detail or failure.title


def _reap(now: float) -> list[_Child]:
    """Idle children past their idle time, taken out of their pools (to stop, unlocked)."""
    stale: list[_Child] = []
    for pool in _pools.values():
        idle_for = pool.model.settings.sandbox.idle_seconds
        stale += [child for child in pool.idle if now - child.last_used > idle_for]
        pool.idle = [child for child in pool.idle if now - child.last_used <= idle_for]
    return stale


_reaper: threading.Thread | None = None
# How often idle children are looked for (each model's own idle time decides which go).
REAP_EVERY_SECONDS = 15.0


def _start_reaper() -> None:
    """Stop idle children even while no request comes (one daemon thread a process)."""
    global _reaper
    with _lock:
        if _reaper is not None:
            return
        _reaper = threading.Thread(target=_reap_forever, name="kai-sandbox-reaper", daemon=True)
        _reaper.start()


def _reap_forever() -> None:
    while True:
        time.sleep(REAP_EVERY_SECONDS)
        with _lock:
            stale = _reap(time.monotonic())
        for child in stale:
            child.sandbox.close()


class SandboxedBackbone:
    """An uploaded model as a backbone: embedding happens in its sandbox children."""

    standardize = False

    def __init__(self, pool: _Pool, fingerprint: str) -> None:
        self._pool = pool
        self._fingerprint = fingerprint
        # Each caller loads its own backbone: what this one holds is its caller's.
        self._caller = _Caller()

    @property
    def name(self) -> str:
        return self._pool.model.spec.name

    @property
    def input_side(self) -> int:
        return self._pool.model.spec.input_side

    @property
    def dimension(self) -> int:
        return self._pool.dimension

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def processes(self) -> list[int]:
        """The process ids of the model's idle children (for diagnostics and tests)."""
        with _lock:
            return [child.sandbox.pid for child in self._pool.idle]

    def embed(self, photos: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        views = [view for photo in photos for view in photo]
        if not views:
            return np.zeros((0, self.dimension), dtype=np.float32)
        side = self.input_side
        step = max(1, min(MAX_BATCH, PIXELS_PER_REQUEST // (side * side)))
        rows = np.concatenate(
            [self._rows(views[start : start + step]) for start in range(0, len(views), step)]
        )
        return photo_embeddings(rows, [len(photo) for photo in photos])

    def _rows(self, views: Sequence[np.ndarray]) -> np.ndarray:
        side = self.input_side
        stacked = np.ascontiguousarray(np.stack(views), dtype=np.uint8)
        if stacked.shape[1:] != (side, side, 3):
            raise ValueError(f"views must be {side} x {side} RGB")
        pool, caller = self._pool, self._caller
        child = _acquire(pool, caller)
        try:
            answer, payload = child.sandbox.call(
                {"op": "embed"}, stacked.tobytes(), max_reply_bytes=len(views) * self.dimension * 4
            )
        except SandboxFailed as exc:
            failure = _failed(pool.model, exc.reason, loading=False)
            _release(pool, caller, child, failed=True)
            with _lock:
                _break(pool, failure)
            raise failure from None
        except BaseException:
            _release(pool, caller, child, failed=True)
            raise
        expected = (len(views), self.dimension)
        if answer.get("ok") is not True or (answer.get("rows"), answer.get("dimension")) != (
            expected
        ):
            _release(pool, caller, child, failed=True)
            failure = _refusal(pool.model, answer, loading=False)
            if answer.get("failed") == "memory":
                with _lock:
                    _break(pool, failure)
            raise failure
        _release(pool, caller, child, failed=False)
        if len(payload) != expected[0] * expected[1] * 4:
            raise _failed(pool.model, "protocol", loading=False)
        rows = np.frombuffer(payload, dtype=np.float32).reshape(expected)
        if not np.isfinite(rows).all():
            raise _failed(pool.model, "not-a-number", loading=False)
        return rows


def backbone(
    *,
    organization_id: uuid.UUID,
    model_id: uuid.UUID,
    spec: OnnxModelSpec,
    digest: str,
    dimension: int,
    read_model: Callable[[], bytes],
    settings: VisionSettings,
    max_bytes: int,
) -> SandboxedBackbone:
    """The uploaded model `model_id` of the organization as a backbone (no child starts until
    it embeds). `digest` names its weights; `read_model` gives its bytes when a child starts."""
    model = _Model(spec=spec, settings=settings, max_bytes=max_bytes, named=True)
    # Another server setting (tests change them) is another pool.
    key = (organization_id, model_id, digest, settings.model_dump_json(), max_bytes)
    with _lock:
        pool = _pools.get(key)
        if pool is None or pool.forgotten:
            pool = _Pool(
                organization_id=organization_id,
                model=model,
                dimension=dimension,
                read_model=read_model,
            )
            _pools[key] = pool
    return SandboxedBackbone(pool, fingerprint_of(spec, digest[:16]))


def forget(organization_id: uuid.UUID, model_id: uuid.UUID) -> None:
    """Stop the children of a deleted model (busy ones when their request ends, counted until
    then); its backbones start no more."""
    with _lock:
        stopping = _forget([key for key in _pools if key[:2] == (organization_id, model_id)])
    for child in stopping:
        child.sandbox.close()


def stop_all() -> None:
    """Stop every idle child (at exit; busy ones die with their pipes)."""
    with _lock:
        stopping = _forget(list(_pools))
    for child in stopping:
        child.sandbox.close()


def _forget(keys: list[tuple[Any, ...]]) -> list[_Child]:
    """Take the pools out (their idle children, to stop unlocked); busy ones keep counting."""
    stopping: list[_Child] = []
    for key in keys:
        pool = _pools.pop(key)
        pool.forgotten = True
        stopping += pool.idle
        pool.idle = []
        if pool.live:
            _draining.add(pool)
    _lock.notify_all()
    return stopping


atexit.register(stop_all)
