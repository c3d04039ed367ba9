"""Static value ranges of an ONNX graph (interval arithmetic), for the lint's fp16 checks.

Each tensor gets an interval [lo, hi] that holds for every input: constants give their own range, a
DequantizeLinear of an activation gives [-128, 127] x scale, bounded functions (Sigmoid, Tanh, Exp of
a bounded input) bound their outputs, and products with constant matrices are bounded exactly per output
column. Anything else is (-inf, inf): the analysis is sound, not tight. Graph inputs (the recurrent
state, say) are unbounded: a value that depends on them is only bounded through a bounded function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["Interval", "value_ranges"]

Interval = tuple[float, float]
UNBOUNDED: Interval = (-math.inf, math.inf)
# Ops whose first output holds values of their first input only (moved, copied, selected).
_SAME_VALUES = frozenset({"Identity", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Flatten", "Expand",
                          "Gather", "Slice", "Split", "Cast", "ReduceMax", "ReduceMin", "ReduceMean", "Tile"})


def _mul(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b  # 0 x inf = 0: a zero factor stays zero


def _product(x: Interval, y: Interval) -> Interval:
    corners = [_mul(p, q) for p in x for q in y]
    return min(corners), max(corners)


def _monotone(fn: Callable[[float], float], x: Interval) -> Interval:
    return fn(x[0]), fn(x[1])


def _exp(v: float) -> float:
    return math.exp(v) if v < 709 else math.inf


def _matmul_const(x: Interval, w: np.ndarray, const_left: bool) -> Interval:
    """Bounds of x @ w (or w @ x) for x anywhere in the interval, per output column (row): the interval is one
    scalar range, so each column's bound is its positive and negative weight sums times its ends."""
    w = w.astype(np.float64).reshape(w.shape[-2], w.shape[-1])
    if const_left:
        w = w.T  # (w @ x)[i] = sum_k w[i, k] x[k]: contract over w's columns
    pos, neg = np.clip(w, 0, None).sum(axis=0), np.clip(w, None, 0).sum(axis=0)

    def times(total: np.ndarray, end: float) -> np.ndarray:  # a column of zeros stays 0 at an infinite end
        with np.errstate(invalid="ignore", over="ignore"):
            return np.where(total == 0, 0.0, total * end)

    with np.errstate(invalid="ignore", over="ignore"):  # sums may reach inf
        hi, lo = times(pos, x[1]) + times(neg, x[0]), times(pos, x[0]) + times(neg, x[1])
    return float(lo.min()), float(hi.max())


def _node_range(node: onnx.NodeProto, r: list[Interval], consts: dict[str, np.ndarray]) -> Interval:
    op = node.op_type
    if op in _SAME_VALUES:
        return r[0]
    if op == "Concat":
        return min(i[0] for i in r), max(i[1] for i in r)
    if op == "DequantizeLinear" and node.input[1] in consts:
        s = float(np.abs(consts[node.input[1]]).max())
        return -128 * s, 127 * s
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min") and len(r) == 2:
        (a, b), (c, d) = r
        if op == "Add":
            return a + c, b + d
        if op == "Sub":
            return a - d, b - c
        if op == "Mul":
            return _product(r[0], r[1])
        if op == "Max":
            return max(a, c), max(b, d)
        if op == "Min":
            return min(a, c), min(b, d)
        if c > 0 or d < 0:  # Div by an interval without zero
            return _product(r[0], (1 / d, 1 / c))
        return UNBOUNDED
    if op == "Neg":
        return -r[0][1], -r[0][0]
    if op == "Abs":
        lo, hi = r[0]
        return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
    if op in ("Sigmoid", "Tanh", "Exp", "Softplus", "Relu", "Sqrt"):
        fn = {"Sigmoid": lambda v: 1 / (1 + _exp(-v)), "Tanh": math.tanh, "Exp": _exp,
              "Softplus": lambda v: v if v > 30 else math.log1p(_exp(v)), "Relu": lambda v: max(v, 0.0),
              "Sqrt": lambda v: math.sqrt(max(v, 0.0))}[op]
        return _monotone(fn, r[0])
    if op == "Clip":  # min(max(x, lo), hi), either bound optional (an empty or absent input)
        lo, hi = r[0]
        present = [k for k, x in enumerate(node.input) if x]  # r holds the present inputs' ranges only
        bounds = [r[present.index(k)] if k in present else None for k in (1, 2)]
        if bounds[0] is not None:
            lo, hi = max(lo, bounds[0][0]), max(hi, bounds[0][1])
        if bounds[1] is not None:
            lo, hi = min(lo, bounds[1][0]), min(hi, bounds[1][1])
        return lo, hi
    if op == "MatMul":
        if node.input[1] in consts:
            return _matmul_const(r[0], consts[node.input[1]], const_left=False)
        if node.input[0] in consts:
            return _matmul_const(r[1], consts[node.input[0]], const_left=True)
    return UNBOUNDED


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> np.ndarray:
    x = consts[node.input[0]].astype(np.float64)
    if node.op_type == "Identity":
        return x
    scale = consts[node.input[1]].astype(np.float64)
    if scale.ndim:  # per-channel along ``axis``
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % x.ndim
        scale = scale.reshape([-1 if d == axis else 1 for d in range(x.ndim)])
    return x * scale


def value_ranges(model: onnx.ModelProto) -> dict[str, Interval]:
    """An interval for every float tensor of ``model`` (topologically sorted, as ONNX requires).

    Constants are read from the initializers when a node needs them and dropped after their last reader, a
    weight's DequantizeLinear folded likewise: a few weights in float64 at a time, not the whole model (1.6 GB per
    block at xLSTM-7B widths)."""
    initializers = {i.name: i for i in model.graph.initializer}
    ranges: dict[str, Interval] = {}
    for name, init in initializers.items():
        value = numpy_helper.to_array(init)
        if value.size and value.dtype.kind in "fiu":
            ranges[name] = (float(value.min()), float(value.max()))
    last_read = {x: i for i, node in enumerate(model.graph.node) for x in node.input}
    consts: dict[str, np.ndarray] = {}  # the constants a node still to come reads
    for i, node in enumerate(model.graph.node):
        for x in node.input:
            if x in initializers and x not in consts:
                consts[x] = numpy_helper.to_array(initializers[x])
        folds = node.op_type in ("DequantizeLinear", "Identity") and all(x in consts for x in node.input if x)
        if folds and last_read.get(node.output[0], -1) > i:
            consts[node.output[0]] = _fold(node, consts)  # a weight's DequantizeLinear: the weight itself
        inputs = [ranges.get(x, UNBOUNDED) for x in node.input if x]
        result = _node_range(node, inputs, consts) if inputs else UNBOUNDED
        for out in node.output:
            if out:
                ranges[out] = result
        for x in node.input:
            if last_read[x] == i:
                consts.pop(x, None)
    return ranges
