"""Integer LayerNorm over the last axis, with the exact fixed-iteration integer square root.

``layernorm_int(k, x)`` for integer codes x (``in_bits`` wide, scale S) of width d:

1. c = d x - sum(x) = d (x - mean), exact (no rounded mean);
2. block floating point per row (LayerNorm is scale-free): with b = bit_length(max |c|), c is shifted
   left by up = min(max(NORM_BITS - b, 0), lmax) (exact) or right by down = max(b - NORM_BITS, 0)
   (rounding: only low bits are lost), and eps_q = round(eps d^3 / S^2) alike by twice that; lmax =
   (EPS_BITS - bit_length(eps_q)) // 2 keeps eps below 2^EPS_BITS. So max |c| is near 2^NORM_BITS
   and the floor of the root costs at most 2^-(NORM_BITS-1), however narrow the row's spread;
3. ss = sum(c^2) + eps_q = d^3 (var + eps / S^2) 2^(2 up - 2 down);
4. r = max(isqrt(ss), 1), exact floor(sqrt) (the HLS's 32-step restoring root); 1/r ~ inv 2^-(s - 15)
   with inv = rshift_round(y, 15) in [2^15, 2^16], (y, s) = reciprocal_fixed(r);
5. c / r = xhat / sqrt(d), so with G = GUARD_BITS: out = saturate(rshift_round(requant(c inv, m,
   shift + s - 15 - G, 48) + bias, G), out_bits), m 2^-shift = sqrt(d) gamma / S_out (signed, per
   channel) and bias = round(beta / S_out 2^G): one rounding of the sum, not two.

Affine folded (gamma and beta None): one multiplier sqrt(d) / S_out, no bias; the next linear takes
gamma and beta. Error: half an output LSB plus 2^-(G+1) plus |out| (2^-15 (m) + 2^-16 (inv) +
2^-(NORM_BITS-1) (root)).

No Newton square root: isqrt is exact with a fixed trip count already, and I-ViT's 10 Newton steps from
2^16 are not: while the root is small they only halve their start (sum 100 gives 64, 2^14 gives 132).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgec.numerics.codes import int_codes
from edgec.numerics.fixed import bit_length, isqrt, reciprocal_fixed, requant, rshift_round, saturate
from edgec.runtime.int_ops import signed_multiplier

__all__ = ["EPS_BITS", "GUARD_BITS", "INV_BITS", "NORM_BITS", "LayerNormConstants", "build_layernorm", "layernorm_int"]

NORM_BITS = 20  # centred values below 2^20: sum(c^2) < d 2^40 <= 2^56 for d <= 2^16
INV_BITS = 16  # 1 / r to 16 bits: c * inv < 2^36, inside requant's 2^47
EPS_BITS = 60  # eps_q below 2^60, so ss < 2^62 (isqrt's and reciprocal_fixed's domain)
GUARD_BITS = 8  # the bias is added 8 bits below the output LSB
MAX_WIDTH = 1 << 16
MAX_IN_BITS = 32
MAX_OUT_BITS = 16


@dataclass(frozen=True)
class LayerNormConstants:
    """A LayerNorm's compile-time constants (see the module docstring): per-channel or scalar m, shift, bias."""

    d: int
    m: np.ndarray
    shift: np.ndarray
    bias: np.ndarray
    eps: int
    in_bits: int
    out_bits: int

    @property
    def max_up(self) -> int:
        """lmax: the largest left shift of a row that keeps eps * 4^shift below 2^EPS_BITS."""
        return (EPS_BITS - self.eps.bit_length()) // 2


def build_layernorm(d: int, in_scale: float, out_scale: float, eps: float, gamma: np.ndarray | None = None,
                    beta: np.ndarray | None = None, in_bits: int = 8, out_bits: int = 8) -> LayerNormConstants:
    """Constants of an integer LayerNorm of width ``d``; gamma and beta None folds the affine away."""
    if not 1 <= d <= MAX_WIDTH or not 2 <= in_bits <= MAX_IN_BITS or not 2 <= out_bits <= MAX_OUT_BITS:
        raise ValueError(f"layernorm: d in [1, {MAX_WIDTH}], in_bits in [2, {MAX_IN_BITS}] and out_bits in "
                         f"[2, {MAX_OUT_BITS}], got {d}, {in_bits} and {out_bits}")
    if not all(math.isfinite(s) and s > 0 for s in (in_scale, out_scale)) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"layernorm: scales must be finite and > 0 and eps >= 0, got {in_scale}, {out_scale}, {eps}")
    eps_q = round(eps * d**3 / in_scale**2)
    if eps_q >= 1 << EPS_BITS:
        raise ValueError(f"layernorm: eps {eps} is 2^{math.log2(eps_q):.0f} squared input codes "
                         f"(at most 2^{EPS_BITS}): use a coarser input scale")
    g = np.ones(1) if gamma is None else np.asarray(gamma, np.float64)
    b = np.zeros(1) if beta is None else np.asarray(beta, np.float64)
    if (gamma is None) != (beta is None) or (gamma is not None and (g.shape != (d,) or b.shape != (d,))):
        raise ValueError(f"layernorm: gamma and beta must both be None or both have shape ({d},)")
    if not (np.isfinite(g).all() and np.isfinite(b).all()):
        raise ValueError("layernorm: gamma and beta must be finite")
    try:
        m, shift = signed_multiplier(math.sqrt(d) * g / out_scale)
    except ValueError:
        raise ValueError("layernorm: sqrt(d) * gamma / out_scale out of the multiplier range") from None
    bias = np.rint(np.clip(b / out_scale, -(2.0**31), 2.0**31 - 1) * 2**GUARD_BITS).astype(np.int64)
    return LayerNormConstants(d, m, shift, bias, eps_q, in_bits, out_bits)


def layernorm_int(k: LayerNormConstants, x: np.ndarray) -> np.ndarray:
    """LayerNorm of integer codes over the last axis -> ``out_bits``-bit codes (see the module docstring)."""
    x = int_codes(x, k.in_bits, "layernorm")
    if x.ndim == 0 or x.shape[-1] != k.d:
        raise ValueError(f"layernorm: last axis must have width {k.d}, got shape {x.shape}")
    c = x * k.d - x.sum(axis=-1, keepdims=True)
    b = bit_length(np.abs(c).max(axis=-1, keepdims=True))
    up, down = np.clip(NORM_BITS - b, 0, k.max_up), np.maximum(b - NORM_BITS, 0)
    c = rshift_round(c << up, down)
    ss = (c * c).sum(axis=-1, keepdims=True) + rshift_round(np.int64(k.eps) << (2 * up), np.minimum(2 * down, 62))
    y, s = reciprocal_fixed(np.maximum(isqrt(ss), 1))
    drop = 31 - INV_BITS  # y in [2^30, 2^31] -> inv in [2^15, 2^16]; s - drop - GUARD_BITS >= 8
    out = requant(c * rshift_round(y, drop), k.m, np.minimum(k.shift + s - drop - GUARD_BITS, 62), 48)
    return saturate(rshift_round(out + k.bias, GUARD_BITS), k.out_bits)
