"""Static TensorRT compatibility lint for ONNX graphs: a rule table per TensorRT version, run without a GPU.

``trt.Builder`` needs a CUDA GPU, so the checks TensorRT's ONNX parser and builder would make are repeated
here on the ``onnx.ModelProto``. The rules follow ../shared/REFERENCES.md ("TensorRT and Jetson Orin") and
onnx-tensorrt's ``docs/operators.md``: explicit quantization is symmetric INT8 with 3-input Q/DQ, constant
positive scales (float32 on 8.x), zero point 0; per-channel only on Conv/MatMul/Gemm weights (Conv axis 0,
MatMul [K,N] axis 1, Gemm transB=1 axis 0); Loop/Scan/CumSum become sequential ILoops; NonZero makes
data-dependent shapes; the axes of Slice/Squeeze/Unsqueeze/Reduce* and Conv weights must be constant. The
recipe builds with ``--fp16``, so an Exp whose input may exceed ln(65504) (by interval arithmetic over the
graph, ranges.py) must be among the layers the graph asks to keep in fp32 (its ``edgec.fp32_layers``
metadata, which the recipe passes to trtexec as precision constraints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgec.errors import EdgecError
from edgec.targets.onnx.export import FP32_LAYERS_KEY, fp32_layers
from edgec.targets.orin.jetpack import TensorRTVersion
from edgec.targets.orin.ranges import Interval, value_ranges

__all__ = [
    "ALL_VERSIONS",
    "RULES",
    "SUPPORTED_OPS",
    "Finding",
    "LintError",
    "Rule",
    "format_findings",
    "lint",
    "require_clean",
]

Severity = Literal["error", "warning"]

ALL_VERSIONS: tuple[str, ...] = ("8.5", "8.6", "10.3")
TRT8: tuple[str, ...] = ("8.5", "8.6")
MODEL_NODE = "<model>"
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Control flow and data-dependent ops get their own rules (and a reason); the unsupported-op rule skips them.
SPECIAL_OPS = frozenset({"Loop", "Scan", "If", "CumSum", "NonZero"})
# Ops that only move values (TensorRT propagates Q/DQ through them): walked back from a MatMul to its DQ.
SHAPE_ONLY_OPS = frozenset({"Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze", "Flatten"})
# Ops whose output is a view/copy of a constant input: walked through to find a weight's real consumer.
PASS_THROUGH_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Identity"})

# Inputs TensorRT's ONNX parser needs as initializers/constants (onnx-tensorrt docs/operators.md).
CONSTANT_OPERANDS: dict[str, tuple[int, str]] = {
    "Slice": (3, "axes"), "Squeeze": (1, "axes"), "Unsqueeze": (1, "axes"), "Conv": (1, "weights"),
    **{op: (1, "axes") for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2")},
}
FP16_EXP_LIMIT = float(np.log(65504.0))  # exp(x) overflows fp16 above this (about 11.09)
FP16_SQUARE_LIMIT = float(np.sqrt(65504.0))  # x * x overflows fp16 above this (about 255.9)

# What edgec emits plus common ops the ONNX parser imports on 8.5, 8.6 and 10.3 (onnx-tensorrt operators.md).
# LayerNormalization is listed here; its 8.5 gap is a rule of its own.
SUPPORTED_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat",
    "Constant", "ConstantOfShape", "Conv", "Cos", "DequantizeLinear", "Div", "Dropout", "Elu", "Equal", "Erf", "Exp",
    "Expand", "Flatten", "Floor", "Gather", "GatherElements", "Gemm", "GlobalAveragePool", "Greater",
    "GreaterOrEqual", "HardSigmoid", "Identity", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log",
    "LogSoftmax", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Not", "Or", "Pad", "Pow", "QuantizeLinear",
    "Range", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "Relu", "Reshape", "Shape",
    "Sigmoid", "Sin", "Slice", "Softmax", "Softplus", "Softsign", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh",
    "Tile", "TopK", "Transpose", "Unsqueeze", "Where",
})


class LintError(EdgecError):
    """The graph uses something the chosen TensorRT version rejects; the message names the node and the reason."""


@dataclass(frozen=True)
class Finding:
    """One lint finding: which rule, on which node, why, and whether it blocks the build."""

    rule: str
    node_name: str
    op_type: str
    message: str
    severity: Severity = "error"


@dataclass
class _Context:
    """The graph indexed once for all rules."""

    model: onnx.ModelProto
    trt: TensorRTVersion
    nodes: list[onnx.NodeProto]
    names: list[str]
    values: dict[str, np.ndarray | None] = field(default_factory=dict)  # initializer / Constant outputs
    dtypes: dict[str, int] = field(default_factory=dict)  # element type of those, where known
    constant: set[str] = field(default_factory=set)  # tensors computable before inference (folded by TensorRT)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # shapes of constant tensors, where known
    consumers: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # tensor -> [(node idx, input idx)]

    @cached_property
    def ranges(self) -> dict[str, Interval]:
        """Static value ranges of every tensor (ranges.py), computed once for the rules that need them."""
        return value_ranges(self.model)

    def finding(self, rule: str, i: int, message: str, severity: Severity = "error") -> Finding:
        return Finding(rule, self.names[i], self.nodes[i].op_type, message, severity)


@dataclass(frozen=True)
class Rule:
    """One check: an id, a one-line description, the TensorRT versions it applies to, and the check itself."""

    id: str
    description: str
    versions: tuple[str, ...]
    check: Callable[[_Context], Iterable[Finding]]

    def applies(self, trt: TensorRTVersion) -> bool:
        return trt.name in self.versions


# ------------------------------------------------------------------------------------------------
# Graph indexing
# ------------------------------------------------------------------------------------------------


def _constant_node_value(node: onnx.NodeProto) -> tuple[np.ndarray | None, int | None]:
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t), a.t.data_type
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32), TensorProto.FLOAT
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32), TensorProto.FLOAT
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64), TensorProto.INT64
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64), TensorProto.INT64
    return None, None


def _index(model: onnx.ModelProto, trt: TensorRTVersion) -> _Context:
    g = model.graph
    nodes = list(g.node)
    names = [n.name or f"<{n.op_type} #{i}>" for i, n in enumerate(nodes)]
    ctx = _Context(model, trt, nodes, names)
    for init in g.initializer:
        ctx.values[init.name] = numpy_helper.to_array(init)
        ctx.dtypes[init.name] = init.data_type
        ctx.shapes[init.name] = tuple(init.dims)
        ctx.constant.add(init.name)
    for i, n in enumerate(nodes):
        for j, name in enumerate(n.input):
            if name:
                ctx.consumers.setdefault(name, []).append((i, j))
        has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            value, dtype = _constant_node_value(n)
            for out in n.output[:1]:
                ctx.values[out] = value
                if dtype is not None:
                    ctx.dtypes[out] = dtype
                if value is not None:
                    ctx.shapes[out] = tuple(value.shape)
                ctx.constant.add(out)
        elif not has_subgraph and not n.op_type.startswith("Random") and n.input and all(
            (not x) or x in ctx.constant for x in n.input
        ):
            # Constant-foldable (a weight's QuantizeLinear, say): TensorRT treats the result as weights.
            ctx.constant.update(o for o in n.output if o)
            if n.op_type in PASS_THROUGH_OPS and n.input[0] in ctx.shapes:
                for o in n.output[:1]:
                    ctx.shapes[o] = ctx.shapes[n.input[0]]
    return ctx


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _dtype_name(dtype: int) -> str:
    return TensorProto.DataType.Name(dtype)


def _qdq(ctx: _Context) -> Iterator[int]:
    for i, n in enumerate(ctx.nodes):
        if n.op_type in QDQ_OPS and n.domain in ("", "ai.onnx"):
            yield i


def _input(node: onnx.NodeProto, k: int) -> str:
    return node.input[k] if len(node.input) > k else ""


def _scale_size(ctx: _Context, node: onnx.NodeProto) -> int | None:
    scale = _input(node, 1)
    if scale in ctx.shapes:
        return int(np.prod(ctx.shapes[scale], dtype=np.int64))
    return None


# ------------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------------


def _check_opset(ctx: _Context) -> Iterator[Finding]:
    for op in ctx.model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version > ctx.trt.max_opset:
            yield Finding("opset-too-high", MODEL_NODE, "", f"model opset {op.version} is above {ctx.trt}'s maximum "
                          f"{ctx.trt.max_opset}; export with opset <= {ctx.trt.max_opset}")


def _check_zero_point_missing(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        n = ctx.nodes[i]
        if _input(n, 2):
            continue
        if ctx.trt.major < 10 or n.op_type == "QuantizeLinear":
            yield ctx.finding("qdq-zero-point-missing", i, "2-input Q/DQ: write the INT8 zero point 0 as a third input "
                              "(ONNX's default zero point is UINT8; TensorRT 8.x needs 3-input Q/DQ)")
        else:
            yield ctx.finding("qdq-zero-point-missing", i, "2-input DequantizeLinear: write the INT8 zero point 0 "
                              "explicitly", "warning")


def _check_zero_point_dtype(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        n = ctx.nodes[i]
        zp = _input(n, 2)
        if zp and zp in ctx.dtypes and ctx.dtypes[zp] != TensorProto.INT8:
            yield ctx.finding("qdq-zero-point-dtype", i, f"zero point '{zp}' is {_dtype_name(ctx.dtypes[zp])}; "
                              "TensorRT explicit quantization is INT8 only (no UINT8)")
        x = n.input[0]
        if n.op_type == "DequantizeLinear" and x in ctx.dtypes and ctx.dtypes[x] != TensorProto.INT8:
            yield ctx.finding("qdq-zero-point-dtype", i, f"dequantized weight '{x}' is {_dtype_name(ctx.dtypes[x])}; "
                              "TensorRT explicit quantization is INT8 only")


def _check_zero_point_value(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        zp = _input(ctx.nodes[i], 2)
        value = ctx.values.get(zp)
        if value is not None and np.any(value != 0):
            yield ctx.finding("qdq-zero-point-nonzero", i, f"zero point '{zp}' is not 0; TensorRT quantization is "
                              "symmetric (zero point 0)")


def _check_scale_dtype(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        scale = _input(ctx.nodes[i], 1)
        if scale in ctx.dtypes and ctx.dtypes[scale] != TensorProto.FLOAT:
            yield ctx.finding("qdq-scale-dtype", i, f"scale '{scale}' is {_dtype_name(ctx.dtypes[scale])}; "
                              f"{ctx.trt} needs float32 Q/DQ scales")


def _check_scale_value(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        scale = _input(ctx.nodes[i], 1)
        value = ctx.values.get(scale)
        if value is not None and value.size and not np.all(np.isfinite(value) & (value > 0)):
            yield ctx.finding("qdq-scale-value", i, f"scale '{scale}' has a zero, negative or non-finite value; "
                              "TensorRT needs scales > 0")


def _check_params_constant(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        n = ctx.nodes[i]
        for role, name in (("scale", _input(n, 1)), ("zero point", _input(n, 2))):
            if name and name not in ctx.values:
                yield ctx.finding("qdq-nonconstant-params", i, f"{role} '{name}' is computed in the graph; TensorRT "
                                  "needs Q/DQ scale and zero point as initializers or Constant nodes")


def _check_per_channel_activation(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        n = ctx.nodes[i]
        size = _scale_size(ctx, n)
        if size is not None and size > 1 and n.input[0] not in ctx.constant:
            yield ctx.finding("qdq-per-channel-activation", i, f"per-channel scale ({size} values, axis "
                              f"{_attr(n, 'axis', 1)}) on activation '{n.input[0]}'; TensorRT quantizes activations "
                              "per tensor (per-channel is for weights only)")


def _weight_consumers(ctx: _Context, tensor: str) -> Iterator[tuple[int, int]]:
    """(node idx, input idx) of the compute nodes a constant tensor reaches through Q/DQ/Identity."""
    seen: set[str] = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for i, j in ctx.consumers.get(t, []):
            n = ctx.nodes[i]
            if n.op_type in PASS_THROUGH_OPS and j == 0:
                stack.extend(o for o in n.output[:1] if o)
            else:
                yield i, j


def _expected_weight_axis(node: onnx.NodeProto, j: int, rank: int) -> tuple[int, str] | None:
    """The per-channel axis TensorRT needs for input ``j`` of ``node`` (and why), or None if it has no rule."""
    if node.op_type == "MatMul" and j == 1:
        return rank - 1, f"MatMul weights [K,N] need axis {rank - 1} (or -1)"
    if node.op_type == "Conv" and j == 1:
        return 0, "Conv weights need axis 0 (output channels)"
    if node.op_type == "Gemm" and j == 1:
        if _attr(node, "transB", 0):
            return 0, "Gemm weights with transB=1 ([N,K]) need axis 0"
        return 1, "Gemm weights with transB=0 ([K,N]) need axis 1"
    return None


def _check_weight_axis(ctx: _Context) -> Iterator[Finding]:
    for i in _qdq(ctx):
        n = ctx.nodes[i]
        size = _scale_size(ctx, n)
        if size is None or size <= 1 or n.input[0] not in ctx.constant:
            continue
        shape = ctx.shapes.get(n.input[0])
        rank = len(shape) if shape is not None else 2
        axis = _attr(n, "axis", 1)
        norm = axis + rank if axis < 0 else axis
        if shape is not None and 0 <= norm < rank and shape[norm] != size:
            yield ctx.finding("qdq-weight-axis", i, f"scale has {size} values but weight '{n.input[0]}' axis {axis} "
                              f"has {shape[norm]}")
        for c, j in _weight_consumers(ctx, n.output[0]):
            consumer = ctx.nodes[c]
            expected = _expected_weight_axis(consumer, j, rank)
            if expected is None:
                yield ctx.finding("qdq-weight-axis", i, f"per-channel weight feeds {consumer.op_type} "
                                  f"'{ctx.names[c]}' input {j}; TensorRT takes per-channel scales only on "
                                  "Conv/MatMul/Gemm weights", "warning")
            elif norm != expected[0]:
                yield ctx.finding("qdq-weight-axis", i, f"per-channel axis {axis} is wrong for '{ctx.names[c]}': "
                                  f"{expected[1]}")


def _ops(ctx: _Context, *op_types: str) -> Iterator[int]:
    for i, n in enumerate(ctx.nodes):
        if n.op_type in op_types and n.domain in ("", "ai.onnx"):
            yield i


def _check_loops(ctx: _Context) -> Iterator[Finding]:
    for i in _ops(ctx, "Loop", "Scan"):
        yield ctx.finding("sequential-loop", i, f"{ctx.nodes[i].op_type} becomes a sequential TensorRT ILoop (one "
                          "step per iteration); use the chunked matmul scan or the step graph")


def _check_cumsum(ctx: _Context) -> Iterator[Finding]:
    if ctx.trt.native_cumsum:
        return
    for i in _ops(ctx, "CumSum"):
        yield ctx.finding("cumsum", i, f"CumSum becomes a sequential ILoop on {ctx.trt} (native only from "
                          "TensorRT 10.8); use a triangular-mask MatMul")


def _check_nonzero(ctx: _Context) -> Iterator[Finding]:
    for i in _ops(ctx, "NonZero"):
        yield ctx.finding("data-dependent-shape", i, "NonZero has a data-dependent output shape; use static shapes "
                          "(constant-K TopK, dense or fixed-capacity dispatch)")


def _check_if(ctx: _Context) -> Iterator[Finding]:
    for i in _ops(ctx, "If"):
        yield ctx.finding("conditional", i, "If builds a TensorRT conditional; both branches must have "
                          "broadcastable output shapes, and data-dependent branches break static shapes", "warning")


def _check_layernorm(ctx: _Context) -> Iterator[Finding]:
    if ctx.trt.supports_layernorm:
        return
    for i in _ops(ctx, "LayerNormalization"):
        yield ctx.finding("layernorm-unsupported", i, f"{ctx.trt} has no LayerNormalization; decompose it "
                          "(ReduceMean, Sub, Mul, Sqrt, Div)")


def _topk_k(ctx: _Context, node: onnx.NodeProto) -> tuple[bool, int | None]:
    """(K is a constant input, its value if known)."""
    k = _input(node, 1)
    if not k:  # TopK-1 (opset < 10): K is an attribute.
        return True, _attr(node, "k", 0)
    if k not in ctx.values:
        return False, None
    value = ctx.values[k]
    return True, (int(np.asarray(value).reshape(-1)[0]) if value is not None and value.size else None)


def _check_topk_k(ctx: _Context) -> Iterator[Finding]:
    for i in _ops(ctx, "TopK"):
        const, k = _topk_k(ctx, ctx.nodes[i])
        if not const:
            severity: Severity = "error" if ctx.trt.name == "8.5" else "warning"
            yield ctx.finding("topk-k", i, f"TopK's K '{ctx.nodes[i].input[1]}' is not an initializer or Constant "
                              "(needs a constant K for static shapes)", severity)
        elif k is not None and k > ctx.trt.topk_max_k:
            yield ctx.finding("topk-k", i, f"TopK K={k} is too large for {ctx.trt} (K must be < "
                              f"{ctx.trt.topk_max_k + 1})")


def _check_topk_sorted(ctx: _Context) -> Iterator[Finding]:
    for i in _ops(ctx, "TopK"):
        if _attr(ctx.nodes[i], "sorted", 1) == 0:
            yield ctx.finding("topk-sorted", i, f"TopK sorted=0 is not supported by {ctx.trt}; set sorted=1")


def _check_constant_operands(ctx: _Context) -> Iterator[Finding]:
    for i, n in enumerate(ctx.nodes):
        k, what = CONSTANT_OPERANDS.get(n.op_type, (-1, ""))
        name = _input(n, k) if k >= 0 and n.domain in ("", "ai.onnx") else ""
        if name and name not in ctx.constant:
            yield ctx.finding("constant-operand", i, f"{n.op_type} {what} '{name}' is computed in the graph; "
                              f"TensorRT's ONNX parser needs {what} as an initializer or Constant")


def _check_fp16_exp(ctx: _Context) -> Iterator[Finding]:
    pinned = set(fp32_layers(ctx.model))
    exps = [i for i in _ops(ctx, "Exp") if ctx.nodes[i].name not in pinned]
    ranges = ctx.ranges if exps else {}
    for i in exps:
        hi = ranges.get(ctx.nodes[i].input[0], (0.0, np.inf))[1]
        if hi > FP16_EXP_LIMIT:
            bound = "unbounded" if np.isinf(hi) else f"up to {hi:.3g}"
            yield ctx.finding("fp16-exp-overflow", i, f"Exp of a value {bound} overflows fp16 (above "
                              f"{FP16_EXP_LIMIT:.2f}) and the recipe's --fp16 lets TensorRT run it in fp16; bound "
                              f"its input or list the node in the model's {FP32_LAYERS_KEY} metadata")
    known = {n.name for n in ctx.nodes}
    for name in sorted(pinned - known):
        yield Finding("fp16-exp-overflow", MODEL_NODE, "", f"{FP32_LAYERS_KEY} names '{name}', which is no node "
                      "of the graph", "warning")


def _squares(ctx: _Context) -> Iterator[int]:
    """Nodes that square their input: Mul(x, x), Pow(x, 2) with a constant 2, ReduceSumSquare."""
    for i in _ops(ctx, "Mul", "Pow", "ReduceSumSquare"):
        n = ctx.nodes[i]
        exponent = ctx.values.get(n.input[1]) if n.op_type == "Pow" else None
        if (n.op_type == "ReduceSumSquare" or (n.op_type == "Mul" and n.input[0] == n.input[1])
                or (exponent is not None and np.all(exponent == 2))):
            yield i


def _check_fp16_square(ctx: _Context) -> Iterator[Finding]:
    """A norm's sum of squares overflows fp16 once |x| > 255.9 (TensorRT warns about LayerNorm after attention
    in fp16 for this reason): such squares must be among the layers the graph keeps in fp32."""
    pinned = set(fp32_layers(ctx.model))
    squares = [i for i in _squares(ctx) if ctx.nodes[i].name not in pinned]
    ranges = ctx.ranges if squares else {}
    for i in squares:
        lo, hi = ranges.get(ctx.nodes[i].input[0], (-np.inf, np.inf))
        top = max(abs(lo), abs(hi))
        if top > FP16_SQUARE_LIMIT:
            bound = "unbounded" if np.isinf(top) else f"up to {top:.3g} in magnitude"
            yield ctx.finding("fp16-square-overflow", i, f"{ctx.nodes[i].op_type} squares a value {bound}, which "
                              f"overflows fp16 above {FP16_SQUARE_LIMIT:.1f} under the recipe's --fp16; list the norm "
                              f"in the model's {FP32_LAYERS_KEY} metadata")


def _check_one_sided_qdq_matmul(ctx: _Context) -> Iterator[Finding]:
    """A MatMul of two activations runs in INT8 only if both come through DequantizeLinear (QDQBERT's placement);
    with one side quantized, the Q/DQ pair only adds rounding."""
    producers = {o: n for n in ctx.nodes for o in n.output}

    def dequantized(value: str) -> bool:  # through the shape-only ops between a DQ and a MatMul (head split)
        node = producers.get(value)
        while node is not None and node.op_type in SHAPE_ONLY_OPS:
            node = producers.get(node.input[0])
        return node is not None and node.op_type == "DequantizeLinear"

    for i in _ops(ctx, "MatMul"):
        n = ctx.nodes[i]
        if any(x in ctx.constant for x in n.input[:2]):
            continue  # a weight: the weight-axis rules cover it
        dq = [dequantized(x) for x in n.input[:2]]
        if dq[0] != dq[1]:
            side = n.input[0] if dq[0] else n.input[1]
            yield ctx.finding("qdq-one-sided-matmul", i, f"only '{side}' of this activation x activation MatMul is "
                              "int8; TensorRT runs it in float and the Q/DQ pair only rounds: quantize both inputs or "
                              "neither", "warning")


def _check_supported(ctx: _Context) -> Iterator[Finding]:
    for i, n in enumerate(ctx.nodes):
        if n.domain not in ("", "ai.onnx"):
            yield ctx.finding("unsupported-op", i, f"custom op {n.domain}::{n.op_type} needs a TensorRT plugin")
        elif n.op_type not in SUPPORTED_OPS and n.op_type not in SPECIAL_OPS:
            yield ctx.finding("unsupported-op", i, f"{n.op_type} is not in edgec's TensorRT supported-op set")


RULES: tuple[Rule, ...] = (
    Rule("opset-too-high", "model opset above the TensorRT version's maximum", ALL_VERSIONS, _check_opset),
    Rule("unsupported-op", "op outside the supported-op set, or a custom-domain op", ALL_VERSIONS, _check_supported),
    Rule("qdq-zero-point-missing", "2-input Q/DQ (the ONNX default zero point is UINT8)", ALL_VERSIONS,
         _check_zero_point_missing),
    Rule("qdq-zero-point-dtype", "Q/DQ zero point or dequantized weight not INT8", ALL_VERSIONS,
         _check_zero_point_dtype),
    Rule("qdq-zero-point-nonzero", "non-zero Q/DQ zero point (TensorRT is symmetric)", ALL_VERSIONS,
         _check_zero_point_value),
    Rule("qdq-scale-dtype", "non-float32 Q/DQ scale", TRT8, _check_scale_dtype),
    Rule("qdq-scale-value", "Q/DQ scale zero, negative or non-finite", ALL_VERSIONS, _check_scale_value),
    Rule("qdq-nonconstant-params", "Q/DQ scale or zero point not an initializer or Constant", ALL_VERSIONS,
         _check_params_constant),
    Rule("qdq-per-channel-activation", "per-channel Q/DQ on an activation (per-channel is for weights)",
         ALL_VERSIONS, _check_per_channel_activation),
    Rule("qdq-weight-axis", "per-channel weight axis wrong for its Conv/MatMul/Gemm consumer", ALL_VERSIONS,
         _check_weight_axis),
    Rule("sequential-loop", "Loop/Scan (sequential ILoop)", ALL_VERSIONS, _check_loops),
    Rule("cumsum", "CumSum without a native cumulative layer (sequential ILoop)", ALL_VERSIONS, _check_cumsum),
    Rule("data-dependent-shape", "NonZero (data-dependent output shape)", ALL_VERSIONS, _check_nonzero),
    Rule("conditional", "If (TensorRT conditional; keep shapes static)", ALL_VERSIONS, _check_if),
    Rule("layernorm-unsupported", "LayerNormalization before TensorRT 8.6", ("8.5",), _check_layernorm),
    Rule("topk-k", "TopK with a non-constant K or K >= 3840", ALL_VERSIONS, _check_topk_k),
    Rule("topk-sorted", "TopK with sorted=0", ("10.3",), _check_topk_sorted),
    Rule("constant-operand", "Slice/Squeeze/Unsqueeze/Reduce axes or Conv weights computed in the graph",
         ALL_VERSIONS, _check_constant_operands),
    Rule("fp16-exp-overflow", "Exp that may overflow fp16, not kept in fp32 by the graph's fp32 layer list",
         ALL_VERSIONS, _check_fp16_exp),
    Rule("fp16-square-overflow", "a norm's square of a value that may exceed 255.9, not kept in fp32",
         ALL_VERSIONS, _check_fp16_square),
    Rule("qdq-one-sided-matmul", "activation x activation MatMul with only one int8 input", ALL_VERSIONS,
         _check_one_sided_qdq_matmul),
)


# ------------------------------------------------------------------------------------------------
# API
# ------------------------------------------------------------------------------------------------


def lint(model: onnx.ModelProto, trt: TensorRTVersion) -> list[Finding]:
    """All findings of the rules that apply to ``trt``, in rule-table order, each rule in graph order."""
    ctx = _index(model, trt)
    return [f for rule in RULES if rule.applies(trt) for f in rule.check(ctx)]


def format_findings(findings: Iterable[Finding]) -> str:
    """One line per finding, errors first; a single line when there are none."""
    items = sorted(findings, key=lambda f: f.severity != "error")
    if not items:
        return "TensorRT lint: no findings"
    errors = sum(f.severity == "error" for f in items)
    lines = [f"TensorRT lint: {errors} error(s), {len(items) - errors} warning(s)"]
    lines += [f"  {f.severity:<7} {f.rule:<26} {f.node_name} ({f.op_type or 'model'}): {f.message}" for f in items]
    return "\n".join(lines)


def require_clean(findings: Iterable[Finding]) -> None:
    """Raise ``LintError`` naming the first error's node and reason; warnings pass."""
    errors = [f for f in findings if f.severity == "error"]
    if not errors:
        return
    f = errors[0]
    more = f" (+{len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    where = "the model" if f.node_name == MODEL_NODE else f"node '{f.node_name}' ({f.op_type})"
    raise LintError(f"TensorRT lint rejects {where}: {f.message} [{f.rule}]{more}")
