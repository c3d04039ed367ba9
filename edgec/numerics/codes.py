"""Checks shared by the integer nonlinearities: inputs are integer codes of a declared signed width."""

from __future__ import annotations

import numpy as np

__all__ = ["int_codes"]


def int_codes(x: np.ndarray, bits: int, what: str) -> np.ndarray:
    """``x`` as int64 after checking it holds integers in [-2^(bits-1), 2^(bits-1) - 1].

    A float array, or a code outside the declared width, is a ValueError naming ``what``: every
    primitive's overflow analysis starts from that width, so nothing outside it is computed.
    """
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what}: integer codes expected, got dtype {arr.dtype}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):  # checked before a uint64 could wrap
        raise ValueError(f"{what}: codes must lie in [{lo}, {hi}] ({bits}-bit), got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)
