"""Integer top-k over the last axis with a constant k: k passes of argmax, ties to the lower index."""

from __future__ import annotations

import numpy as np

from edgec.numerics.codes import int_codes

__all__ = ["topk_int"]


def topk_int(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest integer scores of the last axis, descending -> (values, int64 indices), each [..., k].

    Pass j (a fixed trip count of k) takes the first maximum of the scores not yet taken: a scan from
    index 0 that replaces its best only on a strictly greater score, so of equal scores the lower index
    comes first (ONNX TopK's rule, and edgec.runtime.vit_float.topk's). A taken score is replaced by
    -2^63, below the domain. Domain: integer scores in [-2^63 + 1, 2^63 - 1], 1 <= k <= width.
    """
    s = int_codes(scores, 64, "topk")
    if s.ndim == 0 or not 1 <= k <= s.shape[-1]:
        raise ValueError(f"topk: k must be in [1, width], got k={k} for shape {s.shape}")
    taken = np.iinfo(np.int64).min
    if (s == taken).any():
        raise ValueError("topk: scores must be above -2^63 (the mark of a taken score)")
    work = s.copy()
    idx = np.empty((*s.shape[:-1], k), np.int64)
    for j in range(k):
        idx[..., j] = np.argmax(work, axis=-1)  # the first maximum
        np.put_along_axis(work, idx[..., j, None], taken, axis=-1)
    return np.take_along_axis(s, idx, axis=-1), idx
