"""The mLSTM cell in float (NumPy), mirroring Hugging Face transformers' native xLSTM kernels exactly.

Shapes: q, k [B, H, dqk]; v [B, H, dv]; gate pre-activations i, f [B, H]; state C [B, H, dqk, dv],
n [B, H, dqk], m [B, H]. Only q is scaled, by dqk^-0.5; eps is added after the denominator's max.
The stabilizer m does not cancel (the denominator's floor exp(-m) and eps depend on it), so the
sequence form follows transformers' inference path exactly: whole chunks in the chunkwise-parallel
form, the remaining tokens step by step.
"""

from __future__ import annotations

import numpy as np

__all__ = ["State", "logsigmoid", "mlstm_sequence", "mlstm_step"]


def logsigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) = -log(1 + e^-x), without overflow."""
    return -np.logaddexp(0, -x).astype(x.dtype)


State = tuple[np.ndarray, np.ndarray, np.ndarray]  # (C, n, m)


def mlstm_step(q: np.ndarray, k: np.ndarray, v: np.ndarray, i: np.ndarray, f: np.ndarray, c: np.ndarray,
               n: np.ndarray, m: np.ndarray, eps: float) -> tuple[np.ndarray, State]:
    """One token: returns h [B, H, dv] and the new (C, n, m)."""
    logf = logsigmoid(f)
    m_new = np.maximum(logf + m, i)
    f_act, i_act = np.exp(logf + m - m_new), np.exp(i - m_new)
    c = f_act[..., None, None] * c + i_act[..., None, None] * (k[..., :, None] * v[..., None, :])
    n = f_act[..., None] * n + i_act[..., None] * k
    qs = q * q.dtype.type(q.shape[-1] ** -0.5)
    num = np.einsum("bhd,bhde->bhe", qs, c)
    qn = np.einsum("bhd,bhd->bh", qs, n)
    den = np.maximum(np.abs(qn), np.exp(-m_new)) + q.dtype.type(eps)
    return num / den[..., None], (c, n, m_new)


def _chunks(q: np.ndarray, k: np.ndarray, v: np.ndarray, i: np.ndarray, f: np.ndarray, c: np.ndarray,
            n: np.ndarray, m: np.ndarray, eps: float, chunk: int) -> tuple[np.ndarray, State]:
    """Whole chunks of ``chunk`` tokens in the chunkwise-parallel form: h [B, H, T, dv] and the last state.

    q, k, v are [B, H, T, d]; i, f [B, H, T]; T a multiple of ``chunk``.
    """
    b, h, t, dqk = q.shape
    nc, dt = t // chunk, q.dtype
    scale = dt.type(dqk ** -0.5)
    qc, kc, vc = (x.reshape(b, h, nc, chunk, x.shape[-1]) for x in (q, k, v))
    ic = i.reshape(b, h, nc, chunk)
    cum = np.cumsum(logsigmoid(f.reshape(b, h, nc, chunk)), axis=-1, dtype=dt)  # b_t within each chunk
    a = cum[..., -1:] - cum + ic  # log weight of token s in the chunk's end state
    g, a_max = cum[..., -1], a.max(axis=-1)
    causal = np.tril(np.ones((chunk, chunk), bool))
    out = np.empty((b, h, nc, chunk, vc.shape[-1]), dt)
    for j in range(nc):  # the state entering chunk j, then its outputs, then the state after it
        log_d = np.where(causal, cum[..., j, :, None] - cum[..., j, None, :], -np.inf) + ic[..., j, None, :]
        m_inter = cum[..., j, :] + m[..., None]
        m_comb = np.maximum(m_inter, log_d.max(axis=-1))
        d = np.exp(log_d - m_comb[..., None])
        s = np.einsum("bhtd,bhsd->bhts", qc[..., j, :, :], kc[..., j, :, :]) * scale * d
        qg = qc[..., j, :, :] * (np.exp(m_inter - m_comb) * scale)[..., None]
        num = np.einsum("bhtd,bhde->bhte", qg, c) + np.einsum("bhts,bhse->bhte", s, vc[..., j, :, :])
        den_l = np.einsum("bhtd,bhd->bht", qg, n) + s.sum(axis=-1)
        den = np.maximum(np.abs(den_l), np.exp(-m_comb)) + dt.type(eps)
        out[..., j, :, :] = num / den[..., None]
        m_next = np.maximum(g[..., j] + m, a_max[..., j])
        kg = kc[..., j, :, :] * np.exp(a[..., j, :] - m_next[..., None])[..., None]
        decay = np.exp(g[..., j] + m - m_next)
        c = decay[..., None, None] * c + np.einsum("bhsd,bhse->bhde", kg, vc[..., j, :, :])
        n = decay[..., None] * n + kg.sum(axis=-2)
        m = m_next
    return out.reshape(b, h, t, -1), (c, n, m)


def mlstm_sequence(q: np.ndarray, k: np.ndarray, v: np.ndarray, i: np.ndarray, f: np.ndarray, eps: float,
                   chunk: int) -> np.ndarray:
    """A sequence from the zero state (C, n, m all 0): q, k, v [B, H, T, d], i, f [B, H, T] -> h [B, H, T, dv]."""
    b, h, t, dqk = q.shape
    c = np.zeros((b, h, dqk, v.shape[-1]), q.dtype)
    n = np.zeros((b, h, dqk), q.dtype)
    m = np.zeros((b, h), q.dtype)
    whole = (t // chunk) * chunk if t > 1 else 0
    outs = []
    if whole:
        head, (c, n, m) = _chunks(q[..., :whole, :], k[..., :whole, :], v[..., :whole, :], i[..., :whole],
                                  f[..., :whole], c, n, m, eps, chunk)
        outs.append(head)
    for s in range(whole, t):
        h_s, (c, n, m) = mlstm_step(q[..., s, :], k[..., s, :], v[..., s, :], i[..., s], f[..., s], c, n, m, eps)
        outs.append(h_s[..., None, :])
    return np.concatenate(outs, axis=-2)
