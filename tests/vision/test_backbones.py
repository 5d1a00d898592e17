from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kai.vision.backbones import BackboneUnavailable, efficientnet, get_backbone, handcrafted
from kai.vision.backbones.handcrafted import HandcraftedBackbone
from kai.vision.preprocessing import prepare_image
from tests.vision.textures import checks, grain, jpeg, stripes


def _photo(data: bytes, side: int) -> list[np.ndarray]:
    return prepare_image(data, side=side).views


def _three_materials(side: int) -> dict[str, list[list[np.ndarray]]]:
    """Two photos each of three textures, taken with different offsets."""
    made = {
        "stripes": [
            stripes(300, period=9, angle=0.3, colour=(190, 150, 80), seed=s) for s in (1, 2)
        ],
        "checks": [checks(300, cell=18, colour=(50, 80, 180), seed=s) for s in (1, 2)],
        "grain": [grain(300, blur=6, colour=(140, 140, 135), seed=s) for s in (1, 2)],
    }
    return {name: [_photo(jpeg(p), side) for p in photos] for name, photos in made.items()}


def _assert_photos_of_one_material_are_nearest(backbone: object) -> None:
    materials = _three_materials(backbone.input_side)  # type: ignore[attr-defined]
    names = list(materials)
    first = backbone.embed([materials[name][0] for name in names])  # type: ignore[attr-defined]
    second = backbone.embed([materials[name][1] for name in names])  # type: ignore[attr-defined]
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    similarity = second @ first.T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2]


def test_the_default_backbone_is_exported_once_and_embeds_photos(model_dir: Path) -> None:
    backbone = get_backbone(efficientnet.NAME, model_dir=model_dir)

    exported = efficientnet.exported_path(model_dir)
    assert exported.is_file()
    assert backbone.dimension == 1280
    assert backbone.input_side == 224
    assert exported.name.split("-")[-1].removesuffix(".onnx") in backbone.fingerprint
    # Loaded once per process.
    assert get_backbone(efficientnet.NAME, model_dir=model_dir) is backbone
    _assert_photos_of_one_material_are_nearest(backbone)


@pytest.mark.parametrize(
    ("name", "side"), [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)]
)
def test_the_larger_networks_are_exported_from_their_packages_and_embed(
    model_dir: Path, name: str, side: int
) -> None:
    backbone = get_backbone(name, model_dir=model_dir)

    variant = efficientnet.BY_NAME[name]
    assert efficientnet.exported_path(model_dir, variant).is_file()
    assert (backbone.input_side, backbone.dimension) == (side, 1280)
    assert backbone.fingerprint.startswith(f"{name}:")
    assert backbone.fingerprint != get_backbone(efficientnet.NAME, model_dir=model_dir).fingerprint
    _assert_photos_of_one_material_are_nearest(backbone)


def test_the_handcrafted_descriptor_tells_textures_apart() -> None:
    backbone = HandcraftedBackbone()

    assert backbone.standardize
    assert backbone.fingerprint == HandcraftedBackbone().fingerprint
    _assert_photos_of_one_material_are_nearest(backbone)


def test_the_handcrafted_descriptor_is_steady_under_a_change_of_brightness() -> None:
    backbone = HandcraftedBackbone()
    texture = grain(256, blur=6, colour=(150, 120, 90), seed=5)
    brighter = np.clip(texture.astype(int) + 25, 0, 255).astype(np.uint8)
    other = checks(256, cell=12, colour=(150, 120, 90), seed=5)

    rows = backbone.embed([[texture], [brighter], [other]])

    assert rows[0] @ rows[1] > rows[0] @ rows[2]


def _tiny_model(path: Path) -> None:
    """A user's model: global average pooling of the pixels, then a 3 x 4 linear layer."""
    weights = helper.make_tensor(
        "weights", TensorProto.FLOAT, [3, 4], np.arange(12, dtype=np.float32).tolist()
    )
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 4])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_a_users_onnx_model_is_used_with_its_declared_spec(tmp_path: Path) -> None:
    _tiny_model(tmp_path / "tiny.onnx")
    spec = {"name": "tiny", "input_side": 32, "mean": [0, 0, 0], "std": [1, 1, 1], "scale": 1.0}
    (tmp_path / "tiny.onnx.json").write_text(json.dumps(spec))

    backbone = get_backbone("onnx:tiny.onnx", model_dir=tmp_path)
    red = np.zeros((32, 32, 3), dtype=np.uint8)
    red[..., 0] = 255

    (row,) = backbone.embed([[red]])

    assert backbone.dimension == 4
    # Pooled pixels (255, 0, 0) times rows 0..3 of the weights, normalised.
    expected = np.array([0.0, 1.0, 2.0, 3.0]) / np.linalg.norm([0.0, 1.0, 2.0, 3.0])
    assert np.allclose(row, expected, atol=1e-6)


def test_a_users_model_without_a_spec_or_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    _tiny_model(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "junk.onnx.json").write_text(json.dumps({"name": "junk", "input_side": 32}))

    with pytest.raises(BackboneUnavailable, match="needs a spec"):
        get_backbone("onnx:bare.onnx", model_dir=tmp_path)
    with pytest.raises(BackboneUnavailable, match="not a usable ONNX model"):
        get_backbone("onnx:junk.onnx", model_dir=tmp_path)
    with pytest.raises(BackboneUnavailable, match="No backbone named"):
        get_backbone("resnet", model_dir=tmp_path)


def test_gabor_energies_in_the_frequency_domain_are_those_of_spatial_filtering() -> None:
    level = cv2.GaussianBlur(grain(128, blur=3, colour=(90, 90, 90), seed=8)[..., 0], (5, 5), 1)
    level = level.astype(np.float32)
    image = (level - level.mean()) / (level.std() + 1.0)
    spatial = []
    for real, imaginary in handcrafted._GABOR:
        magnitude = cv2.magnitude(
            cv2.filter2D(image, cv2.CV_32F, real), cv2.filter2D(image, cv2.CV_32F, imaginary)
        )
        spatial += [magnitude.mean(), magnitude.std()]

    assert np.allclose(handcrafted.gabor_energies(level), spatial, atol=1e-5)
