"""The rules an uploaded ONNX model must keep before anything runs it: each refused model is
refused by the rule it breaks, and a real backbone export keeps them all."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from kai.vision.backbones import efficientnet, get_backbone
from kai.vision.onnx_check import MAX_NODES, REFUSALS, UnsafeModel, check_model
from tests.security import attack_models

LIMIT = 512 * 1024**2


def _refused(data: bytes) -> tuple[str, str | None]:
    with pytest.raises(UnsafeModel) as refused:
        check_model(data, max_bytes=LIMIT)
    assert refused.value.rule in REFUSALS
    return refused.value.rule, refused.value.subject


def _edited(change: str) -> bytes:
    built = onnx.load_from_string(attack_models.tiny())
    if change == "opset-too-new":
        built.opset_import[0].version = 99
    elif change == "opset-too-old":
        built.opset_import[0].version = 5
    elif change == "ir-version":
        built.ir_version = 99
    elif change == "strings":
        built.graph.initializer.append(helper.make_tensor("names", TensorProto.STRING, [1], [b"x"]))
    elif change == "huge-dims":
        built.graph.initializer.append(
            TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[2**20, 2**20])
        )
    elif change == "functions":
        built.functions.append(
            helper.make_function(
                "kai.mine",
                "Twice",
                ["x"],
                ["y"],
                [helper.make_node("Add", ["x", "x"], ["y"])],
                [helper.make_opsetid("", 17)],
            )
        )
    elif change == "training-info":
        built.training_info.add()
    elif change == "many-nodes":
        for index in range(MAX_NODES):
            built.graph.node.append(helper.make_node("Identity", ["flat"], [f"copy{index}"]))
    elif change == "random":
        built.graph.node.append(helper.make_node("RandomNormalLike", ["flat"], ["noise"]))
    elif change == "microsoft":
        built.graph.node.append(
            helper.make_node("FusedMatMul", ["flat", "weights"], ["fused"], domain="com.microsoft")
        )
        built.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    elif change == "image-decoder":
        built.graph.node.append(helper.make_node("ImageDecoder", ["flat"], ["decoded"]))
    return built.SerializeToString()


def test_the_tiny_backbone_passes_and_is_handed_on_as_parsed() -> None:
    data = attack_models.tiny()

    checked = check_model(data, max_bytes=LIMIT)

    assert onnx.load_from_string(checked) == onnx.load_from_string(data)


def _with_unknown_field(message: bytes, text: bytes) -> bytes:
    """`message` with a length-delimited field of a number no ONNX message uses (9999)."""
    tag = (9999 << 3) | 2
    return message + _varint(tag) + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_fields_the_checker_does_not_know_do_not_reach_the_runtime() -> None:
    built = onnx.load_from_string(attack_models.tiny())
    # One in a node, deep in the graph, and one on the model itself.
    node = built.graph.node[0]
    node.ParseFromString(_with_unknown_field(node.SerializeToString(), b"unseen-in-a-node"))
    data = _with_unknown_field(built.SerializeToString(), b"unseen-on-the-model")
    assert b"unseen-in-a-node" in data
    assert b"unseen-on-the-model" in data

    checked = check_model(data, max_bytes=LIMIT)

    assert b"unseen" not in checked
    assert checked == check_model(attack_models.tiny(), max_bytes=LIMIT)


def test_a_real_backbone_export_keeps_every_rule(model_dir: Path) -> None:
    get_backbone(efficientnet.NAME, model_dir=model_dir)

    check_model(efficientnet.exported_path(model_dir).read_bytes(), max_bytes=LIMIT)


@pytest.mark.parametrize("where", attack_models.EXTERNAL_DATA_PLACES)
def test_a_tensor_kept_in_a_file_is_refused_wherever_it_is(where: str) -> None:
    assert _refused(attack_models.external_data("kai-data/secret_key", where)) == (
        "external-data",
        None,
    )


@pytest.mark.parametrize(
    ("data", "rule", "subject"),
    [
        (b"not a model at all", "not-onnx", None),
        (b"\x08\x07" + b"\x12" * 40, "not-onnx", None),
        (attack_models.endless_loop(), "operator", "Loop"),
        (attack_models.custom_operator(), "domain", "com.attacker"),
        (_edited("microsoft"), "domain", "com.microsoft"),
        (_edited("random"), "operator", "RandomNormalLike"),
        (_edited("image-decoder"), "operator", "ImageDecoder"),
        (_edited("opset-too-new"), "opset", None),
        (_edited("opset-too-old"), "opset", None),
        (_edited("ir-version"), "ir-version", None),
        (_edited("strings"), "tensor-type", None),
        (_edited("huge-dims"), "tensor-size", None),
        (_edited("functions"), "functions", None),
        (_edited("training-info"), "training-info", None),
        (_edited("many-nodes"), "nodes", None),
    ],
)
def test_what_no_image_backbone_needs_is_refused_by_its_rule(
    data: bytes, rule: str, subject: str | None
) -> None:
    assert _refused(data) == (rule, subject)


def test_a_model_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    data = attack_models.tiny()

    with pytest.raises(UnsafeModel) as refused:
        check_model(data, max_bytes=len(data) - 1)

    assert refused.value.rule == "size"


def test_weights_are_counted_by_their_declared_shape_not_the_bytes_sent() -> None:
    built = onnx.load_from_string(attack_models.tiny())
    # 2^26 values declared (256 MB of float32), none sent: the file stays small.
    built.graph.initializer.append(
        TensorProto(name="declared", data_type=TensorProto.FLOAT, dims=[2**13, 2**13])
    )
    data = built.SerializeToString()

    with pytest.raises(UnsafeModel) as refused:
        check_model(data, max_bytes=10 * 1024**2)

    assert len(data) < 10 * 1024**2
    assert refused.value.rule == "weights"
