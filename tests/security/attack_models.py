"""Hostile ONNX image models, built with onnx's helper API.

Each is the tiny backbone of tests/vision/test_backbones.py (global average pooling, then a
3 x 4 matrix) for 32-pixel images, plus the attack: it loads, and on a blank image embeds into
4 values, unless the attack stops it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import FunctionProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

# A 3 x 4 float32 tensor is 48 bytes: the external-data attacks read this many of a file.
WEIGHT_BYTES = 48


def model(
    nodes: Sequence[NodeProto],
    *,
    initializer: Sequence[TensorProto] = (),
    opsets: Sequence[tuple[str, int]] = (("", 17),),
    functions: Sequence[FunctionProto] = (),
) -> bytes:
    graph = helper.make_graph(
        [*_pooled(), *nodes],
        "attack",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 4])],
        initializer=list(initializer),
    )
    built = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets],
        functions=list(functions),
    )
    built.ir_version = 8
    return built.SerializeToString()


def _pooled() -> list[NodeProto]:
    return [
        helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
    ]


def _weights(name: str = "weights") -> TensorProto:
    return numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), name)


def _constant(name: str, value: ArrayLike) -> NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name + "_value")
    )


def _embedding(weights: str = "weights") -> NodeProto:
    return helper.make_node("MatMul", ["flat", weights], ["embedding"])


def tiny() -> bytes:
    return model([_embedding()], initializer=[_weights()])


def external_tensor(
    location: str, name: str = "weights", *, dims: Sequence[int] = (3, 4)
) -> TensorProto:
    """A float tensor whose bytes onnxruntime would read from `location` (offset 0)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(WEIGHT_BYTES))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _branch(name: str, tensor: TensorProto) -> GraphProto:
    """A subgraph whose output is a constant holding `tensor`."""
    return helper.make_graph(
        [helper.make_node("Constant", [], [name + "_out"], value=tensor)],
        name,
        [],
        [helper.make_tensor_value_info(name + "_out", TensorProto.FLOAT, [3, 4])],
    )


def external_data(location: str, where: str) -> bytes:
    """The tiny model with its weights read from `location`, stored `where` in the model."""
    leak = external_tensor(location)
    if where == "initializer":
        return model([_embedding()], initializer=[leak])
    if where == "sparse-initializer":
        values = external_tensor(location, "weights", dims=(12,))
        indices = numpy_helper.from_array(np.arange(12, dtype=np.int64), "weights_indices")
        sparse = helper.make_sparse_tensor(values, indices, [3, 4])
        built = onnx.load_from_string(model([_embedding()]))
        built.graph.sparse_initializer.append(sparse)
        return built.SerializeToString()
    if where == "constant":
        return model([helper.make_node("Constant", [], ["weights"], value=leak), _embedding()])
    if where == "sparse-constant":
        values = external_tensor(location, "values", dims=(12,))
        indices = numpy_helper.from_array(np.arange(12, dtype=np.int64), "indices")
        sparse = helper.make_sparse_tensor(values, indices, [3, 4])
        return model(
            [helper.make_node("Constant", [], ["weights"], sparse_value=sparse), _embedding()]
        )
    if where == "tensors-attribute":
        node = helper.make_node("Identity", ["weights_in"], ["weights"])
        node.attribute.append(helper.make_attribute("spare", [leak]))
        return model([node, _embedding()], initializer=[_weights("weights_in")])
    if where == "if-branch":
        choose = helper.make_node(
            "If",
            ["keep"],
            ["weights"],
            then_branch=_branch("then", leak),
            else_branch=_branch("else", _weights("other")),
        )
        return model([_constant("keep", np.array(True)), choose, _embedding()])
    if where == "nested-if":
        inner = helper.make_node(
            "If",
            ["keep"],
            ["inner_out"],
            then_branch=_branch("inner_then", leak),
            else_branch=_branch("inner_else", _weights("inner_other")),
        )
        outer_then = helper.make_graph(
            [inner],
            "outer_then",
            [],
            [helper.make_tensor_value_info("inner_out", TensorProto.FLOAT, [3, 4])],
        )
        choose = helper.make_node(
            "If",
            ["keep"],
            ["weights"],
            then_branch=outer_then,
            else_branch=_branch("outer_else", _weights("outer_other")),
        )
        return model([_constant("keep", np.array(True)), choose, _embedding()])
    if where == "function":
        function = helper.make_function(
            "kai.attack",
            "Leak",
            [],
            ["out"],
            [helper.make_node("Constant", [], ["out"], value=leak)],
            [helper.make_opsetid("", 17)],
        )
        return model(
            [helper.make_node("Leak", [], ["weights"], domain="kai.attack"), _embedding()],
            opsets=[("", 17), ("kai.attack", 1)],
            functions=[function],
        )
    raise ValueError(where)


EXTERNAL_DATA_PLACES = (
    "initializer",
    "sparse-initializer",
    "constant",
    "sparse-constant",
    "tensors-attribute",
    "if-branch",
    "nested-if",
    "function",
)


def reshape_to(target: ArrayLike) -> bytes:
    """The embedding reshaped to `target`: onnxruntime's refusal prints the target."""
    return model(
        [
            helper.make_node("MatMul", ["flat", "weights"], ["rows"]),
            _constant("target", np.asarray(target, dtype=np.int64)),
            helper.make_node("Reshape", ["rows", "target"], ["embedding"]),
        ],
        initializer=[_weights()],
    )


def reshape_from_file(location: str) -> bytes:
    """The Reshape leak: the target shape read from a file (its bytes as int64s)."""
    target = TensorProto(name="target", data_type=TensorProto.INT64, dims=[6])
    target.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(WEIGHT_BYTES))):
        entry = target.external_data.add()
        entry.key, entry.value = key, value
    return model(
        [
            helper.make_node("MatMul", ["flat", "weights"], ["rows"]),
            helper.make_node("Reshape", ["rows", "target"], ["embedding"]),
        ],
        initializer=[_weights(), target],
    )


def _plus_total(values: str) -> list[NodeProto]:
    """embedding = flat x weights + the sum of `values` (so that they are computed)."""
    return [
        helper.make_node("MatMul", ["flat", "weights"], ["base"]),
        helper.make_node("ReduceSum", [values], ["total"], keepdims=0),
        helper.make_node("Add", ["base", "total"], ["embedding"]),
    ]


def _ones(shape: str, name: str) -> NodeProto:
    return helper.make_node(
        "ConstantOfShape",
        [shape],
        [name],
        value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
    )


# 316228 squared is a little over 10^11: 400 GB of float32.
SIDE_OF_10_TO_THE_11 = 316_228


def huge_constant_of_shape() -> bytes:
    """Asks for 10^11 values whatever the input."""
    return model(
        [
            _constant("shape", np.array([SIDE_OF_10_TO_THE_11] * 2, dtype=np.int64)),
            _ones("shape", "huge"),
            *_plus_total("huge"),
        ],
        initializer=[_weights()],
    )


def huge_on(trigger: str, threshold: float) -> bytes:
    """Cheap on the blank images of the upload check; asks for 10^11 values when the
    photo's `trigger` ("ReduceMin" or "ReduceMax" of its pixels) is above `threshold`."""
    return model(
        [
            helper.make_node(trigger, ["pixels"], ["level"], keepdims=0),
            _constant("threshold", np.array(threshold, dtype=np.float32)),
            helper.make_node("Greater", ["level", "threshold"], ["above"]),
            helper.make_node("Cast", ["above"], ["switch"], to=TensorProto.INT64),
            _constant("huge_shape", np.array([SIDE_OF_10_TO_THE_11] * 2, dtype=np.int64)),
            helper.make_node("Mul", ["switch", "huge_shape"], ["shape"]),
            _ones("shape", "huge"),
            *_plus_total("huge"),
        ],
        initializer=[_weights()],
    )


def processor_hog(side: int = 2048, rounds: int = 64) -> bytes:
    """Standard operators only, little memory, and half a trillion multiplications: matrix
    products of `side` x `side` (computed from the photo, so not folded away at load). Sixteen
    rounds took 2.4 s of processor time on this machine on a fast day: too close to the limit
    the sandbox enforces to be sure of crossing it."""
    nodes = [
        _constant("shape", np.array([side, side], dtype=np.int64)),
        _ones("shape", "ones"),
        helper.make_node("ReduceMean", ["pixels"], ["level"], keepdims=0),
        helper.make_node("Add", ["ones", "level"], ["product0"]),
    ]
    nodes += [
        helper.make_node("MatMul", [f"product{index}", "product0"], [f"product{index + 1}"])
        for index in range(rounds)
    ]
    return model([*nodes, *_plus_total(f"product{rounds}")], initializer=[_weights()])


def endless_loop() -> bytes:
    """A Loop of 2^62 trips carrying the embedding through unchanged."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["going"], ["still_going"]),
            helper.make_node("Identity", ["carried"], ["carried_on"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("trip", TensorProto.INT64, []),
            helper.make_tensor_value_info("going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried", TensorProto.FLOAT, ["n", 4]),
        ],
        [
            helper.make_tensor_value_info("still_going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried_on", TensorProto.FLOAT, ["n", 4]),
        ],
    )
    return model(
        [
            helper.make_node("MatMul", ["flat", "weights"], ["base"]),
            _constant("trips", np.array(2**62, dtype=np.int64)),
            _constant("forever", np.array(True)),
            helper.make_node("Loop", ["trips", "forever", "base"], ["embedding"], body=body),
        ],
        initializer=[_weights()],
    )


def custom_operator(domain: str = "com.attacker", operator: str = "ReadFile") -> bytes:
    return model(
        [
            helper.make_node(operator, ["flat"], ["scratch"], domain=domain, path="secret_key"),
            helper.make_node("Identity", ["scratch"], ["ignored"]),
            _embedding(),
        ],
        initializer=[_weights()],
        opsets=[("", 17), (domain, 1)],
    )
