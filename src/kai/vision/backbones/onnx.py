"""Any ONNX image model as a backbone, run in this process: the built-in export and files an
operator names (`onnx:<file>`). An organization's upload runs in a sandbox instead
(`kai.vision.backbones.sandboxed`)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kai.vision.backbones.base import BackboneUnavailable, l2_normalized
from kai.vision.onnx_session import (
    MAX_BATCH,
    ModelMismatch,
    OnnxModelSpec,
    OnnxSession,
    runtime_threads,
)
from kai.vision.preprocessing import VIEW_FRACTIONS

__all__ = [
    "MAX_BATCH",
    "OnnxBackbone",
    "OnnxModelSpec",
    "fingerprint_of",
    "load_user_model",
    "photo_embeddings",
    "runtime_threads",
    "spec_path",
]


def spec_path(model_path: Path) -> Path:
    """Where a model's spec lives: beside it, as `<file>.json`."""
    return model_path.with_name(model_path.name + ".json")


def fingerprint_of(spec: OnnxModelSpec, digest: str) -> str:
    """The model's weights (`digest`) and how photos are fed to it, in a few words."""
    # The views a photo is cut into are part of what an embedding means.
    described = json.dumps({**spec.to_json(), "views": VIEW_FRACTIONS}, sort_keys=True)
    return f"{spec.name}:{digest}:{hashlib.sha256(described.encode()).hexdigest()[:8]}"


def photo_embeddings(rows: np.ndarray, views_per_photo: Sequence[int]) -> np.ndarray:
    """Each photo: the mean of its views' unit vectors, normalised again."""
    rows = l2_normalized(rows)
    embedded = []
    start = 0
    for count in views_per_photo:
        embedded.append(rows[start : start + count].mean(axis=0))
        start += count
    return l2_normalized(np.stack(embedded))


def mismatch_message(name: str, mismatch: ModelMismatch) -> str:
    if mismatch.what == "output-rank":
        return (
            f"{name}: the output has {mismatch.value} dimensions; expected a feature map "
            "(N x C x H x W) or vectors (N x D)"
        )
    return f"{name} has no {mismatch.what} named {mismatch.value!r}"


class OnnxBackbone:
    """An ONNX model served with onnxruntime in this process."""

    standardize = False

    def __init__(
        self,
        model_path: Path,
        spec: OnnxModelSpec,
        *,
        threads: int = 0,
        digest: str | None = None,
    ) -> None:
        """`digest` names the weights (the model file's own hash when not given): an export
        checked against its source may be named by the source's weights."""
        self.spec = spec
        try:
            self._session = OnnxSession(str(model_path), spec, threads=threads)
        except ModelMismatch as exc:
            raise BackboneUnavailable(mismatch_message(model_path.name, exc)) from exc
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad model
            raise BackboneUnavailable(
                f"{model_path.name} is not a usable ONNX model: {exc}"
            ) from exc
        digest = digest or hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
        self._fingerprint = fingerprint_of(spec, digest)
        self._dimension: int | None = None
        # An InferenceSession may be run from several threads; the lock only guards the
        # one-time discovery of the output's width.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_side(self) -> int:
        return self.spec.input_side

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            side = self.spec.input_side
            blank = np.zeros((side, side, 3), dtype=np.uint8)
            with self._lock:
                self._dimension = int(self._run([blank]).shape[1])
        return self._dimension

    def embed(self, photos: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        views = [view for photo in photos for view in photo]
        if not views:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return photo_embeddings(self._run(views), [len(photo) for photo in photos])

    def _run(self, views: Sequence[np.ndarray]) -> np.ndarray:
        try:
            return self._session.rows(views)
        except ModelMismatch as exc:
            raise BackboneUnavailable(mismatch_message(self.spec.name, exc)) from exc


def load_user_model(model_path: Path, *, threads: int = 0) -> OnnxBackbone:
    """A user-supplied model and the spec saved beside it (`model.onnx.json`)."""
    described = spec_path(model_path)
    if not model_path.is_file():
        raise BackboneUnavailable(f"No model file at {model_path}")
    if not described.is_file():
        raise BackboneUnavailable(
            f"{model_path.name} needs a spec beside it ({described.name}) declaring its input "
            "size, normalisation and output"
        )
    try:
        spec = OnnxModelSpec.from_json(json.loads(described.read_text()))
    except (ValueError, TypeError) as exc:
        raise BackboneUnavailable(f"{described.name} is not a valid model spec: {exc}") from exc
    return OnnxBackbone(model_path, spec, threads=threads)
