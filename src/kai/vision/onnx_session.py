"""An ONNX image model in onnxruntime: how it is fed (its spec) and what one run returns.

Shared by the backbones that run a model in this process (the built-in export, an operator's
file) and the sandbox child that runs an organization's upload; it imports neither OpenCV nor
the backbones, so the child starts quickly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

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


class ModelMismatch(Exception):
    """The model loads but is not what its spec says: `what` is "input", "output" (no such
    name) or "output-rank" (neither a feature map nor vectors), `value` the name or rank."""

    def __init__(self, what: Literal["input", "output", "output-rank"], value: str) -> None:
        super().__init__(what, value)
        self.what: Literal["input", "output", "output-rank"] = what
        self.value = value


def runtime_threads(requested: int) -> int:
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


class OnnxSession:
    """A model loaded into onnxruntime (CPU, or a GPU provider where present).

    `model` is a file's path or the model's bytes. Raises onnxruntime's own (untyped) errors
    for a model it refuses, and ModelMismatch for one that is not as its spec says.
    """

    def __init__(
        self, model: str | bytes, spec: OnnxModelSpec, *, threads: int = 0, gpu: bool = True
    ) -> None:
        """`gpu`: use a GPU provider where one is present (a sandboxed child does not: it can
        open no device)."""
        self.spec = spec
        options = ort.SessionOptions()
        options.intra_op_num_threads = runtime_threads(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Only the ONNX format: onnxruntime's own format (detected from the bytes) would not
        # be the model that was checked.
        options.add_session_config_entry("session.load_model_format", "ONNX")
        providers = [
            provider
            for provider in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if provider in ort.get_available_providers()
            and (gpu or provider == "CPUExecutionProvider")
        ]
        self._session = ort.InferenceSession(model, options, providers=providers)
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        self._input = spec.input or inputs[0].name
        self._output = spec.output or outputs[0].name
        if self._input not in {item.name for item in inputs}:
            raise ModelMismatch("input", self._input)
        if self._output not in {item.name for item in outputs}:
            raise ModelMismatch("output", self._output)
        self._mean = np.array(spec.mean, dtype=np.float32) / np.float32(spec.scale)
        self._std = np.array(spec.std, dtype=np.float32) / np.float32(spec.scale)

    def rows(self, views: Sequence[np.ndarray]) -> np.ndarray:
        """One row (not normalised) per view, MAX_BATCH views to a run."""
        return np.concatenate(
            [
                self.run(views[start : start + MAX_BATCH])
                for start in range(0, len(views), MAX_BATCH)
            ]
        )

    def run(self, views: Sequence[np.ndarray]) -> np.ndarray:
        """The model's output for RGB uint8 views of `input_side` pixels: a row per view."""
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
            raise ModelMismatch("output-rank", str(output.ndim))
        return output
