"""The closed set of IR ops, with group sets instead of scattered string checks."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ELEMENTWISE", "LINEAR_OPS", "RECURRENT", "STATEFUL_STEP", "Op"]


class Op(StrEnum):
    """Every op an edgec graph may contain. Recurrent primitives are first-class ops."""

    EMBED = "embed"  # (tokens) -> rows of weight `weight`
    RMSNORM = "rmsnorm"  # (x) -> x / rms(x) * weight        attrs: eps, groups (optional, default 1: the last
    #                      axis is normalized as `groups` equal slices, each by its own rms; then * weight)
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
    # Mamba-2 SSD (state space duality) with scalar decay per head. x [..,H*P], dt [..,H] raw (before dt_bias),
    # B, C [..,G*N] (group g shared by heads g*H/G .. (g+1)*H/G - 1), state h [B,H,P,N]. Weights A_log [H],
    # D [H], dt_bias [H]; attrs heads (H), groups (G), dt_min, dt_max (dt_max may be inf). Inside the op:
    # dt = clamp(softplus(dt + dt_bias), dt_min, dt_max), A = -exp(A_log);
    # h' = exp(dt*A) h + dt * x (outer) B;  y = C . h' + D * x  (the D skip term included).
    SSD_SCAN = "ssd_scan"  # (x [..,L,H*P], dt [..,L,H], B, C [..,L,G*N]) -> y [..,L,H*P], zero state   attrs: + chunk
    SSD_STEP = "ssd_step"  # (x [..,H*P], dt [..,H], B, C [..,G*N], h [B,H,P,N]) -> (y, h')
    HADAMARD = "hadamard"  # (x) -> H_n x / sqrt(n) on the last axis, zero-padded to n   attrs: plan
    SIGMOID = "sigmoid"
    SOFTCAP = "softcap"  # (x) -> cap * tanh(x / cap)          attrs: cap
    HEAD_LAYERNORM = "head_layernorm"  # (x[..., H*d]) -> LayerNorm of each head's d values * weight   attrs: heads, eps
    # mLSTM cell (xLSTM): q, k [.., H*dqk], v [.., H*dv], input and forget gate pre-activations [.., H].
    MLSTM_SEQUENCE = "mlstm_sequence"  # (q, k, v, i, f) -> h over a sequence, zero state   attrs: heads, eps, chunk
    MLSTM_STEP = "mlstm_step"  # (q, k, v, i, f, C, n, m) -> (h, C', n', m')                 attrs: heads, eps
    # Vision transformer with experts (ViT-MoE). Tokens are [B, T, D], the cls token first.
    NORMALIZE_IMAGE = "normalize_image"  # (u8 [B,H,W,C]) -> (pixel / 255 - mean) / std    attrs: mean, std
    PATCH_EMBED = "patch_embed"  # ([B,H,W,C]) -> [B, N, D]: conv weight [D,C,P,P] + bias, stride P, patches row-major
    CLS_POS = "cls_pos"  # ([B,N,D]) -> [B, N+1, D]: weight `cls` [1,1,D] prepended, then + `pos` [1,N+1,D]
    LAYERNORM = "layernorm"  # (x) -> (x - mean) / sqrt(var + eps) * weight + bias (both optional)   attrs: eps
    ATTN_SCORES = "attn_scores"  # (q, k [B,T,h*d]) -> q_h k_h^T * scale [B,h,T,T]         attrs: heads, scale
    SOFTMAX = "softmax"  # softmax over the last axis
    ATTN_CONTEXT = "attn_context"  # (probs [B,h,T,T], v [B,T,h*d]) -> probs @ v_h, heads concatenated  attrs: heads
    GELU = "gelu"  # x * Phi(x), the exact erf form
    ROUTE_LOGITS = "route_logits"  # (x [..,D]) -> x @ weight [D, E] (M3ViT's w_gate layout, no bias)
    TOPK = "topk"  # (p [..,E]) -> (values, i64 indices) [..,k], descending, ties to the lower index   attrs: k
    # (x [..,D], weights [..,k], indices [..,k]) -> sum_j weights_j * fc2(gelu(fc1(x))) of expert indices_j, in
    # slot order; weights fc1_weight [E,Hm,D], fc1_bias [E,Hm], fc2_weight [E,D,Hm], fc2_bias [E,D]
    MOE = "moe"
    CLS_POOL = "cls_pool"  # ([B,T,D]) -> [B, D], the cls token


ELEMENTWISE = frozenset({Op.SILU, Op.SOFTPLUS, Op.SIGMOID, Op.SOFTCAP, Op.MUL, Op.ADD, Op.GELU})
LINEAR_OPS = frozenset({Op.LINEAR, Op.CONV1D_CAUSAL, Op.CONV1D_STEP})
RECURRENT = frozenset({Op.CONV1D_CAUSAL, Op.CONV1D_STEP, Op.SELECTIVE_SCAN, Op.SCAN_STEP, Op.MLSTM_SEQUENCE,
                       Op.MLSTM_STEP, Op.SSD_SCAN, Op.SSD_STEP})
STATEFUL_STEP = frozenset({Op.CONV1D_STEP, Op.SCAN_STEP, Op.MLSTM_STEP, Op.SSD_STEP})
