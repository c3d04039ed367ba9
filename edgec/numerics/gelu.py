"""Integer GELU: four variants from integer codes at scale S to ``out_bits``-bit codes at ``out_scale``.

The reference is the exact erf form x Phi(x) (edgec.runtime.vit_float.gelu, what the float model
computes). Variants (``GELU_VARIANTS``, chosen by name in ``build_gelu``):

- ``ibert``: I-BERT's i-GELU, x/2 (1 + L(x/sqrt2)) with L(u) = sgn(u) [a (min(|u|, -b) + b)^2 + 1],
  a = -0.2888, b = -1.769, in integers as I-BERT (floored constants, the erf polynomial floored by 2^k);
  k = 0 while x (1 + erf) fits 32 bits (I-BERT's fixed k = 14 is for its 32-bit inputs).
- ``shiftgelu``: I-ViT's ShiftGELU, x sigmoid(1.702 x) with the shift exp of Shiftmax (n = 23 as
  I-ViT) and I-ViT's 31-bit integer division; sigmoid in 8 bits (units of 2^-7, as I-ViT). The
  sigmoid is stabilized per element (max(x, 0)) instead of by the row max: the same function, kept
  elementwise. Its error is dominated by that division: factor = (2^31 - 1) // (e1 + e0) has only a few
  bits (13 at S = 4/127), so the sigmoid is coarse (as in I-ViT, whose training absorbs it).
- ``edgemoe``: Edge-MoE's relu(x) - delta(|x|), delta(t) = t Phi(-t) from 177 knots 1/32 apart
  (|x| < 5.5; delta(5.5) beyond), linearly interpolated in integers with 8 guard bits.
- ``lut``: the 256-entry table of an int8 input (lut.build_lut): exact, within half an output LSB.

Every variant ends in one requant (round half to even, saturation to ``out_bits``), except ``lut``,
whose entries are the rounded and saturated values themselves. All are non-decreasing for x >= 0;
for x <= -1 (left of gelu's minimum) ``edgemoe`` and ``lut`` are non-increasing, ``ibert`` and
``shiftgelu`` have one-LSB steps up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgec.numerics.codes import int_codes
from edgec.numerics.fixed import quantize_multiplier, requant, rshift_round
from edgec.numerics.lut import build_lut, lookup
from edgec.numerics.softmax import ShiftExp
from edgec.runtime.vit_float import gelu

__all__ = [
    "EDGEMOE_GUARD_BITS",
    "EDGEMOE_KNOTS",
    "EDGEMOE_STEP",
    "GELU_VARIANTS",
    "IBERT_ERF",
    "SHIFTGELU_N",
    "SHIFTGELU_SIG_BITS",
    "EdgeMoeGelu",
    "GeluConstants",
    "IbertGelu",
    "LutGelu",
    "ShiftGelu",
    "build_gelu",
    "gelu_int",
]

#: I-BERT's erf(u) ~ sgn(u) [A (min(|u|, -B) + B)^2 + C] (kssteven418/I-BERT, IntGELU.coeff).
IBERT_ERF = (-0.2888, -1.769, 1.0)
SHIFTGELU_N = 23  # I-ViT's IntGELU n
SHIFTGELU_SIG_BITS = 8  # I-ViT's sigmoid output_bit: sigmoid codes in [0, 2^7), scale 2^-7
SHIFTGELU_K = 1.702  # x sigmoid(1.702 x) ~ gelu(x)
EDGEMOE_STEP = 32  # knots per unit of |x|
EDGEMOE_KNOTS = 177  # t_j = j / 32, j = 0 .. 176: |x| < 5.5
EDGEMOE_GUARD_BITS = 8  # delta and relu in units of 2^-8 input codes before the one requant
MAX_IN_BITS = 32


def _multiplier(real: float, what: str) -> tuple[int, int]:
    try:
        m, shift = quantize_multiplier(real)
    except ValueError:
        raise ValueError(f"{what}: multiplier {real:g} out of range; check the input and output scales") from None
    return int(m), int(shift)


@dataclass(frozen=True)
class IbertGelu:
    """i-GELU: with S' = S / sqrt2, b = floor(B / S') < 0 and c = floor(C / (A S'^2)) < 0 (I-BERT's floors),
    y = sgn(x) ((min(|x|, -b) + b)^2 + c) >> k ~ erf / (A S'^2 2^k), one = floor(1 / (A S'^2 2^k)),
    out = requant(-x (y + one), m, shift) with m 2^-shift = -S A S'^2 2^k / (2 S_out) > 0.

    |x (y + one)| < 2^(in_bits + bits(c) - k) <= 2^31."""

    b: int
    c: int
    k: int
    one: int
    m: int
    shift: int
    out_bits: int

    @classmethod
    def build(cls, in_scale: float, out_scale: float, in_bits: int, out_bits: int) -> IbertGelu:
        a, b, c = IBERT_ERF
        s = in_scale / math.sqrt(2.0)
        if s > -b:
            raise ValueError(f"ibert: input scale {in_scale} too coarse (at most {-b * math.sqrt(2.0):.3f})")
        ci = math.floor(c / a / s**2)
        k = max(0, in_bits + (-ci).bit_length() - 31)
        sig_scale = a * s**2 * 2**k
        return cls(math.floor(b / s), ci, k, math.floor(1 / sig_scale),
                   *_multiplier(-in_scale * sig_scale / 2 / out_scale, "ibert"), out_bits)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.sign(x) * ((np.minimum(np.abs(x), -self.b) + self.b) ** 2 + self.c) >> self.k
        return requant(-x * (y + self.one), self.m, self.shift, self.out_bits)


@dataclass(frozen=True)
class ShiftGelu:
    """ShiftGELU: with e = ShiftExp at scale 1.702 S (e < 2^30) and t = max(x, 0):
    e1 = e(x - t), e0 = e(-t), sig = (e1 * ((2^31 - 1) // (e1 + e0))) >> 24 ~ sigmoid(1.702 x) 2^7,
    out = requant(x * sig, m, shift) with m 2^-shift = S 2^-7 / S_out."""

    exp: ShiftExp
    m: int
    shift: int
    out_bits: int

    @classmethod
    def build(cls, in_scale: float, out_scale: float, in_bits: int, out_bits: int) -> ShiftGelu:
        exp = ShiftExp.build(in_scale * SHIFTGELU_K, -(1 << (in_bits - 1)), cap=SHIFTGELU_N, exp_bits=30,
                             what="shiftgelu")
        return cls(exp, *_multiplier(in_scale / 2 ** (SHIFTGELU_SIG_BITS - 1) / out_scale, "shiftgelu"), out_bits)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = np.maximum(x, 0)
        e1 = self.exp(x - t)
        factor = ((1 << 31) - 1) // (e1 + self.exp(-t))  # a 31-bit integer division, as I-ViT
        sig = (e1 * factor) >> (32 - SHIFTGELU_SIG_BITS)
        return requant(x * sig, self.m, self.shift, self.out_bits)


@dataclass(frozen=True)
class EdgeMoeGelu:
    """relu(x) - delta(|x|): knots T_j = round(delta(j / 32) / S * 2^8), j = 0 .. 176, and a repeat of
    T_176. With 32 S = pm 2^-ps: p = min(|x| pm, 176 << ps), j = p >> ps, f = p - (j << ps),
    delta = T_j + rshift_round((T_{j+1} - T_j) f, ps); out = requant((relu(x) << 8) - delta, m, shift)
    with m 2^-shift = S 2^-8 / S_out."""

    table: np.ndarray
    pm: int
    ps: int
    m: int
    shift: int
    out_bits: int

    @classmethod
    def build(cls, in_scale: float, out_scale: float, in_bits: int, out_bits: int) -> EdgeMoeGelu:
        t = np.arange(EDGEMOE_KNOTS, dtype=np.float64) / EDGEMOE_STEP
        table = np.rint((t - gelu(t)) / in_scale * 2**EDGEMOE_GUARD_BITS).astype(np.int64)
        table = np.append(table, table[-1])
        pm, ps = _multiplier(EDGEMOE_STEP * in_scale, "edgemoe")
        if (EDGEMOE_KNOTS << ps) >= 1 << 62 or int(np.abs(np.diff(table)).max()) << ps >= 1 << 62:
            raise ValueError(f"edgemoe: input scale {in_scale} too fine for 64-bit interpolation")
        return cls(table, pm, ps, *_multiplier(in_scale / 2**EDGEMOE_GUARD_BITS / out_scale, "edgemoe"), out_bits)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        p = np.minimum(np.abs(x) * self.pm, (EDGEMOE_KNOTS - 1) << self.ps)
        j = p >> self.ps
        lo = self.table[j]
        delta = lo + rshift_round((self.table[j + 1] - lo) * (p - (j << self.ps)), self.ps)
        return requant((np.maximum(x, 0) << EDGEMOE_GUARD_BITS) - delta, self.m, self.shift, self.out_bits)


@dataclass(frozen=True)
class LutGelu:
    """table[x + 128] = saturate(round_half_even(gelu(x S) / S_out)): exact for an int8 input."""

    table: np.ndarray

    @classmethod
    def build(cls, in_scale: float, out_scale: float, in_bits: int, out_bits: int) -> LutGelu:
        if in_bits != 8:
            raise ValueError(f"lut: a 256-entry table takes an 8-bit input, not {in_bits}-bit")
        return cls(build_lut(gelu, in_scale, out_scale, out_bits))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return lookup(self.table, x)


@dataclass(frozen=True)
class GeluConstants:
    """A GELU's compile-time constants: the variant and the input width it was built for."""

    fn: IbertGelu | ShiftGelu | EdgeMoeGelu | LutGelu
    in_bits: int


_BUILDERS = {"ibert": IbertGelu.build, "shiftgelu": ShiftGelu.build, "edgemoe": EdgeMoeGelu.build,
             "lut": LutGelu.build}
GELU_VARIANTS = tuple(_BUILDERS)


def build_gelu(variant: str, in_scale: float, out_scale: float, in_bits: int = 8,
               out_bits: int = 8) -> GeluConstants:
    """Constants of an integer GELU from ``in_bits``-bit codes at ``in_scale`` to ``out_bits``-bit codes."""
    if variant not in _BUILDERS:
        raise ValueError(f"gelu: unknown variant {variant!r}; choose one of {', '.join(GELU_VARIANTS)}")
    if not all(math.isfinite(s) and s > 0 for s in (in_scale, out_scale)):
        raise ValueError(f"gelu: scales must be finite and > 0, got {in_scale} and {out_scale}")
    if not 2 <= in_bits <= MAX_IN_BITS or not 2 <= out_bits <= 32:
        raise ValueError(f"gelu: in_bits in [2, {MAX_IN_BITS}] and out_bits in [2, 32], got {in_bits} and {out_bits}")
    return GeluConstants(_BUILDERS[variant](in_scale, out_scale, in_bits, out_bits), in_bits)


def gelu_int(k: GeluConstants, x: np.ndarray) -> np.ndarray:
    """GELU of integer codes, elementwise -> ``out_bits``-bit codes (see the module docstring)."""
    return k.fn(int_codes(x, k.in_bits, "gelu"))
