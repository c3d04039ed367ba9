"""256-entry lookup tables: exact integer functions of one int8 input, built at compile time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgec.numerics.fixed import saturate

__all__ = ["build_lut", "lookup"]


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
