"""ONNX emitters of the vision transformer ops, and the exporter of a stateless entry graph (one per task).

Static shapes but the batch: no NonZero, no data-dependent shape. Q/DQ (QDQBERT placement, the qdq
simulator's ``qdq_scales``): the input of every linear layer (patch embedding as an int8 Conv, qkv, proj,
MLP, router, each expert's fc1 and, at that expert's own scale, its fc2), both inputs of Q.K^T, and both
inputs of P.V only with ``QuantOptions.qdq_pv``. LayerNorm is decomposed (TensorRT 8.5 has no
LayerNormalization), GELU is the erf form, the router is Softmax + TopK with a constant K (ties to the lower
index, as ONNX specifies), and the expert mixture is dense-masked: every expert runs on every token and its
output is weighted by the routing weight of the slot that chose it (0 elsewhere), so each token gets exactly
the simulator's sum over its k experts without any dispatch of data-dependent size.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from edgec.ir import Node

__all__ = ["VisionEmitters"]


class VisionEmitters:
    """ONNX emitters of the ViT ops; mixed into the exporter (targets/onnx/export.py), which provides qm, nodes,
    node, init, const_f32, axes, output, bias, dq_weight, zero_point and the list ``routes`` (TopK index
    outputs)."""

    def _emit_normalize_image(self, node: Node) -> None:
        """(pixel / 255 - mean) / std per channel, the float interpreter's float32 order."""
        out = node.outputs[0]
        x = self.node("Cast", [node.inputs[0]], out + ".u8f", to=TensorProto.FLOAT)
        x = self.node("Div", [x, self.const_f32("pixel_255", 255.0)], out + ".unit")
        x = self.node("Sub", [x, self.const_f32(f"{out}.mean", node.attrs["mean"])], out + ".centred")
        self.node("Div", [x, self.const_f32(f"{out}.std", node.attrs["std"])], self.output(out))

    def _emit_patch_embed(self, node: Node) -> None:
        """An int8 Conv with stride P on the NCHW image, then [B, D, h, w] -> [B, N, D] (patches row-major)."""
        out, patch = node.outputs[0], node.attrs["patch"]
        nchw = self.node("Transpose", [node.inputs[0]], out + ".nchw", perm=[0, 3, 1, 2])
        bias = self.const_f32(node.weights["bias"], self.qm.fparams[node.weights["bias"]])
        conv = self.node("Conv", [nchw, self.dq_weight(node.weights["weight"], False, keep_shape=True), bias],
                         out + ".conv", kernel_shape=[patch, patch], strides=[patch, patch])
        flat = self.node("Reshape", [conv, self.init("shape_0_0_m1", np.array([0, 0, -1], np.int64))], out + ".flat")
        self.node("Transpose", [flat], self.output(out), perm=[0, 2, 1])

    def _emit_cls_pos(self, node: Node) -> None:
        """[cls; patches] + pos: cls expanded to the batch (Shape -> Expand, no data-dependent shape)."""
        x, out = node.inputs[0], node.outputs[0]
        cls = self.qm.fparams[node.weights["cls"]].reshape(1, 1, -1).astype(np.float32)
        batch = self.node("Slice", [self.node("Shape", [x], out + ".shape"), self.init("slice_0", np.array([0])),
                                    self.init("slice_1", np.array([1], np.int64))], out + ".batch")
        shape = self.node("Concat", [batch, self.init(f"{out}.cls_shape", np.array([1, cls.shape[-1]], np.int64))],
                          out + ".cls_dims", axis=0)
        cls_b = self.node("Expand", [self.const_f32(node.weights["cls"], cls), shape], out + ".cls")
        tokens = self.node("Concat", [cls_b, x], out + ".tokens", axis=1)
        pos = self.const_f32(node.weights["pos"], self.qm.fparams[node.weights["pos"]][0])
        self.node("Add", [tokens, pos], self.output(out))

    def _emit_layernorm(self, node: Node) -> None:
        """(x - mean) / sqrt(var + eps) over the last axis, decomposed and in fp32 (the residual stream's square
        overflows fp16 once |x| > 255.9: lint fp16-square-overflow); then the affine if not folded away."""
        x, out = node.inputs[0], node.outputs[0]
        gamma, beta = node.weights.get("weight"), node.weights.get("bias")
        with self.fp32_region():
            centred = self.node("Sub", [x, self.node("ReduceMean", [x], out + ".mean", axes=[-1], keepdims=1)],
                                out + ".centred")
            var = self.node("ReduceMean", [self.node("Mul", [centred, centred], out + ".sq")], out + ".var",
                            axes=[-1], keepdims=1)
            std = self.node("Sqrt", [self.node("Add", [var, self.const_f32(f"{out}.eps", node.attrs["eps"])],
                                               out + ".var_eps")], out + ".std")
            y = self.node("Div", [centred, std], out + ".normed" if gamma or beta else self.output(out))
        if gamma:
            y = self.node("Mul", [y, self.const_f32(gamma, self.qm.fparams[gamma])],
                          out + ".scaled" if beta else self.output(out))
        if beta:
            self.node("Add", [y, self.const_f32(beta, self.qm.fparams[beta])], self.output(out))

    def _split_heads(self, value: str, heads: int, perm: list[int], name: str) -> str:
        """[B, T, h*d] -> [B, h, T, d] (perm [0, 2, 1, 3]) or [B, h, d, T] (perm [0, 2, 3, 1])."""
        x = self.node("Reshape", [value, self.init(f"shape_0_0_{heads}_m1", np.array([0, 0, heads, -1], np.int64))],
                      name + ".heads")
        return self.node("Transpose", [x], name + ".perm", perm=perm)

    def _emit_attn_scores(self, node: Node) -> None:
        q, k = node.inputs
        out, heads = node.outputs[0], node.attrs["heads"]
        qh = self._split_heads(q, heads, [0, 2, 1, 3], out + ".q")
        kt = self._split_heads(k, heads, [0, 2, 3, 1], out + ".k")
        if node.attrs["scale"] == 1.0:  # folded into q's projection (passes/fold_attention_scale.py)
            self.node("MatMul", [qh, kt], self.output(out))
            return
        scores = self.node("MatMul", [qh, kt], out + ".qk")
        self.node("Mul", [scores, self.const_f32(f"attn_scale_{node.attrs['scale']:g}", node.attrs["scale"])],
                  self.output(out))

    def _emit_softmax(self, node: Node) -> None:
        self.node("Softmax", [node.inputs[0]], self.output(node.outputs[0]), axis=-1)

    def _emit_attn_context(self, node: Node) -> None:
        probs, v = node.inputs
        out = node.outputs[0]
        ctx = self.node("MatMul", [probs, self._split_heads(v, node.attrs["heads"], [0, 2, 1, 3], out + ".v")],
                        out + ".pv")
        ctx = self.node("Transpose", [ctx], out + ".tokens", perm=[0, 2, 1, 3])
        self.node("Reshape", [ctx, self.init("shape_0_0_m1", np.array([0, 0, -1], np.int64))], self.output(out))

    def _gelu(self, x: str, name: str) -> str:
        """x / 2 * (1 + erf(x / sqrt 2)), the exact form."""
        erf = self.node("Erf", [self.node("Div", [x, self.const_f32("sqrt_2", np.sqrt(2.0))], name + ".scaled")],
                        name + ".erf")
        half = self.node("Mul", [x, self.const_f32("half", 0.5)], name + ".half")
        return self.node("Mul", [half, self.node("Add", [erf, self.const_f32("one", 1.0)], name + ".1perf")], name)

    def _emit_gelu(self, node: Node) -> None:
        self._gelu(node.inputs[0], self.output(node.outputs[0]))

    def _emit_route_logits(self, node: Node) -> None:
        """x @ W [D, E]: int8 columns with one scale per expert (axis 1)."""
        out = node.outputs[0]
        y = self.node("MatMul", [node.inputs[0], self.dq_columns(node.weights["weight"])], out + ".mm")
        self.node("Identity", [self.bias(node, y)], self.output(out))

    def _emit_topk(self, node: Node) -> None:
        values, indices = node.outputs
        k = self.init(f"topk_k_{node.attrs['k']}", np.array([node.attrs["k"]], np.int64))
        self.nodes.append(helper.make_node("TopK", [node.inputs[0], k], [self.output(values), self.output(indices)],
                                           name=node.name, axis=-1, largest=1, sorted=1))
        self.routes.append(indices)

    def _emit_moe(self, node: Node) -> None:
        """Dense-masked experts: y = sum_e gate_e * expert_e(x), gate_e the weight of the slot that chose e."""
        x, weights, indices = node.inputs
        out, w, qm = node.outputs[0], node.weights, self.qm
        total = None
        for e in range(node.attrs["experts"]):
            name = f"{node.name}.e{e}"
            h = self._expert_linear(x, w["fc1_weight"], e, w.get("fc1_bias"), name + ".fc1")
            act = self._gelu(h, name + ".act.f")
            if self.q_points:  # the int8 graph (the float twin has none)
                scale = self.const_f32(f"{name}.act.scale", qm.state_scales[f"{node.name}/act/{e}"])
                zero = self.zero_point()
                q = self.node("QuantizeLinear", [act, scale, zero], name + ".act.q")
                act = self.node("DequantizeLinear", [q, scale, zero], name + ".act")
            y = self._expert_linear(act, w["fc2_weight"], e, w.get("fc2_bias"), name + ".fc2")
            chose = self.node("Cast", [self.node("Equal", [indices, self.init(f"expert_{e}", np.array(e, np.int64))],
                                                 name + ".chose")], name + ".chosef", to=TensorProto.FLOAT)
            gate = self.node("ReduceSum", [self.node("Mul", [chose, weights], name + ".slot_w"), self.axes(-1)],
                             name + ".gate", keepdims=1)
            y = self.node("Mul", [y, gate], name + ".weighted")
            total = y if total is None else self.node("Add", [total, y], f"{name}.sum")
        self.node("Identity", [total], self.output(out))

    def dq_columns(self, name: str) -> str:
        """A [D, E] int8 weight behind a DequantizeLinear with one scale per column (axis 1)."""
        zero = self.init(f"{name}.zero", np.zeros(self.qm.wscales[name].shape, np.int8))
        return self.node("DequantizeLinear", [self.init(f"{name}.int8", self.qm.qweights[name]),
                                              self.const_f32(f"{name}.scale", self.qm.wscales[name]), zero],
                         f"{name}.dq", axis=1)

    def dq_expert(self, weight: str, e: int) -> str:
        """Expert e's [in, out] weight from [E, out, in] int8, one scale per (expert, output channel)."""
        q, scale = self.qm.qweights[weight][e], self.qm.wscales[weight][e].astype(np.float32)
        codes = self.init(f"{weight}.{e}.int8", np.ascontiguousarray(q.T))
        zero = self.init(f"{weight}.{e}.zero", np.zeros(scale.shape, np.int8))
        return self.node("DequantizeLinear", [codes, self.init(f"{weight}.{e}.scale", scale), zero],
                         f"{weight}.{e}.dq", axis=1)

    def _expert_linear(self, x: str, weight: str, e: int, bias: str | None, name: str) -> str:
        """Expert e's linear layer on every token."""
        y = self.node("MatMul", [x, self.dq_expert(weight, e)], name + ".mm")
        if bias is None:
            return y
        return self.node("Add", [y, self.const_f32(f"{bias}.{e}", self.qm.fparams[bias][e])], name)

    def _emit_cls_pool(self, node: Node) -> None:
        self.node("Gather", [node.inputs[0], self.init("index_0", np.array(0, np.int64))],
                  self.output(node.outputs[0]), axis=1)
