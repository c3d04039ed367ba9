"""The integer SSD cell (Mamba-2) of the int profile: its constants and one token's update (all heads at once).

Codes in: x [.., H, P] int8 (scale s_x); dt [.., H] the int8 codes of in_proj's dt segment, before dt_bias
(scale s_raw); B, C [.., G, N] int8 (s_B, s_C), group g read by heads g*R .. g*R + R - 1 (R = H / G); the
state h [.., H, P, N] 32-bit codes (s_h = state_scales[node]). Per head, both functions of the dt code are
exact 256-entry tables, computed once in float64 from dt_h(c) = clamp(softplus(c s_raw + dt_bias_h), dt_min,
dt_max) and A_h = -exp(A_log_h):

    dt_q[h, c]  = round(dt_h(c) / s_dt[h])       DT_TABLE_BITS-bit codes, s_dt[h] = max_c dt_h(c) / (2^23 - 1)
    decay[h, c] = round(exp(dt_h(c) A_h) 2^30)   Q30, in [0, 2^30]

One token (every requant rounds half to even; the sums saturate):

    h' = sat32(requant(h, decay, 30) + requant(dt_q x B, bu_m[h], bu_shift[h]))    bu: s_dt[h] s_x s_B / s_h
    y  = sat_y(requant(C . h', y_m, y_shift) + requant(x, d_m[h], d_shift[h]))      y: s_C s_h / s_y, d: D_h s_x / s_y

the same arithmetic as the Mamba-1 scan (sim_int._scan_update) with scalar decay per head. The sequence
form runs this step token by token, so prefill equals decoding bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgec.ir import Node
from edgec.numerics.fixed import quantize_multiplier, requant, saturate
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.float_ref import softplus
from edgec.runtime.int_ops import signed_multiplier

__all__ = ["DT_TABLE_BITS", "SsdConstants", "ssd_step_int"]

DT_TABLE_BITS = 24  # dt codes of the per-head table: its smallest dt keeps >= 10 significant bits (mamba2-tiny: 12)
DECAY_BITS = 30  # exp(dt * A) in Q30


@dataclass(frozen=True)
class SsdConstants:
    """Integer constants of one SSD node (derived from scales and float dt_bias, A_log, D)."""

    dt_q: np.ndarray  # [H, 256]: dt codes by head and int8 dt code + 128
    decay: np.ndarray  # [H, 256]: exp(dt * A) in Q30
    bu_m: np.ndarray  # [H]: (dt_q x B) -> state code
    bu_shift: np.ndarray
    y_m: np.ndarray  # C . h' -> y code
    y_shift: np.ndarray
    d_m: np.ndarray  # [H], signed: D may be negative
    d_shift: np.ndarray
    y_bits: int

    @classmethod
    def build(cls, qm: QuantizedModel, node: Node) -> SsdConstants:
        x, dt, b, c = node.inputs[:4]
        s = qm.scales
        if qm.bits.get(dt) != 8:
            raise ValueError(f"{node.name}: the dt input %{dt} must be int8 codes (its tables have 256 entries), "
                             f"got {qm.bits.get(dt)} bits")
        s_h, s_y = qm.state_scales[node.name], s[node.outputs[0]]
        codes = np.arange(-128, 128, dtype=np.float64) * np.float64(s[dt])
        bias = qm.fparams[node.weights["dt_bias"]].astype(np.float64)
        dt_real = np.clip(softplus(codes[None, :] + bias[:, None]), node.attrs["dt_min"], node.attrs["dt_max"])
        a = -np.exp(qm.fparams[node.weights["A_log"]].astype(np.float64))
        top = np.maximum(dt_real.max(axis=1), 1e-12)
        s_dt = top / (2 ** (DT_TABLE_BITS - 1) - 1)
        dt_q = saturate(np.rint(dt_real / s_dt[:, None]).astype(np.int64), DT_TABLE_BITS)
        decay = np.rint(np.ldexp(np.exp(dt_real * a[:, None]), DECAY_BITS)).astype(np.int64)
        return cls(dt_q, decay, *quantize_multiplier(s_dt * s[x] * s[b] / s_h),
                   *quantize_multiplier(s[c] * s_h / s_y),
                   *signed_multiplier(qm.fparams[node.weights["D"]].astype(np.float64) * s[x] / s_y),
                   qm.bits[node.outputs[0]])


def ssd_step_int(k: SsdConstants, x, dt, b, c, h) -> tuple[np.ndarray, np.ndarray]:
    """One token for every head: x [.., H, P], dt [.., H] int8 codes, B, C [.., G, N], h [.., H, P, N] ->
    (y [.., H, P] codes, h')."""
    heads, groups = x.shape[-2], b.shape[-2]
    bh, ch = (np.repeat(v, heads // groups, axis=-2) for v in (b, c))  # [.., H, N]: head h reads group h // R
    code = np.asarray(dt, dtype=np.int64) + 128
    head = np.arange(heads)
    dt_q, decay = k.dt_q[head, code], k.decay[head, code]  # [.., H]
    bu = requant((dt_q[..., None] * x)[..., None] * bh[..., None, :], k.bu_m[:, None, None], k.bu_shift[:, None, None],
                 32)
    h = saturate(requant(h, decay[..., None, None], DECAY_BITS, 32) + bu, 32)  # decay: a per-head Q30 multiplier
    # C . h' in float64 is exact: |h'| < 2^31, |C| <= 2^7 and N <= 2^10 keep every partial sum below 2^48
    acc = np.matmul(h.astype(np.float64), ch[..., None].astype(np.float64))[..., 0].astype(np.int64)
    y = requant(acc, k.y_m, k.y_shift, 32) + requant(x, k.d_m[:, None], k.d_shift[:, None], 32)
    return saturate(y, k.y_bits), h
