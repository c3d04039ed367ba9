"""Integer softmax over the last axis: four exp variants, one normalization.

``softmax_int(k, q)`` for integer scores q (``in_bits`` wide, scale S): d = q - max(q) <= 0 (exact);
e = k.exp(d), an integer proportional to exp(d * S) with e(0) > 0 and e < 2^31 (its scale cancels);
p = e * P / sum(e) rounded, with P = 2^out_bits - 1: the output scale is 1 / P, i.e. 1/255 for the
uint8 attention probabilities and 1/65535 for the router's 16-bit weights.

Why 1/(2^b - 1) and not 2^-b: probability 1 (one dominant score: cls attention, a confident router)
is the code P itself instead of saturating one LSB short, so every output is within half an LSB
(plus the exp variant's error) over the whole of [0, 1]. A power-of-two scale would buy nothing: the
next product (P.V, the expert mixture) is requantized through a 15-bit multiplier anyway. Rows longer
than 2P can round to all zeros when nearly uniform (uint8: more than 510 scores): those need
out_bits >= log2(2 N).

Exp variants (``SOFTMAX_VARIANTS``, chosen by name in ``build_softmax``):

- ``ibert``: I-BERT's i-exp: range reduction by ln2, exp(r) ~ 0.35815 r^2 + 0.96963 r + 1, 2^-q by a
  shift; n = 20 (the clamp at 2^-n), lowered when the input scale is so fine that c << n would leave
  32 bits (issue 9: n <= 20 so that everything stays inside 32 bits).
- ``shiftmax``: I-ViT's Shiftmax: x log2(e) ~ x + x/2 - x/16 by shifts, 2^r ~ 1 + r/2 on r in (-1, 0],
  2^-q by a shift; n = 15 as I-ViT.
- ``lut``: a 256-entry table over the max-subtracted score d in [-255, 0], round(exp(d S) 2^20):
  exact to the table's rounding (int8 scores; wider ones only if the table reaches 0).
- ``exp2``: edgec's exp2_fixed (degree-5 Q30 polynomial, error < 7e-8) of d * S * log2(e), the
  slope a 30-bit constant: any input width up to 32 bits.

Normalization (all variants): one reciprocal_fixed per row, 1/sum ~ y 2^-s (relative error < 2^-29);
mult = round_half_even(y P / 2^R) per row, p = min(round_half_even(e * mult / 2^(s - R)), P) per
element, with the compile-time R = max(0, e_bits + out_bits - 31) keeping e * mult below 2^62. So
|p - e P / sum| <= 1/2 + P 2^-28: p is the correctly rounded (half to even) e P / sum except within
P 2^-28 of a half. p is monotone non-decreasing in e, hence in q, and never exceeds P. (I-BERT and I-ViT
normalize by floor(2^32 / sum), whose resolution is 1 / factor: replaced here, so that the variants
differ only in their exp.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgec.numerics.codes import int_codes
from edgec.numerics.fixed import EXP2_FRAC_BITS, LOG2E, exp2_fixed, float_to_fixed, reciprocal_fixed, rshift_round
from edgec.numerics.lut import build_lut, lookup

__all__ = [
    "EXP_BITS",
    "IBERT_EXP_POLY",
    "IBERT_N",
    "LN2",
    "LUT_EXP_BITS",
    "MAX_OUT_BITS",
    "MIN_N",
    "SHIFTMAX_N",
    "SLOPE_BITS",
    "SOFTMAX_VARIANTS",
    "Exp2Exp",
    "IbertExp",
    "LutExp",
    "ShiftExp",
    "SoftmaxConstants",
    "build_softmax",
    "softmax_int",
    "tabulated",
]

LN2 = math.log(2.0)
#: I-BERT's exp(r) ~ A r^2 + B r + C on r in (-ln2, 0] (kssteven418/I-BERT, IntSoftmax.coef).
IBERT_EXP_POLY = (0.35815147, 0.96963238, 1.0)
IBERT_N = 20  # I-BERT's n: inputs below n octaves are clamped to 2^-n; issue 9 caps it at 20
SHIFTMAX_N = 15  # I-ViT's n for Shiftmax
MIN_N = 15  # an n lowered below this (to fit 32 bits) is refused when the clamp at 2^-n is reachable
EXP_BITS = 31  # every variant's e lies in [1, 2^31): a 32-bit signed value
LUT_EXP_BITS = 20  # 'lut' entries: round(exp(d S) * 2^20)
SLOPE_BITS = 30  # 'exp2': S log2(e) as a 30-bit fixed-point constant
MAX_IN_BITS = 32
MAX_OUT_BITS = 24
SOFTMAX_VARIANTS = ("ibert", "shiftmax", "lut", "exp2")


def _octaves(x: np.ndarray, x0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """x = q * x0 + r for an exponent x <= 0 in octave steps x0 < 0: x clamped to n * x0 first, then
    q = x // x0 in [0, n] (both operands negative: C's truncating division gives the same) and r in (x0, 0]."""
    x = np.maximum(x, n * x0)
    q = x // x0
    return q, x - q * x0


def _choose_n(what: str, n: int | None, cap: int, head_bits: int, exp_bits: int, x0: int, x_min: int) -> int:
    """The shift n: the given one, or ``cap`` lowered until head << n stays below 2^exp_bits.

    Refused: an n that does not fit, and an n below MIN_N whose clamp (x <= n * x0) the lowest exponent
    ``x_min`` can reach, since 2^-n of every clamped element then shows in the probabilities.
    """
    fit = exp_bits - head_bits
    if n is None:
        n = min(cap, fit)
    if not 1 <= n <= fit:
        raise ValueError(f"{what}: n={n} does not fit {exp_bits} bits at this input scale (n <= {fit}); "
                         "use a coarser input scale")
    if n < MIN_N and x_min < n * x0:
        raise ValueError(f"{what}: the input scale is too fine for 32 bits (n={n} < {MIN_N} with a reachable "
                         "clamp at 2^-n): requantize the scores to 8 bits")
    return n


@dataclass(frozen=True)
class IbertExp:
    """I-BERT's i-exp: d = q x0 + r with x0 = floor(-ln2 / S); exp(r S) ~ A S^2 z with
    z = (r + b) r + c, b = floor(B / (A S)), c = floor(C / (A S^2)) (I-BERT's floors); e = z << (n - q).

    On r in (x0, 0], z lies in [1, c] (b > |r|), so e <= c << n < 2^31. Domain: S in (0, ln2].
    """

    x0: int
    b: int
    c: int
    n: int

    @classmethod
    def build(cls, in_scale: float, in_bits: int, n: int | None = None) -> IbertExp:
        if not 0 < in_scale <= LN2:
            raise ValueError(f"ibert: input scale {in_scale} outside (0, ln2]")
        a, b, c = IBERT_EXP_POLY
        x0, ci = math.floor(-LN2 / in_scale), math.floor(c / a / in_scale**2)
        n = _choose_n("ibert", n, IBERT_N, ci.bit_length(), EXP_BITS, x0, 1 - (1 << in_bits))
        return cls(x0, math.floor(b / a / in_scale), ci, n)

    @property
    def bits(self) -> int:
        return self.c.bit_length() + self.n

    def __call__(self, d: np.ndarray) -> np.ndarray:
        q, r = _octaves(d, self.x0, self.n)
        return ((r + self.b) * r + self.c) << (self.n - q)


@dataclass(frozen=True)
class ShiftExp:
    """I-ViT's shift exp: x = d + (d >> 1) - (d >> 4) ~ d log2(e); x = q x0 + r with x0 = floor(-1 / S)
    (one octave); 2^(r / |x0|) ~ 1 + r / (2 |x0|), so e = floor((r / 2 - x0) 2^(n - q)), computed as
    ((r - 2 x0) << (n - q)) >> 1: I-ViT's value, in (|x0| / 2, |x0|] << (n - q).

    Domain: S in (0, 1]; ``d_min`` is the lowest input it will see; n defaults to ``cap`` lowered until
    e < 2^exp_bits.
    """

    x0: int
    n: int

    @classmethod
    def build(cls, in_scale: float, d_min: int, n: int | None = None, cap: int = SHIFTMAX_N,
              exp_bits: int = EXP_BITS, what: str = "shiftmax") -> ShiftExp:
        if not 0 < in_scale <= 1:
            raise ValueError(f"{what}: input scale {in_scale} outside (0, 1]")
        x0 = math.floor(-1.0 / in_scale)
        x_min = d_min + (d_min >> 1) - (d_min >> 4)
        return cls(x0, _choose_n(what, n, cap, (-x0).bit_length(), exp_bits, x0, x_min))

    @property
    def bits(self) -> int:
        return (-self.x0).bit_length() + self.n

    def __call__(self, d: np.ndarray) -> np.ndarray:
        q, r = _octaves(d + (d >> 1) - (d >> 4), self.x0, self.n)
        return ((r - 2 * self.x0) << (self.n - q)) >> 1


@dataclass(frozen=True)
class LutExp:
    """round_half_even(exp(d S) 2^20) for d in [-255, 0] from 256 entries, read as lut.lookup at the int8
    code d + 127; scores lower than -255 (only with inputs wider than 8 bits) read entry -255, which
    must then be 0 (else the variant is refused)."""

    table: np.ndarray
    bits: int = LUT_EXP_BITS + 1

    @classmethod
    def build(cls, in_scale: float, in_bits: int) -> LutExp:
        table = build_lut(lambda x: np.exp(x - 127 * in_scale), in_scale, 2.0**-LUT_EXP_BITS, LUT_EXP_BITS + 2)
        if in_bits > 8 and table[0] != 0:
            raise ValueError(f"lut: {in_bits}-bit scores at scale {in_scale} reach below the 256-entry table "
                             "(exp(-255 S) does not round to 0): use 8-bit scores or the exp2 variant")
        return cls(table)

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return lookup(self.table, np.maximum(d, -255) + 127)


@dataclass(frozen=True)
class Exp2Exp:
    """exp(d S) = 2^(d S log2 e) as exp2_fixed(d * m, frac) with S log2(e) = m 2^-frac, m a 30-bit constant
    in [2^29, 2^30] (so |d m| < 2^62 for 32-bit scores): Q30 in [0, 2^30], 2^30 at d = 0. Error: exp2_fixed's
    7e-8 plus the slope's relative 2^-30 (a 15-bit multiplier's 2^-16 would cost an LSB of 16-bit outputs)."""

    m: int
    frac: int
    bits: ClassVar[int] = EXP2_FRAC_BITS + 1

    @classmethod
    def build(cls, in_scale: float) -> Exp2Exp:
        frac = SLOPE_BITS - math.frexp(in_scale * LOG2E)[1]
        if not 0 <= frac <= 62:
            raise ValueError(f"exp2: input scale {in_scale} out of the 30-bit slope's range")
        return cls(float_to_fixed(in_scale * LOG2E, frac), frac)

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return exp2_fixed(d * self.m, self.frac)


@dataclass(frozen=True)
class SoftmaxConstants:
    """A softmax's compile-time constants: the exp variant, the score width and the output width."""

    exp: IbertExp | ShiftExp | LutExp | Exp2Exp
    in_bits: int
    out_bits: int

    @property
    def norm_shift(self) -> int:
        """R: the per-row multiplier y * P is rounded by 2^R so that e * mult < 2^62."""
        return max(0, self.exp.bits + self.out_bits - 31)


def build_softmax(variant: str, in_scale: float, in_bits: int = 8, out_bits: int = 8,
                  n: int | None = None) -> SoftmaxConstants:
    """Constants of an integer softmax of ``in_bits``-bit scores at scale ``in_scale`` into ``out_bits``-bit
    probabilities at scale 1 / (2^out_bits - 1). ``n`` only for 'ibert' and 'shiftmax' (default: the paper's)."""
    if variant not in SOFTMAX_VARIANTS:
        raise ValueError(f"softmax: unknown variant {variant!r}; choose one of {', '.join(SOFTMAX_VARIANTS)}")
    if not (math.isfinite(in_scale) and in_scale > 0):
        raise ValueError(f"softmax: input scale must be finite and > 0, got {in_scale}")
    if not 2 <= in_bits <= MAX_IN_BITS or not 1 <= out_bits <= MAX_OUT_BITS:
        raise ValueError(f"softmax: in_bits in [2, {MAX_IN_BITS}] and out_bits in [1, {MAX_OUT_BITS}], "
                         f"got {in_bits} and {out_bits}")
    if n is not None and variant not in ("ibert", "shiftmax"):
        raise ValueError(f"softmax: n applies to ibert and shiftmax, not {variant}")
    if variant == "ibert":
        exp = IbertExp.build(in_scale, in_bits, n)
    elif variant == "shiftmax":
        exp = ShiftExp.build(in_scale, 1 - (1 << in_bits), n)
    elif variant == "lut":
        exp = LutExp.build(in_scale, in_bits)
    else:
        exp = Exp2Exp.build(in_scale)
    return SoftmaxConstants(exp, in_bits, out_bits)


def tabulated(k: SoftmaxConstants) -> SoftmaxConstants:
    """The same softmax of int8 scores with its exp read from a 256-entry table of the variant's values at
    d = -255..0: bit-identical, so every variant is one table in hardware (the FPGA kernel is the lut one)."""
    if k.in_bits != 8:
        raise ValueError(f"softmax: only 8-bit scores tabulate into 256 entries, not {k.in_bits}-bit ones")
    return SoftmaxConstants(LutExp(k.exp(np.arange(-255, 1, dtype=np.int64)), k.exp.bits), 8, k.out_bits)


def softmax_int(k: SoftmaxConstants, q: np.ndarray) -> np.ndarray:
    """Softmax of integer scores over the last axis -> codes in [0, 2^out_bits - 1] (see the module docstring)."""
    q = int_codes(q, k.in_bits, "softmax")
    if q.ndim == 0 or q.shape[-1] == 0:
        raise ValueError("softmax: scores need a non-empty last axis")
    e = k.exp(q - q.max(axis=-1, keepdims=True))
    y, s = reciprocal_fixed(e.sum(axis=-1, keepdims=True))  # sum < 2^31 * row length
    top, r = (1 << k.out_bits) - 1, k.norm_shift
    shift = s - r  # beyond 62 (a row sum >= 2^(33 + R): long, flat rows) e * mult < 2^62 rounds to 0
    p = rshift_round(e * rshift_round(y * top, r), np.minimum(shift, 62))
    return np.minimum(np.where(shift > 62, 0, p), top)
