"""Float math of the vision transformer ops (NumPy), in the orders the simulators will mirror.

- top-k: descending probability, ties to the lower expert index (ONNX TopK's rule);
- expert mixture: each expert runs on the tokens routed to it; the k slot outputs are then summed in
  slot order (highest probability first), each weighted by its probability, not renormalized.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import erf

__all__ = ["expert_slots", "gelu", "layer_norm", "moe", "patchify", "softmax", "topk"]

def gelu(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) = x / 2 * (1 + erf(x / sqrt 2)): the exact form (torch's approximate="none"), in float64."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))).astype(x.dtype)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, max-subtracted."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm(x: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over the last axis (biased variance), without affine."""
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt(np.square(centred).mean(axis=-1, keepdims=True) + x.dtype.type(eps))


def patchify(x: np.ndarray, patch: int) -> np.ndarray:
    """[..., H, W, C] -> [..., N, C*P*P]: patches row-major, each flattened in (c, y, x) order (a conv weight's)."""
    *lead, h, w, c = x.shape
    n = len(lead)
    tiles = x.reshape(*lead, h // patch, patch, w // patch, patch, c)
    order = (*range(n), n, n + 2, n + 4, n + 1, n + 3)  # grid row, grid column, channel, y, x
    return tiles.transpose(order).reshape(*lead, (h // patch) * (w // patch), c * patch * patch)


def topk(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of the last axis, descending; equal values in ascending index order -> (values, int64 indices)."""
    indices = np.argsort(-p, axis=-1, kind="stable")[..., :k].astype(np.int64)
    return np.take_along_axis(p, indices, axis=-1), indices


def moe(x: np.ndarray, weights: np.ndarray, indices: np.ndarray, expert: Callable[[int, np.ndarray], np.ndarray],
        out_dim: int) -> np.ndarray:
    """sum_j weights[..., j] * expert(indices[..., j], x), the sum in slot order j = 0 .. k-1.

    ``expert(e, rows)`` maps the [n, D] tokens routed to expert e to its [n, out_dim] outputs; each expert
    is called once, on its tokens in token order, and only if some token chose it.
    """
    k = indices.shape[-1]
    slots, w = expert_slots(x, indices, expert, out_dim), weights.reshape(-1, k)
    y = w[:, 0, None] * slots[:, 0]
    for j in range(1, k):
        y = y + w[:, j, None] * slots[:, j]
    return y.reshape(*x.shape[:-1], y.shape[-1])


def expert_slots(x: np.ndarray, indices: np.ndarray, expert: Callable[[int, np.ndarray], np.ndarray],
                 out_dim: int) -> np.ndarray:
    """[N, k, out_dim]: slot j of token n holds expert(indices[n, j]) of token n (tokens flattened to N)."""
    k = indices.shape[-1]
    flat, idx = x.reshape(-1, x.shape[-1]), indices.reshape(-1, k)
    slots = None
    for e in np.unique(idx):
        rows, cols = np.nonzero(idx == e)
        out = expert(int(e), flat[rows])
        if slots is None:
            slots = np.zeros((flat.shape[0], k, out_dim), out.dtype)
        slots[rows, cols] = out
    return slots
