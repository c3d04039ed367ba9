"""The float reference interpreter: the model's own math in float32 (or float64) NumPy."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgec.ir import Node
from edgec.runtime.base import Interpreter
from edgec.runtime.mlstm_float import mlstm_sequence, mlstm_step
from edgec.runtime.ssd_float import ssd_sequence, ssd_step

__all__ = ["FloatInterpreter", "sigmoid", "silu", "softplus"]


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), computed without overflow; torch's threshold (x > 20 -> x) is matched."""
    return np.where(x > 20, x, np.logaddexp(0, np.minimum(x, 20))).astype(x.dtype)


def silu(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: the result is the right -0
        return x / (1 + np.exp(-x))


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: the result is the right 0
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


class FloatInterpreter(Interpreter):
    """Float semantics of every op. ``dtype`` float32 matches torch fp32; float64 is a tighter reference."""

    #: Run mLSTM and SSD sequences token by token (the form the int profile computes), so that observe_state
    #: sees every state; the default is the chunkwise-parallel form of transformers' inference.
    stepwise_cells = False

    def __init__(self, weights: Mapping[str, np.ndarray], dtype: type = np.float32) -> None:
        self.weights = weights
        self.dtype = dtype

    def w(self, node: Node, role: str) -> np.ndarray | None:
        name = node.weights.get(role)
        return None if name is None else self.weights[name].astype(self.dtype, copy=False)

    def op_embed(self, node: Node, tokens: np.ndarray) -> np.ndarray:
        return self.w(node, "weight")[tokens]

    def op_rmsnorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        groups = node.attrs.get("groups", 1)
        if groups == 1:
            var = np.mean(np.square(x), axis=-1, keepdims=True)
            y = x / np.sqrt(var + self.dtype(node.attrs["eps"]))
        else:  # each of `groups` equal slices of the last axis by its own rms (Mamba-2's gated norm)
            xg = _heads(x, groups)
            var = np.mean(np.square(xg), axis=-1, keepdims=True)
            y = (xg / np.sqrt(var + self.dtype(node.attrs["eps"]))).reshape(x.shape)
        gamma = self.w(node, "weight")
        return y if gamma is None else y * gamma

    def op_linear(self, node: Node, x: np.ndarray) -> np.ndarray:
        y = x @ self.w(node, "weight").T
        bias = self.w(node, "bias")
        return y if bias is None else y + bias

    def op_split(self, node: Node, x: np.ndarray) -> tuple[np.ndarray, ...]:
        cuts = np.cumsum(node.attrs["sizes"])[:-1]
        return tuple(np.split(x, cuts, axis=-1))

    def _conv_weight(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        w = self.w(node, "weight")[:, 0, :]  # [E, K]
        bias = self.w(node, "bias")
        return w, np.zeros(w.shape[0], self.dtype) if bias is None else bias

    def op_conv1d_causal(self, node: Node, x: np.ndarray) -> np.ndarray:
        w, bias = self._conv_weight(node)
        k = w.shape[1]
        length = x.shape[-2]
        padded = np.concatenate([np.zeros((*x.shape[:-2], k - 1, x.shape[-1]), x.dtype), x], axis=-2)
        y = sum(padded[..., j:j + length, :] * w[:, j] for j in range(k))
        return y + bias

    def op_conv1d_step(self, node: Node, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, bias = self._conv_weight(node)
        window = np.concatenate([state, x[..., None]], axis=-1)  # [B, E, K], oldest first
        return np.einsum("bek,ek->be", window, w) + bias, window[..., 1:]

    def op_silu(self, node: Node, x: np.ndarray) -> np.ndarray:
        return silu(x)

    def op_softplus(self, node: Node, x: np.ndarray) -> np.ndarray:
        return softplus(x)

    def op_mul(self, node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * b

    def op_add(self, node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def op_hadamard(self, node: Node, x: np.ndarray) -> np.ndarray:
        from edgec.numerics.hadamard import hadamard_transform_float

        return hadamard_transform_float(x, node.attrs["plan"])

    def observe_state(self, node: Node, state: np.ndarray, part: str = "") -> None:
        """Called with a recurrent state after every update (``part`` names one of several, e.g. "/C");
        calibration records its range."""

    def _scan_params(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        return -np.exp(self.w(node, "A_log")), self.w(node, "D")

    def op_scan_step(self, node, u, dt, b, c, h) -> tuple[np.ndarray, np.ndarray]:
        a, d = self._scan_params(node)
        h = np.exp(dt[..., None] * a) * h + (dt * u)[..., None] * b[..., None, :]
        self.observe_state(node, h)
        y = np.einsum("ben,bn->be", h, c) + d * u
        return y, h

    def op_selective_scan(self, node, u, dt, b, c) -> np.ndarray:
        a, d = self._scan_params(node)
        h = np.zeros((*u.shape[:-2], u.shape[-1], a.shape[-1]), self.dtype)
        ys = np.empty_like(u)
        for t in range(u.shape[-2]):
            h = np.exp(dt[..., t, :, None] * a) * h + (dt[..., t, :] * u[..., t, :])[..., None] * b[..., t, None, :]
            self.observe_state(node, h)
            ys[..., t, :] = np.einsum("ben,bn->be", h, c[..., t, :])
        return ys + d * u

    def _ssd_params(self, node: Node, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dt, A, D) of an SSD node: dt = clamp(softplus(dt_raw + dt_bias), dt_min, dt_max), A = -exp(A_log)."""
        dt = np.clip(softplus(dt + self.w(node, "dt_bias")), self.dtype(node.attrs["dt_min"]),
                     self.dtype(node.attrs["dt_max"]))
        return dt, -np.exp(self.w(node, "A_log")), self.w(node, "D")

    def op_ssd_step(self, node: Node, x, dt, b, c, h) -> tuple[np.ndarray, np.ndarray]:
        """(x [B, H*P], dt [B, H] raw, B, C [B, G*N], h [B, H, P, N]) -> (y [B, H*P], h')."""
        dt, a, d = self._ssd_params(node, dt)
        heads, groups = node.attrs["heads"], node.attrs["groups"]
        y, h = ssd_step(_heads(x, heads), dt, a, _heads(b, groups), _heads(c, groups), d, h)
        self.observe_state(node, h)
        return y.reshape(x.shape), h

    def op_ssd_scan(self, node: Node, x, dt, b, c) -> np.ndarray:
        """(x [B, L, H*P], dt [B, L, H] raw, B, C [B, L, G*N]) from the zero state -> y [B, L, H*P]."""
        dt, a, d = self._ssd_params(node, dt)
        heads, groups = node.attrs["heads"], node.attrs["groups"]
        xh, bg, cg = _heads(x, heads), _heads(b, groups), _heads(c, groups)
        if not self.stepwise_cells:
            return ssd_sequence(xh, dt, a, bg, cg, d, node.attrs["chunk"])[0].reshape(x.shape)
        h = np.zeros((*xh.shape[:-3], heads, xh.shape[-1], bg.shape[-1]), self.dtype)
        y = np.empty_like(xh)
        for t in range(x.shape[-2]):
            y[..., t, :, :], h = ssd_step(xh[..., t, :, :], dt[..., t, :], a, bg[..., t, :, :], cg[..., t, :, :], d, h)
            self.observe_state(node, h)
        return y.reshape(x.shape)

    def op_sigmoid(self, node: Node, x: np.ndarray) -> np.ndarray:
        return sigmoid(x)

    def op_softcap(self, node: Node, x: np.ndarray) -> np.ndarray:
        cap = self.dtype(node.attrs["cap"])
        return cap * np.tanh(x / cap)

    def op_head_layernorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        heads = x.reshape(*x.shape[:-1], node.attrs["heads"], -1)
        centred = heads - heads.mean(axis=-1, keepdims=True)
        y = centred / np.sqrt(np.square(centred).mean(axis=-1, keepdims=True) + self.dtype(node.attrs["eps"]))
        y = y.reshape(x.shape)
        gamma = self.w(node, "weight")
        return y if gamma is None else y * gamma

    def op_mlstm_step(self, node: Node, *args: np.ndarray) -> tuple[np.ndarray, ...]:
        """(q, k, v, i, f, C, n, m) -> (h, C', n', m'); q, k, v are [B, H*d], gates [B, H]."""
        q, k, v = (_heads(x, node.attrs["heads"]) for x in args[:3])
        h, (c, n, m) = mlstm_step(q, k, v, *args[3:], node.attrs["eps"])
        self.observe_state(node, c, "/C")
        self.observe_state(node, n, "/n")
        return h.reshape(*h.shape[:-2], -1), c, n, m

    def op_mlstm_sequence(self, node: Node, *args: np.ndarray) -> np.ndarray:
        """(q, k, v, i, f) over [B, L, ...] from the zero state -> h [B, L, H*dv]."""
        if self.stepwise_cells:
            return self._mlstm_stepwise(node, *args)
        q, k, v = (np.swapaxes(_heads(x, node.attrs["heads"]), -2, -3) for x in args[:3])  # [B, H, L, d]
        i, f = (np.swapaxes(g, -1, -2) for g in args[3:])  # [B, H, L]
        h = mlstm_sequence(q, k, v, i, f, node.attrs["eps"], node.attrs["chunk"])
        return np.swapaxes(h, -2, -3).reshape(*args[0].shape[:-1], -1)

    def _mlstm_stepwise(self, node: Node, q, k, v, i, f) -> np.ndarray:
        heads = node.attrs["heads"]
        lead = q.shape[:-2]
        dqk, dv = q.shape[-1] // heads, v.shape[-1] // heads
        state = (np.zeros((*lead, heads, dqk, dv), q.dtype), np.zeros((*lead, heads, dqk), q.dtype),
                 np.zeros((*lead, heads), q.dtype))
        out = np.empty_like(v)
        for t in range(q.shape[-2]):
            out[..., t, :], *state = self.op_mlstm_step(node, q[..., t, :], k[..., t, :], v[..., t, :], i[..., t, :],
                                                        f[..., t, :], *state)
        return out

    # ViT-MoE ops (the math, in the order the simulators mirror, is in runtime/vit_float.py)

    def op_normalize_image(self, node: Node, images: np.ndarray) -> np.ndarray:
        """u8 [..., H, W, C] -> (pixel / 255 - mean) / std per channel."""
        mean, std = (np.asarray(node.attrs[k], self.dtype) for k in ("mean", "std"))
        return (images.astype(self.dtype) / self.dtype(255) - mean) / std

    def op_patch_embed(self, node: Node, x: np.ndarray) -> np.ndarray:
        from edgec.runtime.vit_float import patchify

        w = self.w(node, "weight")
        return patchify(x, node.attrs["patch"]) @ w.reshape(w.shape[0], -1).T + self.w(node, "bias")

    def op_cls_pos(self, node: Node, x: np.ndarray) -> np.ndarray:
        cls = np.broadcast_to(self.w(node, "cls").reshape(-1), (*x.shape[:-2], 1, x.shape[-1]))
        return np.concatenate([cls, x], axis=-2) + self.w(node, "pos")[0]

    def op_layernorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        from edgec.runtime.vit_float import layer_norm

        y = layer_norm(x, node.attrs["eps"])
        gamma, beta = self.w(node, "weight"), self.w(node, "bias")
        y = y if gamma is None else y * gamma
        return y if beta is None else y + beta

    def op_attn_scores(self, node: Node, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        """(q, k [..., T, h*d]) -> q_h k_h^T * scale [..., h, T, T]."""
        qh, kh = (np.swapaxes(_heads(x, node.attrs["heads"]), -2, -3) for x in (q, k))
        return (qh @ np.swapaxes(kh, -1, -2)) * self.dtype(node.attrs["scale"])

    def op_softmax(self, node: Node, x: np.ndarray) -> np.ndarray:
        from edgec.runtime.vit_float import softmax

        return softmax(x)

    def op_attn_context(self, node: Node, probs: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(probs [..., h, T, T], v [..., T, h*d]) -> probs @ v_h, heads concatenated [..., T, h*d]."""
        ctx = probs @ np.swapaxes(_heads(v, node.attrs["heads"]), -2, -3)
        return np.swapaxes(ctx, -2, -3).reshape(v.shape)

    def op_gelu(self, node: Node, x: np.ndarray) -> np.ndarray:
        from edgec.runtime.vit_float import gelu

        return gelu(x)

    def op_route_logits(self, node: Node, x: np.ndarray) -> np.ndarray:
        y = x @ self.w(node, "weight")
        bias = self.w(node, "bias")  # after a LayerNorm's bias is folded in
        return y if bias is None else y + bias

    def op_topk(self, node: Node, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from edgec.runtime.vit_float import topk

        return topk(p, node.attrs["k"])

    def op_moe(self, node: Node, x: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
        from edgec.runtime.vit_float import gelu, moe

        w2, b2 = self.w(node, "fc2_weight"), self.w(node, "fc2_bias")

        def expert(e: int, rows: np.ndarray) -> np.ndarray:
            out = gelu(self.expert_fc1(node, e, rows)) @ w2[e].T
            return out if b2 is None else out + b2[e]

        return moe(x, weights, indices, expert, w2.shape[1])

    def expert_fc1(self, node: Node, e: int, rows: np.ndarray) -> np.ndarray:
        """Expert ``e``'s first linear layer of an MOE node on ``rows`` [n, D] -> [n, Hm]."""
        w1, b1 = self.w(node, "fc1_weight")[e], self.w(node, "fc1_bias")
        return rows @ w1.T if b1 is None else rows @ w1.T + b1[e]

    def op_cls_pool(self, node: Node, x: np.ndarray) -> np.ndarray:
        return x[..., 0, :]


def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """[..., H*d] -> [..., H, d]."""
    return x.reshape(*x.shape[:-1], heads, -1)
