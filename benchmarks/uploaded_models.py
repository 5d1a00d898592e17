"""An uploaded image model in its sandbox child against the same model in the server's process.

EfficientNet-Lite0 (the built-in export, 18 MB, 224 px) is loaded both ways: in-process as
the built-in backbone is, and as an organization's upload (kai.vision.backbones.sandboxed).
Reported: the upload check, the first embedding (which starts a child), and the median and
95th percentile of embedding one photo (two views: what a recognition asks) and of a batch
of 16 photos, each over `--rounds` calls after a warm-up. A model that only averages the
pixels shows what the sandbox itself adds (the pipe and the framing of 300 KB of views).

    PYTHONPATH=src python -m benchmarks.uploaded_models [--model-dir DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from kai.config import VisionSettings
from kai.vision.backbones import efficientnet, get_backbone, sandboxed
from kai.vision.backbones.base import Backbone
from kai.vision.backbones.onnx import OnnxBackbone
from kai.vision.onnx_session import OnnxModelSpec


def _timed(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    call()
    spent = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        spent.append((time.perf_counter() - began) * 1000)
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.95) - 1]


def _pooling_model(path: Path) -> OnnxModelSpec:
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"])],
        "pooling",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 224, 224])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["n", 3, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return OnnxModelSpec(name="custom:pooling", input_side=224)


def _uploaded(data: bytes, spec: OnnxModelSpec, settings: VisionSettings) -> Backbone:
    dimension = sandboxed.check(data, spec, settings=settings, max_bytes=len(data))
    return sandboxed.backbone(
        organization_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        spec=spec,
        digest="0" * 64,
        dimension=dimension,
        read_model=lambda: data,
        settings=settings,
        max_bytes=len(data),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("kai-data/models"))
    parser.add_argument("--rounds", type=int, default=50)
    arguments = parser.parse_args()
    in_process: Backbone = get_backbone(efficientnet.NAME, model_dir=arguments.model_dir, threads=1)
    data = efficientnet.exported_path(arguments.model_dir).read_bytes()
    spec = efficientnet.SPEC
    settings = VisionSettings(threads=1)

    began = time.perf_counter()
    dimension = sandboxed.check(data, spec, settings=settings, max_bytes=len(data))
    checked = time.perf_counter() - began
    uploaded = sandboxed.backbone(
        organization_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        spec=spec,
        digest="0" * 64,
        dimension=dimension,
        read_model=lambda: data,
        settings=settings,
        max_bytes=len(data),
    )
    rng = np.random.default_rng(0)
    photo = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
    began = time.perf_counter()
    uploaded.embed([photo])
    first = time.perf_counter() - began
    assert np.allclose(uploaded.embed([photo]), in_process.embed([photo]), atol=1e-5)

    print(f"upload check (child start, onnx check, load, trial run): {checked:.2f} s")
    print(f"first embedding through the sandbox (starts the child): {first:.2f} s")
    pooling_path = arguments.model_dir / "benchmark-pooling.onnx"
    pooling_spec = _pooling_model(pooling_path)
    pairs = {
        "efficientnet-lite0": (in_process, uploaded),
        "pooling only": (
            OnnxBackbone(pooling_path, pooling_spec, threads=1),
            _uploaded(pooling_path.read_bytes(), pooling_spec, settings),
        ),
    }
    for model, (local, sandbox) in pairs.items():
        for label, photos in (("1 photo, 2 views", [photo]), ("16 photos, 32 views", [photo] * 16)):
            for name, backbone in (("in process", local), ("sandboxed", sandbox)):
                median, p95 = _timed(lambda b=backbone, p=photos: b.embed(p), arguments.rounds)
                print(
                    f"{model:>18} {label:>20} {name:>10}: "
                    f"median {median:8.2f} ms, p95 {p95:8.2f} ms"
                )
    pooling_path.unlink()
    sandboxed.stop_all()


if __name__ == "__main__":
    main()
