"""Organizations' uploaded image models, run in sandbox children (kai.kit.sandbox), never in
the server: checked with `onnx` and loaded there (kai.vision.model_child), with limits on
memory, processor and wall-clock time.

A child serves one model of one organization and lives on between requests (starting one
costs about a second; a request then costs the pipe), up to `processes_per_model` children a
model and `max_processes` in all. A child that fails is discarded and its model is not started
again for `retry_after_seconds`. What onnxruntime says goes to the log with the request id;
callers read fixed words.
"""

from __future__ import annotations

import atexit
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from kai.config import VisionSettings
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


class ImageModelFailed(Unprocessable):
    type, title = "image-model-failed", "The image model cannot be used"


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


def check(data: bytes, spec: OnnxModelSpec, *, settings: VisionSettings, max_bytes: int) -> int:
    """Check, load and run the model once in a child of its own: its embedding's width, or
    ImageModelFailed saying why it cannot be used."""
    model = _Model(spec=spec, settings=settings, max_bytes=max_bytes)
    sandbox, dimension = _start(model, data)
    sandbox.close()
    return dimension


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
        if not sandbox.landlock:
            log.warning("vision.sandbox_without_landlock", model=model.spec.name)
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


_lock = threading.Condition()
# Never emptied but by stop_all: a pool is a few words once its children are stopped.
_pools: dict[tuple[Any, ...], _Pool] = {}


def _live_children() -> int:
    return sum(pool.live for pool in _pools.values())


def _acquire(pool: _Pool) -> _Child:
    sandbox_settings = pool.model.settings.sandbox
    deadline = time.monotonic() + sandbox_settings.wall_seconds
    stopping: list[_Child] = []
    try:
        with _lock:
            while True:
                now = time.monotonic()
                stopping += _reap(now)
                if now < pool.broken_until:
                    raise ImageModelFailed(pool.broken_because)
                while pool.idle:
                    child = pool.idle.pop()
                    if child.sandbox.alive:
                        pool.busy += 1
                        return child
                    stopping.append(child)  # died while idle (killed from outside): replaced
                room = pool.live < sandbox_settings.processes_per_model
                if room and _live_children() >= sandbox_settings.max_processes:
                    evicted = _least_recently_used()
                    if evicted is not None:
                        stopping.append(evicted)
                if room and _live_children() < sandbox_settings.max_processes:
                    pool.starting += 1
                    break
                if now >= deadline or not _lock.wait(deadline - now):
                    raise BackboneUnavailable(
                        "Every image-model process is busy; try again in a moment."
                    )
    finally:
        for child in stopping:
            child.sandbox.close()
    try:
        sandbox, dimension = _start(pool.model, pool.read_model())
    except BaseException as exc:
        with _lock:
            pool.starting -= 1
            if isinstance(exc, ImageModelFailed):
                _break(pool, exc)
            _lock.notify_all()
        raise
    with _lock:
        pool.starting -= 1
        pool.busy += 1
    if dimension != pool.dimension:  # not the model that was checked on upload
        _release(pool, _Child(sandbox), failed=True)
        failure = _failed(pool.model, "protocol", loading=True)
        with _lock:
            _break(pool, failure)
        raise failure
    _start_reaper()
    return _Child(sandbox)


def _release(pool: _Pool, child: _Child, *, failed: bool) -> None:
    with _lock:
        pool.busy -= 1
        keep = not failed and not pool.forgotten and child.sandbox.alive
        if keep:
            child.last_used = time.monotonic()
            pool.idle.append(child)
        _lock.notify_all()
    if not keep:
        child.sandbox.close()


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


def _least_recently_used() -> _Child | None:
    idle = [(child.last_used, pool, child) for pool in _pools.values() for child in pool.idle]
    if not idle:
        return None
    _, pool, child = min(idle, key=lambda entry: entry[0])
    pool.idle.remove(child)
    return child


class SandboxedBackbone:
    """An uploaded model as a backbone: embedding happens in its sandbox children."""

    standardize = False

    def __init__(self, pool: _Pool, fingerprint: str) -> None:
        self._pool = pool
        self._fingerprint = fingerprint

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
        pool = self._pool
        child = _acquire(pool)
        try:
            answer, payload = child.sandbox.call(
                {"op": "embed"}, stacked.tobytes(), max_reply_bytes=len(views) * self.dimension * 4
            )
        except SandboxFailed as exc:
            failure = _failed(pool.model, exc.reason, loading=False)
            _release(pool, child, failed=True)
            with _lock:
                _break(pool, failure)
            raise failure from None
        except BaseException:
            _release(pool, child, failed=True)
            raise
        expected = (len(views), self.dimension)
        if answer.get("ok") is not True or (answer.get("rows"), answer.get("dimension")) != (
            expected
        ):
            _release(pool, child, failed=True)
            failure = _refusal(pool.model, answer, loading=False)
            if answer.get("failed") == "memory":
                with _lock:
                    _break(pool, failure)
            raise failure
        _release(pool, child, failed=False)
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
            pool = _Pool(model=model, dimension=dimension, read_model=read_model)
            _pools[key] = pool
    return SandboxedBackbone(pool, fingerprint_of(spec, digest[:16]))


def forget(organization_id: uuid.UUID, model_id: uuid.UUID) -> None:
    """Stop the children of a deleted model (busy ones when their request ends)."""
    stopping: list[_Child] = []
    with _lock:
        for key, pool in list(_pools.items()):
            if key[:2] == (organization_id, model_id):
                pool.forgotten = True
                stopping += pool.idle
                pool.idle = []
                del _pools[key]
    for child in stopping:
        child.sandbox.close()


def stop_all() -> None:
    """Stop every idle child (at exit; busy ones die with their pipes)."""
    stopping: list[_Child] = []
    with _lock:
        for pool in _pools.values():
            pool.forgotten = True
            stopping += pool.idle
            pool.idle = []
        _pools.clear()
    for child in stopping:
        child.sandbox.close()


atexit.register(stop_all)
