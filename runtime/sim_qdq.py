"""The simulator of the ``qdq`` profile: ONNX QuantizeLinear/DequantizeLinear semantics.

Each input of a linear or conv layer is quantized (round half to even, saturate to int8, zero
point 0) and dequantized; the layer multiplies int8 codes with int8 per-channel weights, exactly
in int32, and scales the sum in float32. Everything between these islands is float32: softplus,
exp(dt*A), the scan and its fp32 state, the gate, the Hadamard rotation, the residual stream.

Mamba-2's SSD reads its dt (in_proj's dt segment, before dt_bias) through a Q/DQ pair, so that it sees the
int8 code the int profile tabulates; then the SSD runs in float32 with its fp32 state (x, B and C float).

Vision transformer (QDQBERT placement): Q/DQ on the input of every PATCH_EMBED, ROUTE_LOGITS and expert
linear layer (fc1 on the MOE input, fc2 on each expert's GELU output at that expert's scale), on both
inputs of Q.K^T, and on both inputs of P.V only when ``QuantOptions.qdq_pv`` asks (the probabilities then
int8 at scale 1/127: TensorRT quantizes to signed int8 only); by default P.V stays float (fp16 on TensorRT:
int8 probabilities flip clear routing decisions downstream, see passes/quantize.py). LayerNorm, softmax,
GELU, routing and the residual stream stay float32.
"""

from __future__ import annotations

import numpy as np

from edgec.ir import Node, Op
from edgec.passes.quantize import QuantizedModel, merged_graph
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.int_ops import Float32Weights, int_matmul
from edgec.runtime.vit_float import gelu, moe, patchify

__all__ = ["PROBS_SCALE", "QdqSimulator", "dequantize_linear", "qdq_scales", "quantize_linear"]

PROBS_SCALE = float(np.float32(1 / 127))  # int8 attention probabilities (qdq_pv): [0, 1] onto [0, 127]


def quantize_linear(x: np.ndarray, scale: float) -> np.ndarray:
    """ONNX QuantizeLinear to int8, zero point 0: saturate(round_half_even(x / scale))."""
    return np.clip(np.rint(x / np.float32(scale)), -128, 127).astype(np.int8)


def dequantize_linear(q: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * np.asarray(scale, dtype=np.float32)


_QDQ_FIRST_INPUT = (Op.LINEAR, Op.CONV1D_CAUSAL, Op.PATCH_EMBED, Op.ROUTE_LOGITS, Op.MOE)


def qdq_scales(qm: QuantizedModel) -> dict[str, float]:
    """Every value the qdq profile quantizes (a Q/DQ pair in the ONNX graph) and its per-tensor scale."""
    graph = merged_graph(qm.graphs)
    points = {n.inputs[0] for n in graph.nodes if n.op in _QDQ_FIRST_INPUT}
    products = (Op.ATTN_SCORES, Op.ATTN_CONTEXT) if qm.options.qdq_pv else (Op.ATTN_SCORES,)
    points |= {i for n in graph.nodes if n.op in products for i in n.inputs}
    points |= {n.inputs[1] for n in graph.nodes if n.op in (Op.SSD_SCAN, Op.SSD_STEP)}  # dt: the int profile's code
    probs = {n.outputs[0] for n in graph.nodes if n.op is Op.SOFTMAX}
    return {v: PROBS_SCALE if v in probs else qm.scales[v] for v in points}


class QdqSimulator(FloatInterpreter):
    """Float32 interpreter with Q/DQ islands around every int8 GEMM and conv."""

    def __init__(self, qm: QuantizedModel) -> None:
        super().__init__(qm.fparams, dtype=np.float32)  # float parameters: biases, A_log, D
        self.qm = qm
        self.q_scales = qdq_scales(qm)
        self.q_points = set(self.q_scales)
        self.f32 = Float32Weights()

    def emit(self, node: Node, name: str, value):
        if name in self.q_points:
            scale = self.q_scales[name]
            return dequantize_linear(quantize_linear(value, scale), scale)
        return value

    def _codes(self, node: Node, x: np.ndarray) -> np.ndarray:
        return np.rint(x / np.float32(self.qm.scales[node.inputs[0]])).astype(np.int64)

    def _acc_scale(self, node: Node) -> np.ndarray:
        return np.float32(self.qm.scales[node.inputs[0]]) * self.qm.wscales[node.weights["weight"]]

    def op_embed(self, node: Node, tokens: np.ndarray) -> np.ndarray:
        name = node.weights["weight"]
        return dequantize_linear(self.qm.qweights[name][tokens], self.qm.wscales[name][tokens][..., None])

    def op_linear(self, node: Node, x: np.ndarray) -> np.ndarray:
        name = node.weights["weight"]
        acc = int_matmul(self._codes(node, x), self.qm.qweights[name], self.f32.get(name, self.qm.qweights[name]))
        y = acc.astype(np.float32) * self._acc_scale(node)
        bias = self.w(node, "bias")
        return y if bias is None else y + bias

    def _conv_weight(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        name = node.weights["weight"]
        w = dequantize_linear(self.qm.qweights[name][:, 0, :], self.qm.wscales[name][:, None])
        bias = self.w(node, "bias")
        return w, np.zeros(w.shape[0], np.float32) if bias is None else bias

    def op_patch_embed(self, node: Node, x: np.ndarray) -> np.ndarray:
        w = self.qm.qweights[node.weights["weight"]]
        acc = int_matmul(patchify(self._codes(node, x), node.attrs["patch"]), w.reshape(w.shape[0], -1))
        return acc.astype(np.float32) * self._acc_scale(node) + self.w(node, "bias")

    def op_route_logits(self, node: Node, x: np.ndarray) -> np.ndarray:
        acc = int_matmul(self._codes(node, x), self.qm.qweights[node.weights["weight"]].T)
        y = acc.astype(np.float32) * self._acc_scale(node)
        bias = self.w(node, "bias")
        return y if bias is None else y + bias

    def op_moe(self, node: Node, x: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
        names = node.weights
        q1, q2 = self.qm.qweights[names["fc1_weight"]], self.qm.qweights[names["fc2_weight"]]
        s1, s2 = self.qm.wscales[names["fc1_weight"]], self.qm.wscales[names["fc2_weight"]]
        b1, b2 = self.w(node, "fc1_bias"), self.w(node, "fc2_bias")
        s_x = np.float32(self.qm.scales[node.inputs[0]])

        def expert(e: int, rows: np.ndarray) -> np.ndarray:
            h = int_matmul(self._codes(node, rows), q1[e]).astype(np.float32) * (s_x * s1[e])
            s_act = np.float32(self.qm.state_scales[f"{node.name}/act/{e}"])
            a = quantize_linear(gelu(h if b1 is None else h + b1[e]), s_act).astype(np.int64)
            y = int_matmul(a, q2[e]).astype(np.float32) * (s_act * s2[e])
            return y if b2 is None else y + b2[e]

        return moe(x, weights, indices, expert, q2.shape[1])

    def logits_scale(self, graph_name: str = "prefill") -> float:
        return 1.0
