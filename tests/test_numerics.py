"""The integer primitives: rounding ties, saturation, multipliers, shifts, exp2, isqrt, LUTs."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgec.numerics.fixed import (
    MULT_BITS,
    exp2_fixed,
    isqrt,
    quantize_multiplier,
    requant,
    rshift_round,
    saturate,
)
from edgec.numerics.lut import build_lut, lookup
from edgec.runtime.float_ref import silu, softplus
from edgec.runtime.int_ops import rmsnorm_int, signed_multiplier


def _ref_round(x: int, shift: int) -> int:
    """Round half to even of x / 2^shift with exact rationals."""
    return round(Fraction(x, 1 << shift))  # Python's round() on Fraction is half-to-even


def test_rshift_round_ties_go_to_even():
    x = np.array([1, 3, 5, 7, -1, -3, -5, -7, 2, -2])
    assert rshift_round(x, 1).tolist() == [0, 2, 2, 4, 0, -2, -2, -4, 1, -1]
    assert rshift_round(np.array([6, 10, -6, -10]), 2).tolist() == [2, 2, -2, -2]  # 1.5, 2.5, -1.5, -2.5


def test_rshift_round_shift_zero_and_large():
    assert rshift_round(np.array([-9, 0, 9]), 0).tolist() == [-9, 0, 9]
    big = np.array([(1 << 62) - 1, -(1 << 62)])
    assert rshift_round(big, 62).tolist() == [1, -1]


@given(st.integers(-(1 << 60), 1 << 60), st.integers(0, 62))
def test_rshift_round_matches_exact_rationals(x, shift):
    assert int(rshift_round(np.int64(x), shift)) == _ref_round(x, shift)


def test_saturation_bounds():
    assert saturate(np.array([-1000, -129, -128, 127, 128, 1000]), 8).tolist() == [-128, -128, -128, 127, 127, 127]
    assert saturate(np.array([1 << 40, -(1 << 40)]), 24).tolist() == [(1 << 23) - 1, -(1 << 23)]


@pytest.mark.parametrize("real", [1e-12, 2.0**-40, 1e-6, 0.49999, 0.5, 1.0, 1.0 - 2.0**-20, 3.0, 12345.678, 2.0**14])
def test_quantize_multiplier_extremes(real):
    m, shift = quantize_multiplier(real)
    assert (1 << (MULT_BITS - 1)) <= int(m) < (1 << MULT_BITS)
    assert 0 <= int(shift) <= 62
    assert abs(int(m) * 2.0 ** -int(shift) / real - 1) <= 2.0**-MULT_BITS


def test_quantize_multiplier_rejects_out_of_range():
    for bad in (0.0, -1.0, float("inf"), 2.0**20, 1e-30):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


def test_requant_saturates_and_rounds():
    m, shift = quantize_multiplier(0.5)  # exactly 2^14 * 2^-15
    assert requant(np.array([1, 3, 5, -1, -3, 1000, -1000]), m, shift).tolist() == [0, 2, 2, 0, -2, 127, -128]


def test_requant_rejects_too_wide_input():
    m, shift = quantize_multiplier(1e-6)
    assert int(requant(np.int64((1 << 47) - 1), m, shift, 32)) == _ref_round(((1 << 47) - 1) * int(m), int(shift))
    with pytest.raises(OverflowError):
        requant(np.int64(1 << 47), m, shift, 32)


@given(st.integers(-(1 << 46), 1 << 46), st.floats(1e-9, 1000.0))
def test_requant_equals_exact_reference(x, real):
    m, shift = quantize_multiplier(real)
    expect = max(-(1 << 31), min((1 << 31) - 1, _ref_round(x * int(m), int(shift))))
    assert int(requant(np.int64(x), m, shift, 32)) == expect


def test_signed_multiplier_keeps_sign_and_zero():
    m, shift = signed_multiplier(np.array([-0.25, 0.0, 0.25]))
    assert m.tolist() == [-(1 << 14), 0, 1 << 14] and shift.tolist() == [16, 0, 16]


def test_isqrt_exact_on_edges():
    xs = np.array([0, 1, 2, 3, 4, 8, 9, 10, (1 << 52) - 1, 1 << 52, (1 << 52) + 1, (1 << 62) - 1])
    assert isqrt(xs).tolist() == [math.isqrt(int(v)) for v in xs]
    sq = np.arange(1, 5000, dtype=np.int64) ** 2 * 1_000_003
    assert isqrt(sq - 1).tolist() == [math.isqrt(int(v) - 1) for v in sq]


def test_exp2_fixed_accuracy_and_edges():
    t = -np.arange(0, 40 << 20, 997, dtype=np.int64)  # 2^0 down to 2^-40 in Q20
    got = exp2_fixed(t, 20) / 2.0**30
    ref = 2.0 ** (t / 2.0**20)
    assert np.abs(got - ref).max() < 1e-7
    assert int(exp2_fixed(np.int64(-(100 << 20)), 20)) == 0
    with pytest.raises(ValueError):
        exp2_fixed(np.int64(1), 20)


def test_exp2_fixed_is_exact_at_integer_powers():
    for z in range(0, 64):  # 2^-z: exact down to 2^-30, then half-to-even rounding of 2^30 >> z
        assert int(exp2_fixed(np.int64(-z << 20), 20)) == _ref_round(1 << 30, min(z, 62)), z
    assert int(exp2_fixed(np.int64(0), 36)) == 1 << 30  # dt = 0: the state does not decay


def test_exp2_fixed_wide_fraction_inputs():
    t = -np.arange(0, 1 << 40, (1 << 40) // 1000, dtype=np.int64)  # Q36 inputs in [-16, 0]
    assert np.abs(exp2_fixed(t, 36) / 2.0**30 - 2.0 ** (t / 2.0**36)).max() < 1e-7


def _silu_ref(x: float) -> float:
    return x / (1 + math.exp(-x))


def _softplus_ref(x: float) -> float:
    return x if x > 20 else math.log1p(math.exp(x))


@pytest.mark.parametrize("fn,ref_fn,in_scale,out_scale,bits", [
    (silu, _silu_ref, 0.05, 0.05, 8), (silu, _silu_ref, 0.02, 1e-4, 16),
    (softplus, _softplus_ref, 0.07, 3e-4, 16), (softplus, _softplus_ref, 0.2, 1e-6, 24),
    (np.tanh, math.tanh, 0.01, 1 / 127, 8)])
def test_every_lut_entry_is_the_rounded_function(fn, ref_fn, in_scale, out_scale, bits):
    """Each of the 256 entries equals the independently computed (Python math) rounded value."""
    table = build_lut(fn, in_scale, out_scale, bits)
    assert table.shape == (256,)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for q in range(-128, 128):
        ref = ref_fn(q * in_scale) / out_scale
        expect = min(hi, max(lo, round(ref)))  # round() is half-to-even, as in build_lut
        assert int(lookup(table, np.int64(q))) == expect, q


def test_rmsnorm_int_tracks_float():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (64, 256)) * rng.uniform(0.01, 4, (64, 1))
    s_in, s_out = 4 / 2**21, 4.0 / 127
    xq = np.rint(x / s_in).astype(np.int64)
    m, shift = quantize_multiplier(1 / s_out)
    got = rmsnorm_int(xq, round(1e-5 / s_in**2), m, shift)
    ref = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5) / s_out
    assert np.abs(got - np.clip(ref, -128, 127)).max() <= 0.51


@pytest.mark.parametrize(("k", "x_max"), [(768, 127), (1536, 127), (5120, 127), (300, 65535), (3000, 2**20), (1, 127)])
def test_int_matmul_is_exact_at_extreme_codes(k, x_max):
    """int_matmul contracts in float32 slices short enough to stay exact (or in float64): equal to Python
    integers, with every product at its extreme (127 x -128 summed over all of K) in the first row."""
    from edgec.runtime.int_ops import int_matmul

    rng = np.random.default_rng(k)
    x = rng.integers(-x_max, x_max + 1, (3, k))
    w = rng.integers(-128, 128, (5, k)).astype(np.int8)
    x[0], w[0] = x_max, -128
    want = (x.astype(object) @ w.astype(object).T).astype(np.int64)
    assert np.array_equal(int_matmul(x, w), want)
