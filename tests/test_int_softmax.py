"""Integer softmax (edgec.numerics.softmax): hand-computed integers, saturation, ties, domains, accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgec.numerics.agreement import mean_kl
from edgec.numerics.softmax import LN2, SOFTMAX_VARIANTS, build_softmax, softmax_int, tabulated
from edgec.runtime.vit_float import softmax


def _codes(x: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.abs(x).max()) / 127
    return np.clip(np.rint(x / scale), -128, 127).astype(np.int64), scale


def test_ibert_by_hand():
    """S = 0.5: x0 = floor(-1.386) = -2, b = floor(5.41) = 5, c = floor(11.17) = 11, n = 20;
    z(0) = 11, z(-1) = (-1 + 5)(-1) + 11 = 7; d = 0, -1, -2, -3 -> e = 22, 14, 11, 7 (x 2^19)."""
    k = build_softmax("ibert", 0.5)
    assert (k.exp.x0, k.exp.b, k.exp.c, k.exp.n) == (-2, 5, 11, 20)
    assert k.exp(np.array([0, -1, -2, -3])).tolist() == [22 << 19, 14 << 19, 11 << 19, 7 << 19]
    # 255 * [22, 14, 11, 7] / 54 = 103.9, 66.1, 51.9, 33.1
    assert softmax_int(k, np.array([3, 2, 1, 0])).tolist() == [104, 66, 52, 33]


def test_shiftmax_by_hand():
    """S = 0.25: x0 = -4, n = 15; x = d + (d >> 1) - (d >> 4): 0, -2, -5, -11 -> (q, r) = (0, 0), (0, -2),
    (1, -1), (2, -3) -> e = ((r + 8) << (15 - q)) >> 1 = 32, 24, 14, 5 (x 2^12)."""
    k = build_softmax("shiftmax", 0.25)
    assert (k.exp.x0, k.exp.n) == (-4, 15)
    assert k.exp(np.array([0, -2, -4, -8])).tolist() == [32 << 12, 24 << 12, 14 << 12, 5 << 12]
    # 255 * [32, 24, 14, 5] / 75 = 108.8, 81.6, 47.6, 17.0
    assert softmax_int(k, np.array([8, 6, 4, 0])).tolist() == [109, 82, 48, 17]


@pytest.mark.parametrize("variant", ["lut", "exp2"])
def test_exact_variants_by_hand(variant):
    """S = ln2: e = 2^-j exactly, p = P * [4, 2, 1] / 7 rounded."""
    assert softmax_int(build_softmax(variant, LN2), np.array([2, 1, 0])).tolist() == [146, 73, 36]
    assert softmax_int(build_softmax(variant, LN2, out_bits=16), np.array([2, 1, 0])).tolist() == [37449, 18724, 9362]


def test_lut_entries_are_the_rounded_exponential():
    k = build_softmax("lut", 0.07)
    for d in range(-255, 1):
        assert int(k.exp(np.int64(d))) == round(math.exp(d * 0.07) * 2**20), d


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
def test_saturation_at_both_ends(variant):
    """One score far above the rest: P exactly for it, 0 for the others; never above P or below 0."""
    q = np.full((2, 16), -128)
    q[0, 3], q[1, 15] = 127, 127
    p = softmax_int(build_softmax(variant, 12 / 127), q)
    assert p[0, 3] == 255 and p[1, 15] == 255 and p.sum() == 510
    assert softmax_int(build_softmax(variant, 12 / 127, out_bits=16), q[:1]).max() <= 65535


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
@pytest.mark.parametrize("value", [-128, 0, 127])
def test_all_equal_scores_share_the_mass_equally(variant, value):
    k = build_softmax(variant, 0.05)
    for width, expect in ((1, 255), (3, 85), (4, 64), (129, 2)):  # round(255 / width)
        assert softmax_int(k, np.full((2, width), value)).tolist() == [[expect] * width] * 2
    assert softmax_int(k, np.full(600, -128)).max() == 0  # 255 / 600 < 1/2: uint8 cannot hold a row that long


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
def test_equal_scores_get_equal_codes_and_ties_keep_order(variant):
    k = build_softmax(variant, 0.1)
    p = softmax_int(k, np.array([[5, 9, 5, 9, -3]]))[0]
    assert p[0] == p[2] and p[1] == p[3] and p[1] > p[0] > p[4]


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
@pytest.mark.parametrize("scale", [0.02, 0.05, 0.1, 0.3, 0.6])
def test_monotone_in_the_score(variant, scale):
    k = build_softmax(variant, scale)
    d = np.arange(-255, 1)
    assert (np.diff(k.exp(d)) >= 0).all() and k.exp(np.int64(0)) >= 1
    q = np.random.default_rng(1).integers(-128, 128, (200, 40))
    p = softmax_int(k, q)
    order = np.argsort(q, axis=-1, kind="stable")
    assert (np.diff(np.take_along_axis(p, order, -1), axis=-1) >= 0).all()


def test_domains_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        build_softmax("taylor", 0.1)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="finite and > 0"):
            build_softmax("exp2", bad)
    with pytest.raises(ValueError, match="outside"):
        build_softmax("ibert", 0.7)  # one code more than an octave
    with pytest.raises(ValueError, match="outside"):
        build_softmax("shiftmax", 1.5)
    with pytest.raises(ValueError, match="too fine for 32 bits"):
        build_softmax("ibert", 8 / 32767, in_bits=16)  # n would drop to 5 with a reachable clamp
    with pytest.raises(ValueError, match="does not fit"):
        build_softmax("ibert", 0.05, n=21)  # c = 1117 has 11 bits: 11 + 21 > 31
    with pytest.raises(ValueError, match="reach below the 256-entry table"):
        build_softmax("lut", 8 / 32767, in_bits=16)
    with pytest.raises(ValueError, match="n applies"):
        build_softmax("exp2", 0.1, n=20)
    with pytest.raises(ValueError, match="out_bits"):
        build_softmax("exp2", 0.1, out_bits=25)
    k = build_softmax("exp2", 0.1)
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        softmax_int(k, np.array([0, 128]))
    with pytest.raises(ValueError, match="integer codes"):
        softmax_int(k, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        softmax_int(k, np.zeros((3, 0), np.int64))


def test_wide_scores():
    """16-bit scores: exp2 takes any width; a lut whose last entry is 0 takes them too (clamped exactly)."""
    q = np.random.default_rng(2).integers(-32768, 32768, (50, 20))
    for variant, scale in (("exp2", 6 / 32767), ("lut", 0.2), ("shiftmax", 6 / 32767)):
        p = softmax_int(build_softmax(variant, scale, in_bits=16), q)
        bound = 0.51 if variant != "shiftmax" else 4.0
        assert np.abs(p / 255 - softmax(q * scale)).max() * 255 <= bound, variant


# Measured on these seeds (bench/bench_int_approx.py has the full table): each bound is the measurement
# rounded up, so a regression in any variant shows.
ATTENTION_BOUNDS = {"ibert": (8.0, 0.049), "shiftmax": (22.0, 0.052), "lut": (0.5001, 0.050), "exp2": (0.5001, 0.050)}


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
def test_attention_accuracy_against_float(variant):
    """129 scores a row (Gaussian, and peaked rows), int8 at the per-tensor scale, uint8 output."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, (400, 129))
    x[:200][np.arange(200), rng.integers(0, 129, 200)] += 6
    q, scale = _codes(x)
    ref, p = softmax(q * scale), softmax_int(build_softmax(variant, scale), q)
    max_lsb, kl = ATTENTION_BOUNDS[variant]
    assert np.abs(p / 255 - ref).max() * 255 <= max_lsb
    assert mean_kl(p, ref) <= kl
    assert (np.abs(p.sum(-1) - 255) <= 129 / 2).all()


@pytest.mark.parametrize("variant,max_lsb", [("ibert", 1400), ("shiftmax", 1350), ("lut", 0.55), ("exp2", 0.51)])
def test_router_accuracy_against_float(variant, max_lsb):
    """16 logits, 16-bit probabilities: exp2 within 0.5 + 2 P 6.9e-8 (exp2_fixed's error) LSB of 1/65535."""
    q, scale = _codes(np.random.default_rng(3).normal(0, 1.5, (2000, 16)))
    p = softmax_int(build_softmax(variant, scale, out_bits=16), q)
    assert np.abs(p / 65535 - softmax(q * scale)).max() * 65535 <= max_lsb


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
@pytest.mark.parametrize("out_bits", [8, 16])
def test_every_variant_tabulates_bit_exactly_for_int8_scores(variant, out_bits):
    """The FPGA runs every variant as its 256-entry exp table: identical codes on every score difference."""
    rng = np.random.default_rng(3)
    q = rng.integers(-128, 128, (300, 65))
    q[:5] = [-128] * 64 + [127]  # the widest difference, -255
    for scale in (0.02, 0.08):
        k = build_softmax(variant, scale, 8, out_bits)
        t = tabulated(k)
        assert t.exp.table.shape == (256,) and t.exp.bits == k.exp.bits
        assert np.array_equal(softmax_int(t, q), softmax_int(k, q))


def test_only_int8_scores_tabulate():
    with pytest.raises(ValueError, match="only 8-bit scores"):
        tabulated(build_softmax("exp2", 0.01, 16, 16))


def test_long_flat_rows_round_to_zero_not_minus_one():
    """A row sum so large that the final shift passes 62 (8-bit output, 1024 equal i-exp scores): each
    probability, 255 / 1024 of an LSB below one half, is 0."""
    k = tabulated(build_softmax("ibert", 0.06, 8, 8))
    assert softmax_int(k, np.zeros((1, 1024), np.int64)).tolist() == [[0] * 1024]
    assert softmax_int(build_softmax("exp2", 0.01, 16, 1), np.zeros((1, 8), np.int64)).tolist() == [[0] * 8]
