"""The closed set of IR ops, with group sets instead of scattered string checks."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ELEMENTWISE", "LINEAR_OPS", "RECURRENT", "STATEFUL_STEP", "Op"]


class Op(StrEnum):
    """Every op an edgec graph may contain. Recurrent primitives are first-class ops."""

    EMBED = "embed"  # (tokens) -> rows of weight `weight`
    RMSNORM = "rmsnorm"  # (x) -> x / rms(x) * weight        attrs: eps
    LINEAR = "linear"  # (x) -> x @ weight.T (+ bias)       attrs: segments (output split sizes)
    SPLIT = "split"  # (x) -> parts along the last axis   attrs: sizes
    CONV1D_CAUSAL = "conv1d_causal"  # (x[B,L,D]) -> depthwise causal conv, zero history
    CONV1D_STEP = "conv1d_step"  # (x[B,D], state[B,D,K-1]) -> (y, new state)
    SILU = "silu"
    SOFTPLUS = "softplus"
    SELECTIVE_SCAN = "selective_scan"  # (u, dt, B, C) -> y over a sequence, zero initial state
    SCAN_STEP = "scan_step"  # (u, dt, B, C, h[B,D,N]) -> (y, new h)
    MUL = "mul"
    ADD = "add"
    HADAMARD = "hadamard"  # (x) -> H_n x / sqrt(n) on the last axis, zero-padded to n   attrs: plan
    SIGMOID = "sigmoid"
    SOFTCAP = "softcap"  # (x) -> cap * tanh(x / cap)          attrs: cap
    HEAD_LAYERNORM = "head_layernorm"  # (x[..., H*d]) -> LayerNorm of each head's d values * weight   attrs: heads, eps
    # mLSTM cell (xLSTM): q, k [.., H*dqk], v [.., H*dv], input and forget gate pre-activations [.., H].
    MLSTM_SEQUENCE = "mlstm_sequence"  # (q, k, v, i, f) -> h over a sequence, zero state   attrs: heads, eps, chunk
    MLSTM_STEP = "mlstm_step"  # (q, k, v, i, f, C, n, m) -> (h, C', n', m')                 attrs: heads, eps


ELEMENTWISE = frozenset({Op.SILU, Op.SOFTPLUS, Op.SIGMOID, Op.SOFTCAP, Op.MUL, Op.ADD})
LINEAR_OPS = frozenset({Op.LINEAR, Op.CONV1D_CAUSAL, Op.CONV1D_STEP})
RECURRENT = frozenset({Op.CONV1D_CAUSAL, Op.CONV1D_STEP, Op.SELECTIVE_SCAN, Op.SCAN_STEP, Op.MLSTM_SEQUENCE,
                       Op.MLSTM_STEP})
STATEFUL_STEP = frozenset({Op.CONV1D_STEP, Op.SCAN_STEP, Op.MLSTM_STEP})
