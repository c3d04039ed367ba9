"""Integer (int profile) handlers of the vision transformer ops, mixed into IntSimulator.

Orders the FPGA mirrors: attention scores and P.V accumulate exactly (int8 x int8, uint8 x int8);
a router ranks experts on its 16-bit logit codes (exp is monotone, so this is the exact top-k of the
quantized logits; ties to the lower index), its 16-bit softmax only weights them; an MOE runs each
expert on its tokens in token order (fc1 int32 -> int8 at the expert's scale -> GELU table -> fc2 int32),
multiplies each slot's accumulators by the 16-bit route weight, requantizes every slot into the residual
scale (32-bit) and sums the slots in slot order, saturating once at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from edgec.ir import Node, Op
from edgec.numerics.fixed import quantize_multiplier, requant, saturate
from edgec.numerics.gelu import build_gelu, gelu_int
from edgec.numerics.layernorm import build_layernorm, layernorm_int
from edgec.numerics.lut import lookup
from edgec.numerics.softmax import Exp2Exp, LutExp, SoftmaxConstants, build_softmax, softmax_int, tabulated
from edgec.numerics.topk import topk_int
from edgec.passes.fold_image import is_centred
from edgec.passes.quantize import QuantizedModel, merged_graph
from edgec.runtime.int_ops import int_matmul
from edgec.runtime.vit_float import expert_slots, patchify

__all__ = ["ROUTER_SOFTMAX", "VitIntOps"]

T = TypeVar("T")
ROUTER_SOFTMAX = "exp2"  # 16-bit logits -> 16-bit route weights


def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """[..., T, h*d] -> [..., h, T, d]."""
    return np.swapaxes(x.reshape(*x.shape[:-1], heads, -1), -2, -3)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b of integer codes, exact (float64 BLAS below 2^53)."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


class VitIntOps:
    """The ViT-MoE handlers; the host class provides qm, const, _acc_scale, _bias_q and _requant_to_output."""

    qm: QuantizedModel
    const: Callable[[Node, str, Callable[[], Any]], Any]
    _acc_scale: Callable[[Node], np.ndarray]
    _bias_q: Callable[[Node], np.ndarray | int]
    _requant_to_output: Callable[[Node, np.ndarray], np.ndarray]
    _lut: Callable[..., np.ndarray]

    def _ranked_by_logits(self) -> dict[str, np.ndarray]:
        """Softmax inputs kept for the top-k that reads the softmax's output (by that output's name)."""
        if "_logit_codes" not in self.__dict__:
            graph = merged_graph(self.qm.graphs)
            self._ranked = {n.inputs[0] for n in graph.nodes if n.op is Op.TOPK}
            self._logit_codes: dict[str, np.ndarray] = {}
        return self._logit_codes

    def op_normalize_image(self, node: Node, images: np.ndarray) -> np.ndarray:
        if not is_centred(node.attrs):
            raise ValueError(f"{node.name}: the int profile takes pixel - 128; fold the normalization into the "
                             "patch embedding first (passes/fold_image.py)")
        return images.astype(np.int64) - 128

    def op_patch_embed(self, node: Node, x: np.ndarray) -> np.ndarray:
        w = self.qm.qweights[node.weights["weight"]]
        acc = int_matmul(patchify(x, node.attrs["patch"]), w.reshape(w.shape[0], -1))
        return self._requant_to_output(node, acc + self.const(node, "bias", lambda: self._bias_q(node)))

    def op_cls_pos(self, node: Node, x: np.ndarray) -> np.ndarray:
        """cls + pos[0], then patches + pos[1:], both rounded once at the residual scale of the output."""
        out = node.outputs[0]

        def table() -> np.ndarray:
            pos = self.qm.fparams[node.weights["pos"]][0].astype(np.float64)
            pos[0] += self.qm.fparams[node.weights["cls"]].reshape(-1)
            return saturate(np.rint(pos / self.qm.scales[out]).astype(np.int64), self.qm.bits[out])

        add = self.const(node, "table", table)
        cls = np.broadcast_to(add[0], (*x.shape[:-2], 1, x.shape[-1]))
        return saturate(np.concatenate([cls, x + add[1:]], axis=-2), self.qm.bits[out])

    def op_layernorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        src, out = node.inputs[0], node.outputs[0]

        def build():
            gamma, beta = (self.qm.fparams[node.weights[r]] if r in node.weights else None for r in ("weight", "bias"))
            if (gamma is None) != (beta is None):  # an affine not folded away (both, or neither)
                d = x.shape[-1]
                gamma, beta = (np.ones(d) if gamma is None else gamma), (np.zeros(d) if beta is None else beta)
            return build_layernorm(x.shape[-1], self.qm.scales[src], self.qm.scales[out], node.attrs["eps"], gamma,
                                   beta, self.qm.bits[src], self.qm.bits[out])

        return layernorm_int(self.const(node, "ln", build), x)

    def _product_requant(self, node: Node, acc: np.ndarray, real: float) -> np.ndarray:
        m, shift = self.const(node, "out", lambda: quantize_multiplier(real / self.qm.scales[node.outputs[0]]))
        return requant(acc, m, shift, self.qm.bits[node.outputs[0]])

    def op_attn_scores(self, node: Node, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        heads = node.attrs["heads"]
        acc = _exact_matmul(_heads(q, heads), np.swapaxes(_heads(k, heads), -1, -2))
        s = self.qm.scales
        return self._product_requant(node, acc, s[node.inputs[0]] * s[node.inputs[1]] * float(node.attrs["scale"]))

    def op_attn_context(self, node: Node, probs: np.ndarray, v: np.ndarray) -> np.ndarray:
        acc = np.swapaxes(_exact_matmul(probs, _heads(v, node.attrs["heads"])), -2, -3).reshape(v.shape)
        return self._product_requant(node, acc, self.qm.scales[node.inputs[0]] * self.qm.scales[node.inputs[1]])

    def _softmax(self, node: Node) -> SoftmaxConstants:
        """int8 scores (attention): the chosen variant's exp as a 256-entry table; wider ones (a router's
        16-bit logits): exp2."""
        src, out = node.inputs[0], node.outputs[0]
        in_bits, out_bits, scale = self.qm.bits[src], self.qm.bits[out], self.qm.scales[src]
        if in_bits == 8:
            table, bits = self.const(node, "exp_table", lambda: (lambda e: (e.table, e.bits))(
                tabulated(build_softmax(self.qm.options.softmax, scale, 8, out_bits)).exp))
            return SoftmaxConstants(LutExp(table, int(bits)), in_bits, out_bits)
        m, frac = self.const(node, "exp2", lambda: (lambda e: (e.m, e.frac))(
            build_softmax(ROUTER_SOFTMAX, scale, in_bits, out_bits).exp))
        return SoftmaxConstants(Exp2Exp(int(m), int(frac)), in_bits, out_bits)

    def op_softmax(self, node: Node, x: np.ndarray) -> np.ndarray:
        kept = self._ranked_by_logits()
        if node.outputs[0] in self._ranked:
            kept[node.outputs[0]] = x
        return softmax_int(self._softmax(node), x)

    def op_topk(self, node: Node, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = self._ranked_by_logits().pop(node.inputs[0], None)
        if logits is None:
            return topk_int(p, node.attrs["k"])
        _, idx = topk_int(logits, node.attrs["k"])
        return np.take_along_axis(p, idx, axis=-1), idx

    def _gelu_table(self, in_scale: float, out_scale: float) -> np.ndarray:
        """The chosen GELU variant at every int8 input code: a 256-entry table (exact for any variant)."""
        k = build_gelu(self.qm.options.gelu, in_scale, out_scale)
        return gelu_int(k, np.arange(-128, 128, dtype=np.int64))

    def op_gelu(self, node: Node, x: np.ndarray) -> np.ndarray:
        s = self.qm.scales
        return lookup(self.const(node, "lut", lambda: self._gelu_table(s[node.inputs[0]], s[node.outputs[0]])), x)

    def op_route_logits(self, node: Node, x: np.ndarray) -> np.ndarray:
        acc = int_matmul(x, self.qm.qweights[node.weights["weight"]].T)
        return self._requant_to_output(node, acc + self.const(node, "bias", lambda: self._bias_q(node)))

    def _expert_scales(self, node: Node, part: str) -> np.ndarray:
        return np.array([self.qm.state_scales[f"{node.name}/{part}/{e}"] for e in range(node.attrs["experts"])])

    def _moe_constants(self, node: Node) -> tuple[Any, ...]:
        """Per expert (stacked over all E, so every expert's constants exist after any run): fc1 bias and
        requant, GELU tables, fc2 bias and the requant of (fc2 accumulator x route weight) into the output."""
        qm, w = self.qm, node.weights
        s_x, s_w, s_out = qm.scales[node.inputs[0]], qm.scales[node.inputs[1]], qm.scales[node.outputs[0]]
        s_fc1, s_act = self._expert_scales(node, "fc1"), self._expert_scales(node, "act")
        acc1 = s_x * qm.wscales[w["fc1_weight"]].astype(np.float64)  # [E, Hm]
        acc2 = s_act[:, None] * qm.wscales[w["fc2_weight"]].astype(np.float64)  # [E, D]

        def bias(role: str, acc_scale: np.ndarray) -> np.ndarray:
            b = qm.fparams[w[role]].astype(np.float64) if role in w else np.zeros(acc_scale.shape)
            q = np.rint(b / acc_scale)
            if np.abs(q).max() >= 2**31:
                raise ValueError(f"{role} of {node.name} does not fit int32 at its accumulator scale")
            return q.astype(np.int64)

        c = self.const
        return (c(node, "fc1_bias", lambda: bias("fc1_bias", acc1)),
                c(node, "fc1_out", lambda: quantize_multiplier(acc1 / s_fc1[:, None])),
                c(node, "act_lut", lambda: np.stack([self._gelu_table(a, b) for a, b in zip(s_fc1, s_act,
                                                                                             strict=True)])),
                c(node, "fc2_bias", lambda: bias("fc2_bias", acc2)),
                c(node, "out", lambda: quantize_multiplier(acc2 * s_w / s_out)))

    def op_moe(self, node: Node, x: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
        b1, (m1, sh1), luts, b2, (m2, sh2) = self._moe_constants(node)
        q1, q2 = self.qm.qweights[node.weights["fc1_weight"]], self.qm.qweights[node.weights["fc2_weight"]]

        def expert(e: int, rows: np.ndarray) -> np.ndarray:
            h = requant(int_matmul(rows, q1[e]) + b1[e], m1[e], sh1[e], 8)
            return int_matmul(lookup(luts[e], h), q2[e]) + b2[e]

        k = indices.shape[-1]
        slots = expert_slots(x, indices, expert, q2.shape[1])  # [N, k, D] int32 accumulators
        idx, w = indices.reshape(-1, k), weights.reshape(-1, k)
        y = sum(requant(slots[:, j] * w[:, j, None], m2[idx[:, j]], sh2[idx[:, j]], 32) for j in range(k))
        return saturate(y, self.qm.bits[node.outputs[0]]).reshape(*x.shape[:-1], -1)

    def op_cls_pool(self, node: Node, x: np.ndarray) -> np.ndarray:
        return x[..., 0, :]
