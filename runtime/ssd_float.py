"""The Mamba-2 SSD (state space duality) cell in float (NumPy), as transformers' Mamba2 torch path computes it.

Shapes (any leading axes ``...``): x [..., H, P]; dt [..., H] (already softplus'd and clamped);
A [H] (negative, -exp(A_log)); B, C [..., G, N], group g shared by heads g*R .. g*R + R - 1 (R = H / G,
transformers' repeat_interleave); D [H]; state h [..., H, P, N]. Per token:

    h' = exp(dt * A) h + (dt * x) (outer) B        y = C . h' + D * x

The sequence form is the chunked SSD of transformers' torch_chunk_scan: within a chunk of T tokens, the
decay matrix L[t, s] = exp(sum_{k=s+1..t} dt_k A) (a segment sum, exact rather than a difference of
cumulative sums), intra-chunk outputs (C B^T * L) (dt x), the entering state's contribution
exp(sum_{k<=t} dt_k A) C h, and the state passed to the next chunk; only the chunks are looped over.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ssd_sequence", "ssd_step"]


def ssd_step(x: np.ndarray, dt: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray,
             h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One token: returns y [..., H, P] and the new state h [..., H, P, N]."""
    heads, groups = x.shape[-2], b.shape[-2]
    bh, ch = (np.repeat(v, heads // groups, axis=-2) for v in (b, c))  # [..., H, N]
    h = np.exp(dt * a)[..., None, None] * h + (dt[..., None] * x)[..., None] * bh[..., None, :]
    y = np.einsum("...hpn,...hn->...hp", h, ch) + d[:, None] * x
    return y, h


def _chunk(x: np.ndarray, dt: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
           h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of T tokens without the D term: x [n, T, H, P], dt [n, T, H], B, C [n, T, G, N], the entering
    state h [n, G, R, P, N] -> (y [n, T, H, P], the state after the chunk)."""
    n, t, heads, p = x.shape
    groups = b.shape[-2]
    r = heads // groups
    la = (dt * a).reshape(n, t, groups, r).transpose(0, 2, 3, 1)  # [n, G, R, T]: log decay of each token
    xs = (x * dt[..., None]).reshape(n, t, groups, r, p).transpose(0, 2, 3, 1, 4)  # [n, G, R, T, P]
    bg, cg = b.transpose(0, 2, 1, 3), c.transpose(0, 2, 1, 3)  # [n, G, T, N]
    strict = np.tril(np.ones((t, t), bool), -1)
    seg = np.cumsum(np.where(strict, la[..., :, None], la.dtype.type(0)), axis=-2)  # [.., t, s] = sum_{s<k<=t}
    decay = np.exp(np.where(np.tril(np.ones((t, t), bool)), seg, -np.inf)).astype(x.dtype, copy=False)  # L
    cb = cg @ np.swapaxes(bg, -1, -2)  # [n, G, T, T]: C_t . B_s, per group
    y = (cb[:, :, None] * decay) @ xs  # intra-chunk
    from_start = np.exp(np.cumsum(la, axis=-1))  # [n, G, R, T]: decay from the chunk's start to t (inclusive)
    y += from_start[..., None] * (cg[:, :, None] @ np.swapaxes(h, -1, -2))  # the entering state
    to_end = np.exp(seg[..., -1, :])  # [n, G, R, T]: decay from s (exclusive) to the chunk's end
    h = from_start[..., -1, None, None] * h + np.swapaxes(xs * to_end[..., None], -1, -2) @ bg[:, :, None]
    return y.transpose(0, 3, 1, 2, 4).reshape(n, t, heads, p), h


def ssd_sequence(x: np.ndarray, dt: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray,
                 chunk: int, h: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A sequence, chunk by chunk (the last chunk may be shorter): x [..., L, H, P], dt [..., L, H],
    B, C [..., L, G, N] and the entering state h [..., H, P, N] (zeros when None) -> (y [..., L, H, P], final h)."""
    *lead, length, heads, p = x.shape
    groups, n_state = b.shape[-2:]
    rows = int(np.prod(lead, dtype=np.int64))
    x2, dt2 = x.reshape(rows, length, heads, p), dt.reshape(rows, length, heads)
    b2, c2 = b.reshape(rows, length, groups, n_state), c.reshape(rows, length, groups, n_state)
    shape = (rows, groups, heads // groups, p, n_state)
    state = np.zeros(shape, x.dtype) if h is None else h.reshape(shape).astype(x.dtype, copy=False)
    y = np.empty_like(x2)
    for start in range(0, length, chunk):
        part = slice(start, min(start + chunk, length))
        y[:, part], state = _chunk(x2[:, part], dt2[:, part], a, b2[:, part], c2[:, part], state)
    y += d[:, None] * x2
    return y.reshape(x.shape), state.reshape(*lead, heads, p, n_state)
