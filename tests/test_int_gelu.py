"""Integer GELU (edgec.numerics.gelu): hand-computed integers, saturation, domains, monotonicity, accuracy."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from edgec.numerics.gelu import EDGEMOE_GUARD_BITS, GELU_VARIANTS, build_gelu, gelu_int
from edgec.runtime.vit_float import gelu


def _gelu_ref(x: float) -> float:
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


def _delta_q(j: int, scale: float) -> int:
    """Edge-MoE's knot j: delta(j / 32) = t Phi(-t) in input codes * 2^8, from math.erfc (independent of gelu)."""
    t = j / 32
    return round(t * 0.5 * math.erfc(t / math.sqrt(2)) / scale * 2**EDGEMOE_GUARD_BITS)


def test_ibert_by_hand():
    """S' = S / sqrt2 = 0.25: b = floor(-7.08) = -8, c = floor(-55.4) = -56, one = -56, k = 0; out = x (y + one)
    * (-S A S'^2 / 2) / S_out with S_out chosen so that this is -x (y + one) / 16. x = 4: y = (4 - 8)^2 - 56
    = -40, 4 * 96 / 16 = 24; x = 2: 2 * 76 / 16 = 9.5 -> 10; x = 6: 6 * 108 / 16 = 40.5 -> 40 (half to even);
    x = -20: y = 56 = -one -> 0; x = 20: 20 * 112 / 16 = 140."""
    s = math.sqrt(2) * 0.25
    k = build_gelu("ibert", s, s * 0.2888 * 0.0625 / 2 * 16, out_bits=16)
    assert (k.fn.b, k.fn.c, k.fn.one, k.fn.k) == (-8, -56, -56, 0)
    assert gelu_int(k, np.array([-20, -4, 0, 1, 2, 4, 6, 20])).tolist() == [0, -4, 0, 4, 10, 24, 40, 140]


def test_shiftgelu_by_hand():
    """1.702 S = 0.3: x0 = -4, n = 23, e(0) = 2^25, e(-2) = 3 2^23, e(-8) = 5 2^20; S_out = S / 128 makes
    out = x * sig. x = 2: factor = (2^31 - 1) // (7 2^23) = 36, sig = 36 2^25 >> 24 = 72 -> 144;
    x = -2: sig = 108 2^23 >> 24 = 54 -> -108; x = 8: factor = (2^31 - 1) // (37 2^20) = 55, sig = 110 -> 880."""
    s = 0.3 / 1.702
    k = build_gelu("shiftgelu", s, s / 128, out_bits=16)
    assert (k.fn.exp.x0, k.fn.exp.n) == (-4, 23)
    assert gelu_int(k, np.array([-2, 0, 2, 8])).tolist() == [-108, 0, 144, 880]


def test_edgemoe_at_the_knots_and_between_them():
    """S = 1/32: every code is a knot (out = round((relu(x) 2^8 - T_|x|) / 2^8)); S = 1/64: odd codes sit
    halfway, delta = T_j + round_half_even((T_j+1 - T_j) / 2)."""
    s = 1 / 32
    x = np.arange(-128, 128)
    want = [round(Fraction(max(v, 0) * 256 - _delta_q(abs(v), s), 256)) for v in x]
    assert gelu_int(build_gelu("edgemoe", s, s), x).tolist() == want
    s = 1 / 64
    half = [(v, abs(v) // 2) for v in range(-127, 128, 2)]
    want = [round(Fraction(max(v, 0) * 256 - _delta_q(j, s) - round(Fraction(_delta_q(j + 1, s) - _delta_q(j, s), 2)),
                           256)) for v, j in half]
    assert gelu_int(build_gelu("edgemoe", s, s), np.array([v for v, _ in half])).tolist() == want


def test_edgemoe_is_relu_beyond_five_and_a_half():
    k = build_gelu("edgemoe", 1 / 32, 1 / 32, in_bits=16, out_bits=16)
    x = np.array([176, 200, 1000, 32767, -176, -200, -32768])
    assert gelu_int(k, x).tolist() == [176, 200, 1000, 32767, 0, 0, 0]


@pytest.mark.parametrize("in_scale,out_scale,bits", [(0.05, 0.05, 8), (8 / 127, 8 / 127, 8), (0.02, 1e-3, 16)])
def test_every_lut_entry_is_the_rounded_gelu(in_scale, out_scale, bits):
    k = build_gelu("lut", in_scale, out_scale, out_bits=bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for q in range(-128, 128):
        assert int(gelu_int(k, np.int64(q))) == min(hi, max(lo, round(_gelu_ref(q * in_scale) / out_scale))), q


@pytest.mark.parametrize("variant", GELU_VARIANTS)
def test_saturation_at_both_ends(variant):
    """Large inputs saturate at 127; the negative dip (gelu's minimum -0.17 at x = -0.75) at -128 when the
    output scale is fine enough; zero maps to zero."""
    s_in = 6 / 127
    k = build_gelu(variant, s_in, 0.17 / 200)
    x = np.arange(-128, 128)
    y = gelu_int(k, x)
    assert y.max() == 127 and y.min() == -128 and y[x == 127] == 127
    assert y[np.abs(x * s_in + 0.75) < 0.1].tolist() == [-128] * int((np.abs(x * s_in + 0.75) < 0.1).sum())
    assert int(gelu_int(k, np.int64(0))) == 0


@pytest.mark.parametrize("variant", GELU_VARIANTS)
def test_constant_inputs_give_constant_outputs(variant):
    """-128 everywhere (gelu(-4.03) = -2e-4: 0 codes), 0, and 127; ShiftGELU's sigmoid is 123/128 at 127
    (e1 = 19 << 23, so I-ViT's factor (2^31 - 1) // (e1 + e0) is 13, and 13 e1 >> 24 = 123): 122."""
    k = build_gelu(variant, 4 / 127, 4 / 127)
    top = 122 if variant == "shiftgelu" else 127
    for value, want in ((-128, 0), (0, 0), (127, top)):
        assert gelu_int(k, np.full((3, 5), value)).tolist() == [[want] * 5] * 3


@pytest.mark.parametrize("variant", GELU_VARIANTS)
@pytest.mark.parametrize("bits", [8, 16])
def test_monotone_away_from_the_dip(variant, bits):
    """gelu rises for x >= 0 (every variant follows) and falls for x <= -1, its minimum being at -0.75 (edgemoe
    and lut follow; i-GELU and ShiftGELU have one-LSB steps up there: i-GELU at 16-bit -2.11, ShiftGELU
    at -1.56 and -1.26)."""
    if variant == "lut" and bits == 16:
        return
    s = 6 / ((1 << (bits - 1)) - 1)
    x = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    y = gelu_int(build_gelu(variant, s, 6 / 127, in_bits=bits), x)
    assert (np.diff(y[x >= 0]) >= 0).all()
    falls = np.diff(y[x * s <= -1])
    assert (falls <= 0).all() if variant in ("edgemoe", "lut") else (falls <= 1).all()


def test_domains_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        build_gelu("tanh", 0.05, 0.05)
    with pytest.raises(ValueError, match="finite and > 0"):
        build_gelu("ibert", 0.05, 0.0)
    with pytest.raises(ValueError, match="8-bit input"):
        build_gelu("lut", 0.001, 0.05, in_bits=16)
    with pytest.raises(ValueError, match="too coarse"):
        build_gelu("ibert", 3.0, 0.05)
    with pytest.raises(ValueError, match="outside"):
        build_gelu("shiftgelu", 1.0, 0.05)  # 1.702 S > 1
    with pytest.raises(ValueError, match="out of range"):
        build_gelu("edgemoe", 0.05, 1e-30)
    with pytest.raises(ValueError, match="in_bits"):
        build_gelu("edgemoe", 0.05, 0.05, in_bits=33)
    k = build_gelu("ibert", 0.05, 0.05)
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        gelu_int(k, np.array([-129]))
    with pytest.raises(ValueError, match="integer codes"):
        gelu_int(k, np.array([1.0]))


# Max |error| in output LSBs over every input code, in and out scale R / 127 (bench/bench_int_approx.py);
# each bound is the measurement rounded up.
ACCURACY_BOUNDS = {"ibert": (0.97, 1.08), "shiftgelu": (5.6, 16.3), "edgemoe": (0.5, 0.503), "lut": (0.5, None)}


@pytest.mark.parametrize("variant", GELU_VARIANTS)
@pytest.mark.parametrize("r", [4.0, 8.0, 16.0])
def test_accuracy_against_float(variant, r):
    bound8, bound16 = ACCURACY_BOUNDS[variant]
    for bits, bound in ((8, bound8), (16, bound16)):
        if bound is None:
            continue
        x = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
        s_in, s_out = r / ((1 << (bits - 1)) - 1), r / 127
        y = gelu_int(build_gelu(variant, s_in, s_out, in_bits=bits), x)
        assert np.abs(y - np.clip(gelu(x * s_in) / s_out, -128, 127)).max() <= bound, bits
