"""What an uploaded ONNX image model may contain, checked with `onnx` before anything runs it.

Run inside the model's sandbox (kai.kit.sandbox), never in the server: parsing the upload is
the first thing done with it. The model onnxruntime then loads is the one re-serialized from
what was checked here, so no quirk of another parser can smuggle in what this one did not see.

Refused: any tensor kept outside the file (external data: onnxruntime would read the named
file, resolved against the working directory, as weights), in initializers, sparse
initializers, node attributes, subgraphs or functions; operators outside the standard
`ai.onnx` domain or outside the operators an image backbone is made of; functions and
training information; and sizes no backbone has. Fields this `onnx` does not know, anywhere in
the model, are dropped before it is re-serialized.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onnx import AttributeProto, GraphProto, ModelProto, SparseTensorProto, TensorProto

# What convolutional and transformer backbones (ResNet, EfficientNet, MobileNet, ConvNeXt,
# RegNet, ViT, DeiT, Swin, DINOv2, CLIP's image tower) are made of, as PyTorch, TensorFlow and
# Keras exporters write them, quantized versions included. Left out on purpose:
# - control flow (If, Loop, Scan): a run's length and path are chosen by data at run time
#   (a Loop's trip count is a number in the model); exporters unroll a backbone's loops;
# - sequences, optionals and maps, strings, and image decoding (parsers of their own);
# - random generators: an embedding must be the same each time;
# - operators whose output size is data-dependent (NonZero, Unique, Compress,
#   NonMaxSuppression, TopK) and index-driven scatters and gathers other than Gather
#   (ScatterND, ScatterElements, GatherND, GatherElements): no backbone needs them and they
#   are where runtimes' out-of-bounds bugs have been;
# - every operator of another domain (onnxruntime's com.microsoft fusions, ai.onnx.ml,
#   anything custom): export the model with standard operators.
ALLOWED_OPERATORS = frozenset(
    {
        # Convolution and pooling.
        "Conv",
        "ConvTranspose",
        "ConvInteger",
        "QLinearConv",
        "MaxPool",
        "AveragePool",
        "LpPool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "GlobalLpPool",
        # Normalisation.
        "BatchNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "LpNormalization",
        "LRN",
        "MeanVarianceNormalization",
        # Activations.
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Elu",
        "Selu",
        "Celu",
        "Gelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Mish",
        "Tanh",
        "Softplus",
        "Softsign",
        "ThresholdedRelu",
        "Softmax",
        "LogSoftmax",
        "Clip",
        "Erf",
        # Elementwise arithmetic, comparisons and selection.
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Mod",
        "Pow",
        "Sqrt",
        "Reciprocal",
        "Exp",
        "Log",
        "Neg",
        "Abs",
        "Sign",
        "Floor",
        "Ceil",
        "Round",
        "Sin",
        "Cos",
        "Max",
        "Min",
        "Mean",
        "Sum",
        "IsNaN",
        "IsInf",
        "Equal",
        "Less",
        "LessOrEqual",
        "Greater",
        "GreaterOrEqual",
        "Not",
        "And",
        "Or",
        "Where",
        # Matrix products and attention.
        "MatMul",
        "Gemm",
        "Einsum",
        "MatMulInteger",
        "QLinearMatMul",
        "Attention",
        "RotaryEmbedding",
        # Quantization.
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        # Reductions.
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceSumSquare",
        "ReduceLogSumExp",
        "ArgMax",
        "ArgMin",
        "CumSum",
        # Shapes and layout (exporters build expand and arange from ConstantOfShape, Range,
        # Equal and Where; the sandbox bounds what a computed shape may ask for).
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Shape",
        "Size",
        "Identity",
        "Constant",
        "ConstantOfShape",
        "Expand",
        "Tile",
        "Pad",
        "Resize",
        "Cast",
        "CastLike",
        "Range",
        "DepthToSpace",
        "SpaceToDepth",
        "Dropout",
    }
)

STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
# Nodes of all graphs: the largest common backbones (ViT-H, EfficientNet-B7) have a few
# thousand.
MAX_NODES = 30_000
# Elements and rank of one stored tensor: 2**28 float32 values are a gigabyte.
MAX_TENSOR_ELEMENTS = 2**28
MAX_RANK = 8
# Subgraphs within subgraphs (none is allowed to run; this only bounds the walk).
MAX_DEPTH = 4
MIN_OPSET = 7
MIN_IR_VERSION = 3

# Why a model is refused, by rule: what the uploader reads. `{subject}` is the operator or
# domain named by the model, shown only when it is a plain name.
REFUSALS = {
    "size": "The model is larger than an image model may be.",
    "not-onnx": "The file is not an ONNX model.",
    "external-data": (
        "The model keeps tensors in files of their own (external data); upload one .onnx "
        "file with every weight inside it."
    ),
    "nesting": "The model's graphs are nested too deeply.",
    "functions": "The model defines functions of its own; export it with them inlined.",
    "training-info": "The model carries training information; export it for inference only.",
    "ir-version": "The model's ONNX IR version is not supported.",
    "opset": f"The model's ONNX opset must be between {MIN_OPSET} and the newest supported.",
    "domain": (
        "The model uses operators outside the standard ONNX domain{subject}; export it with "
        "standard operators only."
    ),
    "operator": (
        "The model uses an operator an image model may not use{subject}: control flow, "
        "random, string, sequence and data-dependent operators are refused."
    ),
    "nodes": f"The model has more than {MAX_NODES} operators.",
    "tensor-size": (
        f"The model stores a tensor of more than {MAX_TENSOR_ELEMENTS} values or "
        f"{MAX_RANK} dimensions."
    ),
    "tensor-type": "The model stores a tensor of strings or of an unknown type.",
    "weights": "The model's weights are larger than an image model's may be.",
}


class UnsafeModel(Exception):
    """The model breaks `rule` (a key of REFUSALS); `subject` names what broke it."""

    def __init__(self, rule: str, subject: str | None = None) -> None:
        super().__init__(rule, subject)
        self.rule = rule
        self.subject = subject


def check_model(data: bytes, *, max_bytes: int) -> bytes:
    """The model's bytes as onnxruntime should load them (re-serialized from what was
    checked), or UnsafeModel."""
    import onnx

    if len(data) > max_bytes:
        raise UnsafeModel("size")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError, for bytes that are no ModelProto
        raise UnsafeModel("not-onnx") from None
    if not model.HasField("graph"):
        raise UnsafeModel("not-onnx")
    graphs = list(_graphs_of(model))
    for tensor in _tensors(model, [graph for graph, _ in graphs]):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise UnsafeModel("external-data")
    if len(model.functions):
        raise UnsafeModel("functions")
    if len(model.training_info):
        raise UnsafeModel("training-info")
    if not MIN_IR_VERSION <= model.ir_version <= onnx.IR_VERSION:
        raise UnsafeModel("ir-version")
    _check_opsets(model, onnx.defs.onnx_opset_version())
    nodes = 0
    for graph, _ in graphs:
        nodes += len(graph.node)
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                raise UnsafeModel("domain", node.domain)
            if node.op_type not in ALLOWED_OPERATORS:
                raise UnsafeModel("operator", node.op_type)
    if nodes > MAX_NODES:
        raise UnsafeModel("nodes")
    _check_sizes(model, [graph for graph, _ in graphs], max_bytes)
    # Fields this `onnx` does not know were never checked: onnxruntime's parser may know them.
    model.DiscardUnknownFields()
    return bytes(model.SerializeToString())


def _check_opsets(model: ModelProto, newest: int) -> None:
    default = None
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise UnsafeModel("domain", opset.domain)
        default = opset.version
    if default is None or not MIN_OPSET <= default <= newest:
        raise UnsafeModel("opset")


def _check_sizes(model: ModelProto, graphs: list[GraphProto], max_bytes: int) -> None:
    import onnx

    stored = 0
    for tensor in _tensors(model, graphs, dense_shapes=True):
        if len(tensor.dims) > MAX_RANK or any(dim < 0 for dim in tensor.dims):
            raise UnsafeModel("tensor-size")
        elements = 1
        for dim in tensor.dims:
            elements *= dim
        if elements > MAX_TENSOR_ELEMENTS:
            raise UnsafeModel("tensor-size")
        if tensor.data_type == onnx.TensorProto.STRING:
            raise UnsafeModel("tensor-type")
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, ValueError, TypeError):
            raise UnsafeModel("tensor-type") from None
        stored += elements * itemsize
    if stored > max_bytes:
        raise UnsafeModel("weights")


def _graphs_of(model: ModelProto) -> Iterator[tuple[GraphProto, int]]:
    """The main graph, every subgraph of its nodes' attributes, and those of the functions
    and training information, each with its depth."""
    yield from _subgraphs(model.graph, 0)
    for function in model.functions:
        for node in function.node:
            for attribute in node.attribute:
                yield from _attribute_graphs(attribute, 1)
        for attribute in function.attribute_proto:
            yield from _attribute_graphs(attribute, 1)
    for training in model.training_info:
        yield from _subgraphs(training.initialization, 1)
        yield from _subgraphs(training.algorithm, 1)


def _subgraphs(graph: GraphProto, depth: int) -> Iterator[tuple[GraphProto, int]]:
    if depth > MAX_DEPTH:
        raise UnsafeModel("nesting")
    yield graph, depth
    for node in graph.node:
        for attribute in node.attribute:
            yield from _attribute_graphs(attribute, depth + 1)


def _attribute_graphs(attribute: AttributeProto, depth: int) -> Iterator[tuple[GraphProto, int]]:
    if attribute.HasField("g"):
        yield from _subgraphs(attribute.g, depth)
    for graph in attribute.graphs:
        yield from _subgraphs(graph, depth)


def _tensors(
    model: ModelProto, graphs: list[GraphProto], *, dense_shapes: bool = False
) -> Iterator[TensorProto]:
    """Every tensor stored anywhere in the model. A sparse tensor gives its values and
    indices, or (`dense_shapes`) a stand-in with the shape it is expanded to."""
    for graph in graphs:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from _sparse(sparse, dense_shapes)
        for node in graph.node:
            for attribute in node.attribute:
                yield from _attribute_tensors(attribute, dense_shapes)
    for function in model.functions:
        for node in function.node:
            for attribute in node.attribute:
                yield from _attribute_tensors(attribute, dense_shapes)
        for attribute in function.attribute_proto:
            yield from _attribute_tensors(attribute, dense_shapes)


def _attribute_tensors(attribute: AttributeProto, dense_shapes: bool) -> Iterator[TensorProto]:
    if attribute.HasField("t"):
        yield attribute.t
    yield from attribute.tensors
    if attribute.HasField("sparse_tensor"):
        yield from _sparse(attribute.sparse_tensor, dense_shapes)
    for sparse in attribute.sparse_tensors:
        yield from _sparse(sparse, dense_shapes)


def _sparse(sparse: SparseTensorProto, dense_shapes: bool) -> Iterator[TensorProto]:
    if dense_shapes:
        import onnx

        yield onnx.TensorProto(dims=sparse.dims, data_type=sparse.values.data_type)
    yield sparse.values
    yield sparse.indices
