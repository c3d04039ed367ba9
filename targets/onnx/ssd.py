"""The Mamba-2 SSD cell as ONNX: one decode step, and one prefill chunk (closed matrix form, or unrolled).

All forms mirror runtime/ssd_float.py with the op's own dt: dt = clip(softplus(dt_raw + dt_bias), dt_min, dt_max)
(Clip without a max when dt_max is infinite), A = -exp(A_log) a constant. Shapes: x [.., H*P], dt [.., H],
B, C [.., G*N] (group g shared by heads g*R .. g*R + R - 1, R = H / G), state h [B, H, P, N] in fp32. The
groups are a broadcast, not a copy: h is viewed as [B, G, R, P, N] and B, C as [.., G, 1, 1, N], so no head
loop and no Expand. Only elementwise ops, MatMul, reductions, Reshape/Transpose/Unsqueeze, Gather and Concat.

Step (the qdq simulator's float order: the 1 LSB contract):

    h' = exp(dt A) h + (dt x) B        y = sum_n h' C + D x

Chunk of T tokens, closed form (the SSD "matrix" form, no Loop, Scan or CumSum): with la_t = dt_t A,
seg[t, s] = sum_{s<k<=t} la_k (a product with a constant band matrix: exact segment sums, no difference of two
long cumulative sums), L = exp(seg) masked to s <= t, and c_t = sum_{k<=t} la_k (a product with a constant
triangular matrix):

    y = (C B^T o L) (dt x) + exp(c) C h_0 + D x
    h_T = exp(c_{T-1}) h_0 + sum_s exp(seg[T-1, s]) (dt_s x_s) B_s^T

Chunk, unrolled: the decays exp(dt A) and inputs (dt x) B of the chunk at once, then h_t = dA_t h_{t-1} + dBx_t
token by token (as many multiply-adds as stepping), y_t = sum_n h_t C_t + D x_t.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from edgec.ir import Node

if TYPE_CHECKING:
    from edgec.targets.onnx.export import _OnnxBuilder

__all__ = ["MASKED_LOG", "emit_chunk", "emit_step", "emit_unrolled"]

MASKED_LOG = 1e4  # added (negated) to seg[t, s] for s > t, where seg is 0: exp underflows to 0


def _shape(b: _OnnxBuilder, *dims: int) -> str:
    return b.init("shape_" + "_".join(str(d).replace("-", "m") for d in dims), np.array(dims, np.int64))


def _sizes(b: _OnnxBuilder, node: Node) -> tuple[int, int, int, int, int]:
    """(H, G, R, P, N) of an SSD node, from its attrs and its x and B values."""
    heads, groups = node.attrs["heads"], node.attrs["groups"]
    p = int(b.graph.values[node.inputs[0]].shape[-1]) // heads
    n = int(b.graph.values[node.inputs[2]].shape[-1]) // groups
    return heads, groups, heads // groups, p, n


def _dt(b: _OnnxBuilder, node: Node, out: str) -> str:
    """dt [.., H] = clip(softplus(dt_raw + dt_bias), dt_min, dt_max)."""
    w = node.weights
    bias = b.const_f32(w["dt_bias"], b.qm.fparams[w["dt_bias"]])
    sp = b.node("Softplus", [b.node("Add", [node.inputs[1], bias], out + ".dt_biased")], out + ".dt_softplus")
    low, high = float(node.attrs["dt_min"]), float(node.attrs["dt_max"])
    bounds = [b.const_f32(f"ssd_dt_min_{low:g}", low)]
    if math.isfinite(high):  # Clip's max is optional: an infinite one is left out (no inf constant for TensorRT)
        bounds.append(b.const_f32(f"ssd_dt_max_{high:g}", high))
    return b.node("Clip", [sp, *bounds], out + ".dt")


def _const(b: _OnnxBuilder, node: Node, role: str, *shape: int) -> str:
    """-exp(A_log) (role "A") or D, reshaped to ``shape`` (heads as [G, R])."""
    w = b.qm.fparams[node.weights["A_log" if role == "A" else role]].astype(np.float32)
    value = -np.exp(w) if role == "A" else w
    return b.const_f32(f"{node.weights['A_log' if role == 'A' else role]}.{role}_{'_'.join(map(str, shape))}",
                       value.reshape(shape))


def emit_step(b: _OnnxBuilder, node: Node) -> None:
    """(x, dt_raw, B, C, h) -> (y, h'), as runtime/ssd_float.ssd_step."""
    x, _, bb, cc, h = node.inputs
    y, h_out = node.outputs
    heads, groups, r, p, n = _sizes(b, node)
    dt5 = b.node("Reshape", [_dt(b, node, y), _shape(b, 0, groups, r, 1, 1)], y + ".dt5")  # [B, G, R, 1, 1]
    a5, d = _const(b, node, "A", groups, r, 1, 1), _const(b, node, "D", groups, r, 1)
    decay = b.node("Exp", [b.node("Mul", [dt5, a5], y + ".dtA")], y + ".dA")
    x5 = b.node("Reshape", [x, _shape(b, 0, groups, r, p, 1)], y + ".x5")
    dtx = b.node("Mul", [dt5, x5], y + ".dtx")  # [B, G, R, P, 1]
    b5 = b.node("Reshape", [bb, _shape(b, 0, groups, 1, 1, n)], y + ".B5")
    c5 = b.node("Reshape", [cc, _shape(b, 0, groups, 1, 1, n)], y + ".C5")
    h5 = b.node("Reshape", [h, _shape(b, 0, groups, r, p, n)], y + ".h5")
    new = b.node("Add", [b.node("Mul", [decay, h5], y + ".dAh"), b.node("Mul", [dtx, b5], y + ".dBx")],
                 y + ".hnew")
    b.node("Reshape", [new, _shape(b, 0, heads, p, n)], h_out)
    yc = b.node("ReduceSum", [b.node("Mul", [new, c5], y + ".hC"), b.axes(-1)], y + ".Ch", keepdims=0)
    dx = b.node("Mul", [d, b.node("Reshape", [x, _shape(b, 0, groups, r, p)], y + ".x4")], y + ".Dx")
    b.node("Reshape", [b.node("Add", [yc, dx], y + ".y4"), _shape(b, 0, -1)], b.output(y))


def _chunk_constants(b: _OnnxBuilder, t: int) -> tuple[str, str, str]:
    """[T, T] prefix sums (c = la @ U), [T, T*T] band sums (seg) and the [T, T] causal mask."""
    upper = np.triu(np.ones((t, t), np.float32))  # U[s, t] = 1 for s <= t
    band = np.zeros((t, t, t), np.float32)  # band[k, t, s] = 1 for s < k <= t
    for k in range(t):
        band[k, k:, :k] = 1
    mask = np.where(np.tril(np.ones((t, t))) > 0, 0.0, -MASKED_LOG)
    return (b.const_f32(f"ssd_prefix_{t}", upper), b.const_f32(f"ssd_band_{t}", band.reshape(t, t * t)),
            b.const_f32(f"ssd_mask_{t}", mask))


def _chunk_inputs(b: _OnnxBuilder, node: Node, y: str) -> tuple[str, ...]:
    """(dt [B, T, H], dt x [B, T, H, P], x [B, T, H, P]) of a chunk."""
    x = node.inputs[0]
    heads, _, _, p, _ = _sizes(b, node)
    dt = _dt(b, node, y)
    x4 = b.node("Reshape", [x, _shape(b, 0, 0, heads, p)], y + ".x4")
    xs = b.node("Mul", [x4, b.node("Unsqueeze", [dt, b.axes(-1)], y + ".dt4")], y + ".xdt")
    return dt, xs, x4


def emit_chunk(b: _OnnxBuilder, node: Node, h0: str, t: int) -> None:
    """(x, dt_raw, B, C) over T tokens from the state ``h0`` -> y, in the closed form; writes h0 + "_out"."""
    _, _, bb, cc = node.inputs
    y = node.outputs[0]
    heads, groups, r, p, n = _sizes(b, node)
    dt, xs, x4 = _chunk_inputs(b, node, y)
    a, d = _const(b, node, "A", groups, r, 1), _const(b, node, "D", groups, r, 1, 1)
    prefix, band, mask = _chunk_constants(b, t)
    dt_g = b.node("Reshape", [b.node("Transpose", [dt], y + ".dtT", perm=[0, 2, 1]), _shape(b, 0, groups, r, t)],
                  y + ".dtg")  # [B, G, R, T]
    la = b.node("Mul", [dt_g, a], y + ".la")  # log decay of each token

    def per_head(v: str, tag: str) -> str:  # [B, T, H, P] -> [B, G, R, T, P]
        v = b.node("Transpose", [v], f"{y}.{tag}T", perm=[0, 2, 1, 3])
        return b.node("Reshape", [v, _shape(b, 0, groups, r, t, p)], f"{y}.{tag}5")

    xs5, x5 = per_head(xs, "xdt"), per_head(x4, "x")
    bg, cg = (b.node("Transpose", [b.node("Reshape", [v, _shape(b, 0, 0, groups, n)], f"{y}.{tag}4")],
                     f"{y}.{tag}g", perm=[0, 2, 1, 3]) for v, tag in ((bb, "B"), (cc, "C")))  # [B, G, T, N]
    seg = b.node("Reshape", [b.node("MatMul", [la, band], y + ".band"), _shape(b, 0, 0, 0, t, t)], y + ".seg")
    decay = b.node("Exp", [b.node("Add", [seg, mask], y + ".seg_masked")], y + ".L")  # [B, G, R, T, T]
    cb = b.node("MatMul", [cg, b.node("Transpose", [bg], y + ".BgT", perm=[0, 1, 3, 2])], y + ".CB")  # [B,G,T,T]
    scores = b.node("Mul", [b.node("Unsqueeze", [cb, b.axes(2)], y + ".CB5"), decay], y + ".CBL")
    intra = b.node("MatMul", [scores, xs5], y + ".intra")  # [B, G, R, T, P]
    from_start = b.node("Exp", [b.node("MatMul", [la, prefix], y + ".cum")], y + ".from_start")  # [B, G, R, T]
    h5 = b.node("Reshape", [h0, _shape(b, 0, groups, r, p, n)], y + ".h5")
    cg5 = b.node("Unsqueeze", [cg, b.axes(2)], y + ".Cg5")  # [B, G, 1, T, N]
    ch = b.node("MatMul", [cg5, b.node("Transpose", [h5], y + ".h5T", perm=[0, 1, 2, 4, 3])], y + ".Ch0")
    entering = b.node("Mul", [b.node("Unsqueeze", [from_start, b.axes(-1)], y + ".from_start5"), ch],
                      y + ".entering")
    yy = b.node("Add", [b.node("Add", [intra, entering], y + ".ssd"), b.node("Mul", [d, x5], y + ".Dx")],
                y + ".y5")
    yt = b.node("Transpose", [b.node("Reshape", [yy, _shape(b, 0, heads, t, p)], y + ".y4")], y + ".yT",
                perm=[0, 2, 1, 3])
    b.node("Reshape", [yt, _shape(b, 0, 0, -1)], b.output(y))
    # the state after the chunk: the last row of L and of the prefix decays
    last = b.init(f"last_{t}", np.array(t - 1, np.int64))
    total = b.node("Gather", [from_start, last], y + ".total", axis=3)  # [B, G, R]
    total5 = b.node("Unsqueeze", [total, b.axes(-1, -2)], y + ".total5")
    to_end = b.node("Gather", [decay, last], y + ".to_end", axis=3)  # [B, G, R, T(s)]
    xw = b.node("Mul", [xs5, b.node("Unsqueeze", [to_end, b.axes(-1)], y + ".to_end5")], y + ".xw")
    inputs = b.node("MatMul", [b.node("Transpose", [xw], y + ".xwT", perm=[0, 1, 2, 4, 3]),
                               b.node("Unsqueeze", [bg, b.axes(2)], y + ".Bg5")], y + ".inputs")  # [B,G,R,P,N]
    new = b.node("Add", [b.node("Mul", [total5, h5], y + ".decayed"), inputs], y + ".hnew")
    b.node("Reshape", [new, _shape(b, 0, heads, p, n)], h0 + "_out")


def emit_unrolled(b: _OnnxBuilder, node: Node, h0: str, t: int) -> None:
    """(x, dt_raw, B, C) over T tokens from ``h0``, the recurrence unrolled token by token; writes h0 + "_out"."""
    _, _, bb, cc = node.inputs
    y = node.outputs[0]
    heads, groups, r, p, n = _sizes(b, node)
    dt, xs, x4 = _chunk_inputs(b, node, y)
    a6, d = _const(b, node, "A", groups, r, 1, 1), _const(b, node, "D", groups, r, 1)
    dt6 = b.node("Reshape", [dt, _shape(b, 0, 0, groups, r, 1, 1)], y + ".dt6")
    decay = b.node("Exp", [b.node("Mul", [dt6, a6], y + ".dtA")], y + ".dA")  # [B, T, G, R, 1, 1]
    xs6 = b.node("Reshape", [xs, _shape(b, 0, 0, groups, r, p, 1)], y + ".xdt6")
    b6, c6 = (b.node("Reshape", [v, _shape(b, 0, 0, groups, 1, 1, n)], f"{y}.{tag}6") for v, tag in
              ((bb, "B"), (cc, "C")))
    inputs = b.node("Mul", [xs6, b6], y + ".dBx")  # [B, T, G, R, P, N]
    h = b.node("Reshape", [h0, _shape(b, 0, groups, r, p, n)], y + ".h5")
    states = []
    for k in range(t):
        at = b.init(f"index_{k}", np.array(k, np.int64))
        step = f"{y}.t{k}"
        h = b.node("Add", [b.node("Mul", [b.node("Gather", [decay, at], step + ".dA", axis=1), h], step + ".dAh"),
                           b.node("Gather", [inputs, at], step + ".dBx", axis=1)], step + ".h")
        states.append(b.node("Unsqueeze", [h, b.axes(1)], step + ".h6"))
    b.node("Reshape", [h, _shape(b, 0, heads, p, n)], h0 + "_out")
    hs = b.node("Concat", states, y + ".hs", axis=1)  # [B, T, G, R, P, N]
    yc = b.node("ReduceSum", [b.node("Mul", [hs, c6], y + ".hC"), b.axes(-1)], y + ".Ch", keepdims=0)
    dx = b.node("Mul", [d, b.node("Reshape", [x4, _shape(b, 0, 0, groups, r, p)], y + ".x5")], y + ".Dx")
    b.node("Reshape", [b.node("Add", [yc, dx], y + ".y5"), _shape(b, 0, 0, -1)], b.output(y))
