"""How far an artifact's float output is from its reference, with no way for a NaN to look like agreement."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mean_kl", "relative_error"]


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


def mean_kl(p: np.ndarray, ref: np.ndarray) -> float:
    """D(p || ref) = sum p log(p / ref) over the last axis, averaged over rows, in nats.

    Each row of ``p`` is normalized first, so integer probability codes can be passed as they are;
    terms with p = 0 count 0 (an approximation that rounds a small probability to 0 is not charged
    infinitely). inf when the shapes differ, either side holds a NaN or an Inf, a row of p is negative or all
    zero, or ref is 0 where p is not.
    """
    p, ref = np.asarray(p, np.float64), np.asarray(ref, np.float64)
    if p.shape != ref.shape or not (np.isfinite(p).all() and np.isfinite(ref).all()):
        return math.inf
    total = p.sum(axis=-1, keepdims=True)
    if (total <= 0).any() or (p < 0).any():
        return math.inf
    p = p / total
    if ((p > 0) & (ref <= 0)).any():
        return math.inf
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(p > 0, ref, 1.0)), 0.0)
    return float(terms.sum(axis=-1).mean())
