"""Lookup tables built at compile time: exact 256-entry tables of one int8 input, and interpolated tables
of one wide (e.g. 16-bit) input with 2^knot_bits + 1 knots and linear interpolation between them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgec.numerics.fixed import rshift_round, saturate

__all__ = ["build_interp_lut", "build_lut", "interp_lookup", "lookup"]


def build_lut(fn: Callable[[np.ndarray], np.ndarray], in_scale: float, out_scale: float,
              out_bits: int) -> np.ndarray:
    """table[q + 128] = saturate(round_half_even(fn(q * in_scale) / out_scale)), q in [-128, 127].

    Evaluated in float64 once, at compile time; the simulator and the HLS read the same table.
    """
    x = np.arange(-128, 128, dtype=np.float64) * np.float64(in_scale)
    return saturate(np.rint(fn(x) / np.float64(out_scale)).astype(np.int64), out_bits)


def lookup(table: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The table entry of each int8 code."""
    return table[np.asarray(q, dtype=np.int64) + 128]


def build_interp_lut(fn: Callable[[np.ndarray], np.ndarray], in_scale: float, in_bits: int, out_scale: float,
                     out_bits: int, knot_bits: int) -> np.ndarray:
    """Knots of a piecewise-linear integer function of one ``in_bits``-bit signed input.

    Knot j sits at code x_j = j * 2^(in_bits - knot_bits) - 2^(in_bits - 1), j in [0, 2^knot_bits]
    (the last one just past the input range), with value saturate(round_half_even(fn(x_j * in_scale)
    / out_scale), out_bits). Evaluated in float64 once, at compile time.
    """
    step = in_bits - knot_bits
    x = (np.arange((1 << knot_bits) + 1, dtype=np.float64) * 2.0**step - 2.0 ** (in_bits - 1)) * in_scale
    return saturate(np.rint(fn(x) / np.float64(out_scale)).astype(np.int64), out_bits)


def interp_lookup(knots: np.ndarray, q: np.ndarray, in_bits: int) -> np.ndarray:
    """Linear interpolation between the two knots around each input code (exact at the knots).

    u = q + 2^(in_bits-1); j = u >> step; r = u - j * 2^step; y = t[j] + round_half_even((t[j+1] - t[j]) * r
    / 2^step), with step = in_bits - log2(len(knots) - 1).
    """
    step = in_bits - (len(knots) - 1).bit_length() + 1
    u = np.asarray(q, dtype=np.int64) + (np.int64(1) << (in_bits - 1))
    j = u >> step
    lo = knots[j]
    return lo + rshift_round((knots[j + 1] - lo) * (u - (j << step)), step)
