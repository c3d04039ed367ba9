"""The integer arithmetic of edgec, defined once.

Every integer the simulator produces comes from these functions; ``hls/include/edgec_numerics.h``
mirrors them line by line. All inputs and outputs are ``np.int64`` arrays (or Python ints).

Rounding rule (everywhere): round half to even, the rule of ONNX QuantizeLinear and TensorRT.
Saturation: explicit, to a signed width given in bits.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EXP2_FRAC_BITS",
    "EXP2_POLY_Q30",
    "LOG2E",
    "MULT_BITS",
    "RECIP_C0_Q30",
    "RECIP_C1_Q30",
    "RECIP_FRAC_BITS",
    "RECIP_ITERATIONS",
    "REQUANT_INPUT_BITS",
    "bit_length",
    "exp2_fixed",
    "exp2_int",
    "float_to_fixed",
    "isqrt",
    "quantize_multiplier",
    "reciprocal_fixed",
    "requant",
    "rshift_round",
    "saturate",
]

#: log2(e): natural-log exponents become exp2 arguments (compile-time constants only).
LOG2E = 1.0 / math.log(2.0)
#: Multipliers are normalised into [2^(MULT_BITS-1), 2^MULT_BITS): 15 bits, relative error <= 2^-15.
MULT_BITS = 15
#: requant() accepts |x| < 2^47 so that x * multiplier stays inside int64 (and an HLS ap_int<64>).
REQUANT_INPUT_BITS = 47
#: exp2_fixed() works in Q2.30: its polynomial and its result carry 30 fractional bits.
EXP2_FRAC_BITS = 30
#: 2^x on [-1, 0] as a degree-5 polynomial, highest power first, Q30 integers (max error 6.9e-8).
#: A Chebyshev-node least-squares fit with both ends pinned exactly: p(0) = 2^30 (no decay when
#: dt = 0) and p(-1) = 2^29. Pasted as integers so every machine and the HLS use the same constants.
EXP2_POLY_Q30 = (1017670, 9893646, 59383922, 257894831, 744257797, 1073741824)
#: reciprocal_fixed(): a Q30 mantissa, refined by RECIP_ITERATIONS Newton steps from the linear start
#: 48/17 - 32/17 a (relative error <= 1/17 on a in [1/2, 1)); three steps reach Q30 (error^8 < 2^-32).
RECIP_FRAC_BITS = 30
RECIP_ITERATIONS = 3
RECIP_C0_Q30 = 3031741621  # round(48/17 * 2^30)
RECIP_C1_Q30 = 2021161080  # round(32/17 * 2^30)


def rshift_round(x: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """x / 2^shift rounded half to even; ``shift`` in [0, 62] (scalar or broadcastable array).

    With q0 = x >> shift (floor) and half = 2^(shift-1): floor((x + half - 1 + (q0 & 1)) / 2^shift)
    rounds below-half down, above-half up, and an exact half up only when q0 is odd.
    For shift = 0 both corrections vanish and x is returned unchanged.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if (shift < 0).any():
        raise ValueError("rshift_round: negative shift")
    nonzero = (shift > 0).astype(np.int64)
    half = (np.int64(1) << shift) >> 1
    return (x + half - nonzero + ((x >> shift) & nonzero)) >> shift


def saturate(x: np.ndarray | int, bits: int) -> np.ndarray:
    """Clamp to the signed range of ``bits`` bits: [-2^(bits-1), 2^(bits-1) - 1]."""
    lo, hi = np.int64(-(1 << (bits - 1))), np.int64((1 << (bits - 1)) - 1)
    return np.minimum(np.maximum(np.asarray(x, dtype=np.int64), lo), hi)


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Split a positive real multiplier into (m, shift) with real ~= m * 2^-shift.

    m lies in [2^(MULT_BITS-1), 2^MULT_BITS); shift is in [0, 62]. Computed in float64 with
    frexp, exact and identical on every IEEE machine.
    """
    real = np.asarray(real, dtype=np.float64)
    if np.any(~np.isfinite(real)) or np.any(real <= 0):
        raise ValueError("quantize_multiplier: multiplier must be finite and > 0")
    mant, exp = np.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    m = np.rint(mant * (1 << MULT_BITS)).astype(np.int64)
    shift = (MULT_BITS - exp).astype(np.int64)
    carry = m == (1 << MULT_BITS)
    m = np.where(carry, m >> 1, m)
    shift = np.where(carry, shift - 1, shift)
    if np.any(shift < 0) or np.any(shift > 62):
        raise ValueError(f"quantize_multiplier: multiplier {real.max():g} out of the representable range")
    return m, shift


def requant(x: np.ndarray, m: np.ndarray | int, shift: np.ndarray | int, bits: int = 8) -> np.ndarray:
    """The one requantization step: saturate(round_half_even(x * m / 2^shift), bits)."""
    x = np.asarray(x, dtype=np.int64)
    limit = 1 << REQUANT_INPUT_BITS
    if x.size and (int(x.max()) >= limit or int(x.min()) <= -limit):
        raise OverflowError(f"requant: input exceeds 2^{REQUANT_INPUT_BITS}")
    return saturate(rshift_round(x * np.asarray(m, dtype=np.int64), shift), bits)


def isqrt(x: np.ndarray) -> np.ndarray:
    """Exact floor(sqrt(x)) of non-negative int64 values below 2^62."""
    x = np.asarray(x, dtype=np.int64)
    r = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    # float64 sqrt is within one unit of the true root here; two fixed corrections make it exact.
    for _ in range(2):
        r = np.where(r * r > x, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= x, r + 1, r)
    return r


def bit_length(x: np.ndarray) -> np.ndarray:
    """The bit length of non-negative int64 values (0 for 0), exact for every value below 2^63."""
    x = np.asarray(x, dtype=np.int64)
    b = np.where(x > 0, np.floor(np.log2(np.maximum(x, 1).astype(np.float64))).astype(np.int64) + 1, 0)
    # float64 rounds values near 2^k up or down by one bit length: two fixed corrections make it exact.
    b = np.where((b > 0) & ((x >> np.maximum(b - 1, 0)) == 0), b - 1, b)
    return np.where((x >> np.minimum(b, 62)) > 0, b + 1, b)


def reciprocal_fixed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 / x for int64 x in [1, 2^62): a mantissa y in [2^30, 2^31] and a shift s with 1/x ~= y * 2^-s.

    x = a * 2^b with a in [1/2, 1) (b = bit length); a is taken to 31 bits (xn = floor(a * 2^31)),
    y approximates 2^30 / a by RECIP_ITERATIONS Newton steps y += y (1 - a y) with rshift_round after
    each product (fixed iteration count, no division), and s = b + 30. Relative error below 2^-29.
    """
    x = np.asarray(x, dtype=np.int64)
    if np.any(x < 1) or np.any(x >= np.int64(1) << 62):
        raise ValueError("reciprocal_fixed: argument must be in [1, 2^62)")
    b = bit_length(x)
    xn = np.where(b >= 31, x >> np.maximum(b - 31, 0), x << np.maximum(31 - b, 0))  # in [2^30, 2^31)
    y = RECIP_C0_Q30 - rshift_round(RECIP_C1_Q30 * xn, 31)
    for _ in range(RECIP_ITERATIONS):
        e = (np.int64(1) << RECIP_FRAC_BITS) - rshift_round(xn * y, 31)  # 1 - a y, Q30
        y = y + rshift_round(y * e, RECIP_FRAC_BITS)
    return y, b + RECIP_FRAC_BITS


def exp2_fixed(t: np.ndarray, frac_bits: int) -> np.ndarray:
    """2^(t / 2^frac_bits) for t <= 0, as a Q30 integer in [0, 2^30].

    t = -(z + f) with integer z >= 0 and f in [0, 1): 2^t = 2^(-f) >> z, where 2^(-f) comes from
    EXP2_POLY_Q30 evaluated by Horner with rshift_round after each product (fixed iteration count).
    """
    t = np.asarray(t, dtype=np.int64)
    if np.any(t > 0):
        raise ValueError("exp2_fixed: argument must be <= 0")
    z = (-t) >> frac_bits  # integer part of -t
    frac = t + (z << frac_bits)  # in (-1, 0] * 2^frac_bits
    if frac_bits <= EXP2_FRAC_BITS:
        f30 = frac << (EXP2_FRAC_BITS - frac_bits)
    else:
        f30 = rshift_round(frac, frac_bits - EXP2_FRAC_BITS)
    acc = np.full_like(t, EXP2_POLY_Q30[0])
    for c in EXP2_POLY_Q30[1:]:
        acc = rshift_round(acc * f30, EXP2_FRAC_BITS) + c
    acc = np.minimum(acc, np.int64(1) << EXP2_FRAC_BITS)
    return rshift_round(acc, np.minimum(z, 62))


def exp2_int(e: np.ndarray, frac_bits: int, cap_bits: int = 61) -> np.ndarray:
    """round(2^(e / 2^frac_bits)) for any signed fixed-point exponent ``e``, saturated to 2^cap_bits.

    With z = ceil(e / 2^frac_bits) and the fraction e - z * 2^frac_bits in (-1, 0]: the Q30 mantissa
    exp2_fixed(fraction) in (2^29, 2^30] is shifted left by z - 30, or right (rounding half to even)
    by 30 - z. ``cap_bits`` is at most 62; exponents above it give 2^cap_bits.
    """
    e = np.asarray(e, dtype=np.int64)
    z = -((-e) >> frac_bits)  # ceil
    mant = exp2_fixed(e - (z << frac_bits), frac_bits)
    cap = np.int64(1) << cap_bits
    up = np.clip(z - EXP2_FRAC_BITS, 0, cap_bits - EXP2_FRAC_BITS + 1)
    down = np.clip(EXP2_FRAC_BITS - z, 0, 62)
    return np.minimum(rshift_round(mant << up, down), cap)


def float_to_fixed(x: float, frac_bits: int) -> int:
    """Round a real constant to the nearest fixed-point integer with ``frac_bits`` fraction bits."""
    return round(math.ldexp(x, frac_bits))
