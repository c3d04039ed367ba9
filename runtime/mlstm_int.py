"""The integer mLSTM cell of the int profile: its constants and one token's update (all heads at once).

Gates and the stabilizer m live in log2 units (Q20); the stabilized exponentials go through the one
``exp2_fixed``; the denominator max(|q.n|, exp(-m)) + eps is formed exactly and inverted by the
fixed-iteration ``reciprocal_fixed``. hls/include/edgec_kernels.h mirrors ``mlstm_step_int``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgec.ir import Node
from edgec.numerics.fixed import (
    LOG2E,
    REQUANT_INPUT_BITS,
    bit_length,
    exp2_fixed,
    exp2_int,
    quantize_multiplier,
    reciprocal_fixed,
    requant,
    rshift_round,
    saturate,
)
from edgec.numerics.lut import build_interp_lut, interp_lookup
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.mlstm_float import logsigmoid

__all__ = ["DEN_BITS", "KNOT_BITS", "LOG_FRAC_BITS", "MlstmConstants", "mlstm_step_int"]

LOG_FRAC_BITS = 20  # mLSTM gates and stabilizer m in log2 units, Q20 (|m| <= cap * log2(e) < 2^6)
KNOT_BITS = 10  # interpolated tables of a 16-bit input: 1025 knots, 64 codes apart
DEN_BITS = 60  # the mLSTM denominator is formed below 2^60 (reciprocal_fixed takes < 2^62)


def _unbounded_multiplier(real: float) -> tuple[int, int]:
    """quantize_multiplier for a real up to 2^47, whose shift may then be negative."""
    m, shift = quantize_multiplier(real / 2.0**32)
    return int(m), int(shift) - 32


@dataclass(frozen=True)
class MlstmConstants:
    """Integer constants of one mLSTM cell (derived from scales, the cell's eps and its head width).

    Gates and the stabilizer m live in log2 units, Q20. C and n are 32-bit codes (scales
    state_scales["node/C"], ["node/n"]). The denominator max(|q.n|, exp(-m)) + eps is formed in units
    of the q.n accumulator times 2^guard, where exp(-m) = 2^(log_inv_qn - m) is an exp2_int.
    """

    i_m: int  # i code -> Q20 log2 units
    i_shift: int
    logf: np.ndarray  # knots: f code -> logsigmoid(f) * log2(e), Q20
    kv_m: int  # (k v) * i_act(Q30) -> C code
    kv_shift: int
    k_m: int  # k * i_act(Q30) -> n code
    k_shift: int
    guard: int  # extra bits of |q.n| in the denominator
    log_inv_qn: int  # (log2(1 / s_qn) + guard) in Q20
    eps: int  # eps / s_qn * 2^guard
    r_m: int  # num / den -> h code: s_C / (s_n * s_h) = r_m * 2^-r_shift (r_shift may be negative)
    r_shift: int
    gate_bits: int
    h_bits: int

    @classmethod
    def build(cls, qm: QuantizedModel, node: Node) -> MlstmConstants:
        q, k, v, i, f = node.inputs[:5]
        s = qm.scales
        s_c, s_n = qm.state_scales[node.name + "/C"], qm.state_scales[node.name + "/n"]
        dqk = qm.graphs["prefill"].values[q].shape[-1] // node.attrs["heads"]
        s_qn = s[q] * s_n / math.sqrt(dqk)
        qn_bits = 7 + 31 + max(dqk - 1, 1).bit_length()  # |q.n| < 2^qn_bits for int8 q, 32-bit n
        guard = max(0, DEN_BITS - 1 - qn_bits)
        gate_bits = qm.bits[f]
        one = 1 << LOG_FRAC_BITS
        return cls(*quantize_multiplier(s[i] * LOG2E * one),
                   build_interp_lut(lambda x: logsigmoid(x) * LOG2E, s[f], gate_bits, 1.0 / one, 32, KNOT_BITS),
                   *quantize_multiplier(s[k] * s[v] / s_c / 2.0**30), *quantize_multiplier(s[k] / s_n / 2.0**30),
                   guard, round((math.log2(1 / s_qn) + guard) * one),
                   min(round(node.attrs["eps"] / s_qn * 2.0**guard), 1 << (DEN_BITS - 1)),
                   *_unbounded_multiplier(s_c / (s_n * s[node.outputs[0]])), gate_bits, qm.bits[node.outputs[0]])


def mlstm_step_int(kc: MlstmConstants, q, k, v, i, f, c, n, m) -> tuple[np.ndarray, ...]:
    """One token of the integer mLSTM cell for every head: (h, C', n', m').

    q, k [B, H, dqk] and v [B, H, dv] int8 codes; i, f [B, H] gate codes; c [B, H, dqk, dv] and
    n [B, H, dqk] 32-bit codes; m [B, H] in Q20 log2 units. Returns h [B, H, dv] codes.
    """
    i2 = requant(i, kc.i_m, kc.i_shift, 32)
    lf2 = interp_lookup(kc.logf, f, kc.gate_bits)
    m_new = np.maximum(lf2 + m, i2)
    f_act = exp2_fixed(lf2 + m - m_new, LOG_FRAC_BITS)[..., None]  # Q30
    i_act = exp2_fixed(i2 - m_new, LOG_FRAC_BITS)[..., None]
    n = saturate(requant(n, f_act, 30, 32) + requant(k * i_act, kc.k_m, kc.k_shift, 32), 32)
    kv = k[..., :, None] * v[..., None, :]
    c = saturate(requant(c, f_act[..., None], 30, 32) + requant(kv * i_act[..., None], kc.kv_m, kc.kv_shift, 32), 32)
    num = np.einsum("bhd,bhde->bhe", q.astype(np.float64), c.astype(np.float64)).astype(np.int64)  # exact: < 2^53
    qn = np.einsum("bhd,bhd->bh", q, n)
    floor = exp2_int(kc.log_inv_qn - m_new, LOG_FRAC_BITS, DEN_BITS - 1)
    den = np.maximum(np.maximum(np.abs(qn) << kc.guard, floor) + kc.eps, 1)
    y, shift = reciprocal_fixed(den)
    # h = num * y * 2^-shift * 2^guard * r: the mantissa to 15 bits (|num| * y15 < 2^62), then a first
    # shift that brings the product below 2^47 and a second one after the multiplier r.
    y15 = rshift_round(y, 16)[..., None]
    total = (shift - 16 - kc.guard + kc.r_shift)[..., None]
    down = np.maximum(total, 0)
    p = num * y15
    first = np.clip(bit_length(np.abs(p)) - REQUANT_INPUT_BITS, 0, down)
    prod = saturate(rshift_round(p, first), REQUANT_INPUT_BITS + 1) * kc.r_m
    rest = down - first
    h = np.where(rest > 62, 0, rshift_round(prod, np.minimum(rest, 62)))
    # a denominator below the accumulator's unit (only with a degenerate eps): shift left, saturating
    h = np.where(total < 0, saturate(prod, REQUANT_INPUT_BITS + 1) << np.minimum(-total, 15), h)
    return saturate(h, kc.h_bits), c, n, m_new


