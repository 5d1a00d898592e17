"""Backbones by name, each loaded once per process.

`efficientnet-lite0` (the default, with `handcrafted`), `efficientnet-lite1`, `efficientnet-lite2`,
or `onnx:<file>` for a user's own ONNX model
with its spec beside it (a bare file name is looked up in the model store).
"""

from __future__ import annotations

from pathlib import Path

import cv2

from kai.kit.model_cache import MODELS
from kai.vision.backbones import efficientnet
from kai.vision.backbones.base import Backbone, BackboneUnavailable, l2_normalized
from kai.vision.backbones.handcrafted import HandcraftedBackbone
from kai.vision.backbones.onnx import (
    OnnxBackbone,
    OnnxModelSpec,
    load_user_model,
    runtime_threads,
)

DEFAULT_BACKBONES = (efficientnet.NAME, "handcrafted")
# Every backbone a training may name without uploading one.
BUILT_IN_BACKBONES = (*efficientnet.BY_NAME, "handcrafted")
USER_PREFIX = "onnx:"

__all__ = [
    "BUILT_IN_BACKBONES",
    "DEFAULT_BACKBONES",
    "Backbone",
    "BackboneUnavailable",
    "OnnxBackbone",
    "OnnxModelSpec",
    "get_backbone",
    "l2_normalized",
]


def get_backbone(name: str, *, model_dir: Path, threads: int = 0) -> Backbone:
    """The named backbone, loaded on first use and kept in the process's model cache
    (`kai.kit.model_cache`) while it is used."""
    backbone: Backbone = MODELS.get_or_load(
        ("backbone", name, str(model_dir), threads), lambda: _load(name, model_dir, threads)
    )
    return backbone


def _load(name: str, model_dir: Path, threads: int) -> Backbone:
    if name in efficientnet.BY_NAME:
        return efficientnet.load(model_dir, efficientnet.BY_NAME[name], threads=threads)
    if name == "handcrafted":
        # OpenCV's own thread pool is process-wide: the descriptor's calls use this many.
        cv2.setNumThreads(runtime_threads(threads))
        return HandcraftedBackbone()
    if name.startswith(USER_PREFIX):
        path = Path(name.removeprefix(USER_PREFIX))
        if not path.is_absolute() and path.parent == Path():
            path = model_dir / path
        return load_user_model(path, threads=threads)
    raise BackboneUnavailable(
        f"No backbone named {name!r}: use {', '.join(BUILT_IN_BACKBONES)} or onnx:<file>"
    )


def warm_default_backbones(model_dir: Path, *, threads: int = 0) -> None:
    """Load the default backbones now (exporting EfficientNet-Lite0 if it never was), so that
    the first recognition need not; one that cannot load is logged, not fatal."""
    import structlog

    for name in DEFAULT_BACKBONES:
        try:
            get_backbone(name, model_dir=model_dir, threads=threads)
        except BackboneUnavailable as exc:
            structlog.get_logger(__name__).warning(
                "vision.backbone_unavailable", backbone=name, error=exc.detail or exc.title
            )
