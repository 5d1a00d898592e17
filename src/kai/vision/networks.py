"""The EfficientNet-Lite networks in PyTorch, and their export to ONNX checked against PyTorch.

Imported only by the child processes that export (`kai.vision.export`) and fine-tune
(`kai.vision.fine_tune`): torch never enters the API or the workers themselves.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kai.vision.backbones.efficientnet import VARIANTS, Variant

# An export must reproduce PyTorch's features to this absolute difference (values are ReLU6
# activations, 0 to 6) on random input, or it is not kept.
TOLERANCE = 1e-3


def pretrained(variant: Variant) -> Any:
    """The network with its ImageNet weights, from the variant's weights package."""
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(variant.weights_package)
    weights = getattr(package, variant.weights_class).get_model_file_path()
    return EfficientNet.from_pretrained(variant.name, weights_path=weights)


def variant_named(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise SystemExit(f"no network named {name!r}: one of {', '.join(v.name for v in VARIANTS)}")


class Features(torch.nn.Module):
    """What KAI serves of a network: its last convolution's feature map, which the backbone
    averages into an embedding."""

    def __init__(self, network: Any) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.network.extract_features(images)
        return features


def export_checked(model: torch.nn.Module, *, side: int, target: Path) -> float:
    """Write `model` (images in, feature map out) to `target` as ONNX, run the file with
    onnxruntime on random images and keep it only if it answers as PyTorch does. Returns the
    largest difference found."""
    import onnxruntime as ort

    model = model.eval()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 3, side, side, generator=generator)
    # Several processes may export at once: each writes its own file, and the last rename wins.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (sample,),
            str(partial),
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "features": {0: "batch", 2: "rows", 3: "columns"},
            },
            opset_version=17,
            dynamo=False,
        )
        expected = model(sample).numpy()
    session = ort.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
    (found,) = session.run(["features"], {"images": sample.numpy()})
    difference = float(np.abs(found - expected).max())
    if difference > TOLERANCE:
        partial.unlink()
        raise SystemExit(f"the ONNX export differs from PyTorch by {difference}; not kept")
    partial.replace(target)
    return difference
