"""The mLSTM cell as ONNX: one decode step, and one prefill chunk in the chunkwise-parallel closed form.

Both mirror runtime/mlstm_float.py (shapes: q, k [.., H*dqk], v [.., H*dv], gates i, f [.., H]; state C
[B, H, dqk, dv], n [B, H, dqk], m [B, H]); only elementwise ops, MatMul and reductions, in float32.

The chunk form takes T tokens and the state entering them. With b_t = sum_{r<=t} log sigmoid(f_r) (a
product with a constant triangular matrix) and D_ts = sum_{s<r<=t} log sigmoid(f_r) (a product with a
constant band matrix, so there is no cancellation between two long sums), for s <= t:

    log d_ts = D_ts + i_s,    m_t = max(b_t + m_0, max_s log d_ts)           (= the stepped stabilizer)
    h_t = (q_t . C_t) / (max(|q_t . n_t|, exp(-m_t)) + eps), with q_t . C_t expanded as
          exp(b_t + m_0 - m_t) q_t . C_0 + sum_s exp(log d_ts - m_t) (q_t . k_s) v_s

and s > t masked out before the exponential. The state leaving the chunk is the last row: m_T = m_{T-1},
C = exp(b + m_0 - m_T) C_0 + sum_s exp(log d_{T-1,s} - m_T) k_s v_s^T (n likewise with k_s), so prefill
and stepping reach the same state, up to float summation order. No Loop, Scan or CumSum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgec.ir import Node

if TYPE_CHECKING:
    from edgec.targets.onnx.export import _OnnxBuilder

__all__ = ["MASKED_LOG", "emit_chunk", "emit_step"]

MASKED_LOG = 1e4  # subtracted from log d_ts for s > t: exp underflows to 0 (|log d| <= 30 T for gates capped at 15)


def _logsigmoid(b: _OnnxBuilder, x: str, out: str) -> str:
    """log sigmoid(x) = -softplus(-x), as the simulator's -logaddexp(0, -x)."""
    neg = b.node("Neg", [x], out + ".negf")
    return b.node("Neg", [b.node("Softplus", [neg], out + ".softplus")], out + ".logf")


def _heads(b: _OnnxBuilder, x: str, heads: int, lead: int, out: str) -> str:
    """[.., H*d] -> [.., H, d]."""
    shape = b.init(f"shape_{'0_' * lead}{heads}_m1", np.array([0] * lead + [heads, -1], np.int64))
    return b.node("Reshape", [x, shape], out)


def _denominator(b: _OnnxBuilder, qn: str, m: str, eps: float, out: str) -> str:
    """max(|q . n|, exp(-m)) + eps."""
    floor = b.node("Exp", [b.node("Neg", [m], out + ".negm")], out + ".expnegm")
    big = b.node("Max", [b.node("Abs", [qn], out + ".absqn"), floor], out + ".max")
    return b.node("Add", [big, b.const_f32(f"mlstm_eps_{eps:g}", eps)], out + ".den")


def emit_step(b: _OnnxBuilder, node: Node) -> None:
    """(q, k, v, i, f, C, n, m) -> (h, C', n', m'), as runtime/mlstm_float.mlstm_step."""
    q, k, v, i, f, c, n, m = node.inputs
    h_out, c_out, n_out, m_out = node.outputs
    heads, y = node.attrs["heads"], h_out
    qh, kh, vh = (_heads(b, x, heads, 1, f"{y}.{tag}") for x, tag in ((q, "qh"), (k, "kh"), (v, "vh")))
    logf_m = b.node("Add", [_logsigmoid(b, f, y), m], y + ".logf_m")
    m_new = b.node("Max", [logf_m, i], m_out)
    f_act = b.node("Exp", [b.node("Sub", [logf_m, m_new], y + ".flog")], y + ".fact")
    i_act = b.node("Exp", [b.node("Sub", [i, m_new], y + ".ilog")], y + ".iact")
    f3, i3 = (b.node("Unsqueeze", [g, b.axes(-1)], g + "3") for g in (f_act, i_act))
    f4, i4 = (b.node("Unsqueeze", [g, b.axes(-1)], g + "4") for g in (f3, i3))
    kv = b.node("Mul", [b.node("Unsqueeze", [kh, b.axes(-1)], y + ".k4"),
                        b.node("Unsqueeze", [vh, b.axes(-2)], y + ".v4")], y + ".kv")
    c_new = b.node("Add", [b.node("Mul", [f4, c], y + ".fC"), b.node("Mul", [i4, kv], y + ".ikv")], c_out)
    n_new = b.node("Add", [b.node("Mul", [f3, n], y + ".fn"), b.node("Mul", [i3, kh], y + ".ik")], n_out)
    dqk = b.graph.values[c].shape[-2]
    qs = b.node("Mul", [qh, b.const_f32(f"mlstm_qscale_{dqk}", np.float32(dqk ** -0.5))], y + ".qs")
    num = b.node("MatMul", [b.node("Unsqueeze", [qs, b.axes(-2)], y + ".qs4"), c_new], y + ".num")  # [B,H,1,dv]
    qn = b.node("ReduceSum", [b.node("Mul", [qs, n_new], y + ".qn_terms"), b.axes(-1)], y + ".qn", keepdims=1)
    den = _denominator(b, qn, b.node("Unsqueeze", [m_new, b.axes(-1)], y + ".m3"), node.attrs["eps"], y)
    hh = b.node("Div", [num, b.node("Unsqueeze", [den, b.axes(-1)], y + ".den4")], y + ".hh")
    b.node("Reshape", [hh, b.init("shape_0_m1", np.array([0, -1], np.int64))], b.output(h_out))


def _chunk_constants(b: _OnnxBuilder, t: int) -> tuple[str, str, str]:
    """[T, T] prefix sums (b_t = logf @ U), [T, T*T] band sums (D_ts) and the [T, T] causal mask."""
    upper = np.triu(np.ones((t, t), np.float32))  # U[s, t] = 1 for s <= t
    band = np.zeros((t, t, t), np.float32)  # band[r, t, s] = 1 for s < r <= t
    for r in range(t):
        for s in range(r):
            band[r, r:, s] = 1
    mask = np.where(np.tril(np.ones((t, t))) > 0, 0.0, -MASKED_LOG)
    return (b.const_f32(f"mlstm_prefix_{t}", upper), b.const_f32(f"mlstm_band_{t}", band.reshape(t, t * t)),
            b.const_f32(f"mlstm_mask_{t}", mask))


def emit_chunk(b: _OnnxBuilder, node: Node, states: tuple[str, ...], t: int) -> None:
    """(q, k, v, i, f) over T tokens from the state ``states`` = (C, n, m) -> h; writes each state + "_out"."""
    q, k, v, i, f = node.inputs
    y, (c0, n0, m0), heads = node.outputs[0], states, node.attrs["heads"]
    last = b.init(f"last_{t}", np.array(t - 1, np.int64))
    qh, kh, vh = (b.node("Transpose", [_heads(b, x, heads, 2, f"{y}.{tag}4")], f"{y}.{tag}", perm=[0, 2, 1, 3])
                  for x, tag in ((q, "qh"), (k, "kh"), (v, "vh")))  # [B, H, T, d]
    ih, fh = (b.node("Transpose", [g], f"{y}.{tag}", perm=[0, 2, 1]) for g, tag in ((i, "ih"), (f, "fh")))
    logf = _logsigmoid(b, fh, y)  # [B, H, T]
    prefix, band, mask = _chunk_constants(b, t)
    pair = b.node("Reshape", [b.node("MatMul", [logf, band], y + ".band"),
                              b.init(f"shape_0_0_{t}_{t}", np.array([0, 0, t, t], np.int64))], y + ".D")
    log_d = b.node("Add", [b.node("Add", [pair, b.node("Unsqueeze", [ih, b.axes(-2)], y + ".i4")], y + ".Di"),
                           mask], y + ".logd")  # [B, H, T(t), T(s)]
    m_inter = b.node("Add", [b.node("MatMul", [logf, prefix], y + ".cum"),
                             b.node("Unsqueeze", [m0, b.axes(-1)], y + ".m0_3")], y + ".m_inter")
    m_comb = b.node("Max", [m_inter, b.node("ReduceMax", [log_d], y + ".logd_max", axes=[-1], keepdims=0)],
                    y + ".m_comb")  # [B, H, T]
    m_comb4 = b.node("Unsqueeze", [m_comb, b.axes(-1)], y + ".m_comb4")
    d = b.node("Exp", [b.node("Sub", [log_d, m_comb4], y + ".logd_m")], y + ".d")
    carry = b.node("Exp", [b.node("Sub", [m_inter, m_comb], y + ".carry_log")], y + ".carry")  # [B, H, T]
    dqk = b.graph.values[q].shape[-1] // heads
    qs = b.node("Mul", [qh, b.const_f32(f"mlstm_qscale_{dqk}", np.float32(dqk ** -0.5))], y + ".qs")
    kt = b.node("Transpose", [kh], y + ".kT", perm=[0, 1, 3, 2])
    s = b.node("Mul", [b.node("MatMul", [qs, kt], y + ".qk"), d], y + ".S")  # [B, H, T, T]
    qg = b.node("Mul", [qs, b.node("Unsqueeze", [carry, b.axes(-1)], y + ".carry4")], y + ".qg")
    num = b.node("Add", [b.node("MatMul", [qg, c0], y + ".num_C"), b.node("MatMul", [s, vh], y + ".num_s")],
                 y + ".num")
    qn = b.node("Add", [b.node("MatMul", [qg, b.node("Unsqueeze", [n0, b.axes(-1)], y + ".n0_4")], y + ".qn_C"),
                        b.node("ReduceSum", [s, b.axes(-1)], y + ".qn_s", keepdims=1)], y + ".qn")  # [B, H, T, 1]
    hh = b.node("Div", [num, _denominator(b, qn, m_comb4, node.attrs["eps"], y)], y + ".hh")
    h = b.node("Transpose", [hh], y + ".hT", perm=[0, 2, 1, 3])
    b.node("Reshape", [h, b.init("shape_0_0_m1", np.array([0, 0, -1], np.int64))], b.output(y))
    # the state after the chunk: the last row
    b.node("Gather", [m_comb, last], m0 + "_out", axis=2)
    weight = b.node("Gather", [d, last], y + ".w_last", axis=2)  # [B, H, T]: exp(log d_{T-1,s} - m_T)
    decay = b.node("Gather", [carry, last], y + ".decay", axis=2)  # [B, H]
    kg = b.node("Mul", [kh, b.node("Unsqueeze", [weight, b.axes(-1)], y + ".w_last4")], y + ".kg")
    decay3 = b.node("Unsqueeze", [decay, b.axes(-1)], y + ".decay3")
    decay4 = b.node("Unsqueeze", [decay3, b.axes(-1)], y + ".decay4")
    kv = b.node("MatMul", [b.node("Transpose", [kg], y + ".kgT", perm=[0, 1, 3, 2]), vh], y + ".kv")
    b.node("Add", [b.node("Mul", [decay4, c0], y + ".decayC"), kv], c0 + "_out")
    b.node("Add", [b.node("Mul", [decay3, n0], y + ".decayn"),
                   b.node("ReduceSum", [kg, b.axes(2)], y + ".ksum", keepdims=0)], n0 + "_out")
