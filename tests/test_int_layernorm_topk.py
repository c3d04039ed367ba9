"""Integer LayerNorm (edgec.numerics.layernorm) and top-k (edgec.numerics.topk): integers, ties, domains, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.numerics.layernorm import build_layernorm, layernorm_int
from edgec.numerics.topk import topk_int
from edgec.runtime.vit_float import layer_norm, topk


def test_layernorm_by_hand():
    """x = 1, 2, 3, 4 (S = 1, eps = 0): xhat = (x - 2.5) / sqrt(1.25) = -1.342, -0.447, 0.447, 1.342; at
    S_out = 1/32: -42.9, -14.3, 14.3, 42.9. With gamma = 1, -1, 0, 2 and beta = 0, 0.5, 1, -0.25:
    -42.9, 14.3 + 16, 0 + 32, 85.9 - 8."""
    x = np.array([1, 2, 3, 4])
    assert layernorm_int(build_layernorm(4, 1.0, 1 / 32, 0.0), x).tolist() == [-43, -14, 14, 43]
    k = build_layernorm(4, 1.0, 1 / 32, 0.0, np.array([1, -1, 0, 2.0]), np.array([0, 0.5, 1, -0.25]))
    assert layernorm_int(k, x).tolist() == [-43, 30, 32, 78]


def test_layernorm_narrow_rows_are_as_accurate_as_wide_ones():
    """The block shift scales every row to NORM_BITS, so a spread of one code and one of 2^20 codes
    normalize to the same integers."""
    k = build_layernorm(4, 1.0, 1 / 32, 0.0, in_bits=24)
    rows = np.array([[0, 1, 0, 1], [0, 1 << 20, 0, 1 << 20], [-(1 << 23), (1 << 23) - 1, -(1 << 23), (1 << 23) - 1]])
    assert layernorm_int(k, rows).tolist() == [[-32, 32, -32, 32]] * 3


def test_layernorm_saturates_at_both_ends():
    """At S_out = 1/256: -343.46, -114.49, 114.49, 343.46; 4 xhat + 3 at 1/32: -75.7, 38.8, 153.2, 267.7."""
    k = build_layernorm(4, 1.0, 1 / 256, 0.0)
    assert layernorm_int(k, np.array([1, 2, 3, 4])).tolist() == [-128, -114, 114, 127]
    k = build_layernorm(4, 1.0, 1 / 32, 0.0, np.full(4, 4.0), np.full(4, 3.0))
    assert layernorm_int(k, np.array([1, 2, 3, 4])).tolist() == [-76, 39, 127, 127]


@pytest.mark.parametrize("value", [-128, 0, 127])
def test_layernorm_constant_rows_give_the_bias(value):
    """c = 0: folded gives 0, per channel gives round(beta / S_out), with or without eps."""
    beta = np.array([0.5, -0.25, 2.0, 0.0])
    for eps in (0.0, 1e-6):
        assert layernorm_int(build_layernorm(4, 0.05, 1 / 32, eps), np.full((2, 4), value)).tolist() == [[0] * 4] * 2
        k = build_layernorm(4, 0.05, 1 / 32, eps, np.ones(4), beta)
        assert layernorm_int(k, np.full((2, 4), value)).tolist() == [[16, -8, 64, 0]] * 2


def test_layernorm_eps_damps_a_tiny_spread():
    """var = 0.25 codes^2 against eps / S^2 = 10 codes^2: xhat = 0.5 / sqrt(10.25) = 0.156, 39.98 at 1/256."""
    k = build_layernorm(4, 1e-3, 1 / 256, 1e-5)
    assert layernorm_int(k, np.array([0, 1, 0, 1])).tolist() == [-40, 40, -40, 40]


@pytest.mark.parametrize("bits", [8, 24])
def test_layernorm_accuracy_against_float(bits):
    """d = 192 with an outlier channel; half an LSB plus the multipliers' 2^-15 (measured 0.504)."""
    rng = np.random.default_rng(0)
    d, s_out = 192, 8 / 127
    x = rng.normal(0, 1, (300, d)) * rng.uniform(0.001, 3, (300, 1)) + rng.normal(0, 0.5, (300, 1))
    x[:, 5] *= 8
    top = (1 << (bits - 1)) - 1
    s_in = float(np.abs(x).max()) / top
    q = np.clip(np.rint(x / s_in), -top - 1, top).astype(np.int64)
    gamma, beta = rng.normal(1, 0.3, d), rng.normal(0, 0.2, d)
    xhat = layer_norm(q * s_in, 1e-6)
    for g, b, ref in ((None, None, xhat), (gamma, beta, xhat * gamma + beta)):
        y = layernorm_int(build_layernorm(d, s_in, s_out, 1e-6, g, b, in_bits=bits), q)
        assert np.abs(y - np.clip(ref / s_out, -128, 127)).max() <= 0.505


def test_layernorm_domains_are_refused():
    with pytest.raises(ValueError, match="both be None or both"):
        build_layernorm(4, 0.1, 0.1, 1e-6, gamma=np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        build_layernorm(4, 0.1, 0.1, 1e-6, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        build_layernorm(4, 0.1, 0.1, 1e-6, np.array([1, np.nan, 1, 1]), np.zeros(4))
    with pytest.raises(ValueError, match="eps >= 0"):
        build_layernorm(4, 0.1, 0.1, -1e-6)
    with pytest.raises(ValueError, match="squared input codes"):
        build_layernorm(65536, 1e-9, 0.1, 1e-5)
    with pytest.raises(ValueError, match="multiplier range"):
        build_layernorm(4, 0.1, 1e-9, 1e-6)
    with pytest.raises(ValueError, match="out_bits"):
        build_layernorm(4, 0.1, 0.1, 1e-6, out_bits=24)
    k = build_layernorm(4, 0.1, 0.1, 1e-6)
    with pytest.raises(ValueError, match="width 4"):
        layernorm_int(k, np.zeros((2, 5), np.int64))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        layernorm_int(k, np.array([0, 0, 0, 200]))
    with pytest.raises(ValueError, match="integer codes"):
        layernorm_int(k, np.zeros(4))


def test_topk_by_hand_ties_to_the_lower_index():
    s = np.array([3, 7, 7, 1, 7, -2])
    assert [a.tolist() for a in topk_int(s, 3)] == [[7, 7, 7], [1, 2, 4]]
    assert [a.tolist() for a in topk_int(s, 5)] == [[7, 7, 7, 3, 1], [1, 2, 4, 0, 3]]
    assert topk_int(np.array([[5, 9], [9, 5]]), 1)[1].tolist() == [[1], [0]]


@pytest.mark.parametrize("value", [-128, 0, 127, -(1 << 63) + 1, (1 << 63) - 1])
def test_topk_all_equal_takes_the_first_k(value):
    values, idx = topk_int(np.full((3, 16), value), 4)
    assert idx.tolist() == [[0, 1, 2, 3]] * 3 and (values == value).all()


def test_topk_extremes_of_int64():
    s = np.array([-(1 << 63) + 1, (1 << 63) - 1, 0, -(1 << 63) + 1])
    assert topk_int(s, 4)[1].tolist() == [1, 2, 0, 3]


def test_topk_equals_the_float_reference_rule():
    """Many ties (scores from 8 values): the same sets and order as vit_float.topk (a stable sort)."""
    s = np.random.default_rng(0).integers(-4, 4, (2000, 16))
    for k in (1, 2, 3, 16):
        values, idx = topk_int(s, k)
        want_values, want_idx = topk(s, k)
        assert (idx == want_idx).all() and (values == want_values).all()


def test_topk_domains_are_refused():
    for k in (0, 5):
        with pytest.raises(ValueError, match="k must be in"):
            topk_int(np.zeros(4, np.int64), k)
    with pytest.raises(ValueError, match="integer codes"):
        topk_int(np.zeros(4), 1)
    with pytest.raises(ValueError, match="above -2"):
        topk_int(np.array([np.iinfo(np.int64).min, 0]), 1)
    with pytest.raises(ValueError, match="k must be in"):
        topk_int(np.int64(3), 1)
