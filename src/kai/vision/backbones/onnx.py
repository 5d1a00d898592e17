"""Any ONNX image model as a backbone: its declared input size, normalisation and output."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from kai.vision.backbones.base import BackboneUnavailable, l2_normalized
from kai.vision.preprocessing import VIEW_FRACTIONS

# Photos embedded in one call to the runtime: large enough to keep the cores busy, small
# enough that a batch of 2-view photos at 224 px stays near 10 MB of input.
MAX_BATCH = 32


@dataclass(frozen=True)
class OnnxModelSpec:
    """How to feed an ONNX image model and read an embedding from it.

    Pixels are scaled to 0..1 when `scale` is 1/255 (or left at 0..255 with 1.0), then each
    channel has `mean` subtracted and is divided by `std`. The output named `output` is either
    a feature map (N x C x H x W), averaged over its positions, or already a vector (N x D).
    """

    name: str
    input_side: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    scale: float = 1 / 255
    layout: Literal["nchw", "nhwc"] = "nchw"
    input: str | None = None
    output: str | None = None
    # Extra words that make two exports of one model distinguishable (e.g. the weights' hash).
    provenance: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 16 <= self.input_side <= 2048:
            raise ValueError("input_side must be between 16 and 2048 pixels")
        if len(self.mean) != 3 or len(self.std) != 3 or any(value <= 0 for value in self.std):
            raise ValueError("mean and std need three values each, std positive")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OnnxModelSpec:
        values = dict(data)
        values["mean"] = tuple(float(value) for value in values.get("mean", cls.mean))
        values["std"] = tuple(float(value) for value in values.get("std", cls.std))
        return cls(**values)


def spec_path(model_path: Path) -> Path:
    """Where a model's spec lives: beside it, as `<file>.json`."""
    return model_path.with_name(model_path.name + ".json")


def runtime_threads(requested: int) -> int:
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


class OnnxBackbone:
    """An ONNX model served with onnxruntime on the CPU (or a GPU provider where present)."""

    standardize = False

    def __init__(
        self,
        model_path: Path,
        spec: OnnxModelSpec,
        *,
        threads: int = 0,
        digest: str | None = None,
        from_bytes: bool = False,
    ) -> None:
        """`digest` names the weights (the model file's own hash when not given): an export
        checked against its source may be named by the source's weights. `from_bytes`: load
        the file's content, not the path, so that the model cannot name files beside it
        (external data): for checking an upload."""
        self.spec = spec
        self.path = model_path
        options = ort.SessionOptions()
        options.intra_op_num_threads = runtime_threads(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [
            provider
            for provider in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if provider in ort.get_available_providers()
        ]
        try:
            source = model_path.read_bytes() if from_bytes else str(model_path)
            self._session = ort.InferenceSession(source, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad model
            raise BackboneUnavailable(
                f"{model_path.name} is not a usable ONNX model: {exc}"
            ) from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        self._input = spec.input or inputs[0].name
        self._output = spec.output or outputs[0].name
        if self._input not in {item.name for item in inputs}:
            raise BackboneUnavailable(f"{model_path.name} has no input named {self._input!r}")
        if self._output not in {item.name for item in outputs}:
            raise BackboneUnavailable(f"{model_path.name} has no output named {self._output!r}")
        self._mean = np.array(spec.mean, dtype=np.float32) / np.float32(spec.scale)
        self._std = np.array(spec.std, dtype=np.float32) / np.float32(spec.scale)
        digest = digest or hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
        # The views a photo is cut into are part of what an embedding means.
        described = json.dumps({**spec.to_json(), "views": VIEW_FRACTIONS}, sort_keys=True)
        self._fingerprint = (
            f"{spec.name}:{digest}:{hashlib.sha256(described.encode()).hexdigest()[:8]}"
        )
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
        rows = np.concatenate(
            [
                self._run(views[start : start + MAX_BATCH])
                for start in range(0, len(views), MAX_BATCH)
            ]
        )
        rows = l2_normalized(rows)
        # Each photo: the mean of its views' unit vectors, normalised again.
        embedded = []
        start = 0
        for photo in photos:
            embedded.append(rows[start : start + len(photo)].mean(axis=0))
            start += len(photo)
        return l2_normalized(np.stack(embedded))

    def _run(self, views: Sequence[np.ndarray]) -> np.ndarray:
        batch = (np.stack(views).astype(np.float32) - self._mean) / self._std
        if self.spec.layout == "nchw":
            batch = batch.transpose(0, 3, 1, 2)
        (found,) = self._session.run([self._output], {self._input: np.ascontiguousarray(batch)})
        output: np.ndarray = np.asarray(found, dtype=np.float32)
        if output.ndim == 4:
            # A feature map: the mean over positions (measured against generalised-mean and
            # mean+max pooling on the development sets: equal or better; see benchmarks).
            axes = (2, 3) if self.spec.layout == "nchw" else (1, 2)
            output = output.mean(axis=axes)
        if output.ndim != 2:
            raise BackboneUnavailable(
                f"{self.spec.name}: output {self._output!r} has {output.ndim} dimensions; "
                "expected a feature map (N x C x H x W) or vectors (N x D)"
            )
        return output


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
