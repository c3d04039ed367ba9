"""How far an artifact's float output is from its reference, with no way for a NaN to look like agreement."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["relative_error"]


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|; inf when the shapes differ or either side holds a NaN or an Inf.

    (``max(worst, nan)`` keeps ``worst``: a comparison written that way lets a NaN output pass.)
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape or not (np.isfinite(got).all() and np.isfinite(want).all()):
        return math.inf
    diff = float(np.abs(got - want).max(initial=0.0))
    scale = float(np.abs(want).max(initial=0.0))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale
