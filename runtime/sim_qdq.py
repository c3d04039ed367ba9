"""The simulator of the ``qdq`` profile: ONNX QuantizeLinear/DequantizeLinear semantics.

Each input of a linear or conv layer is quantized (round half to even, saturate to int8, zero
point 0) and dequantized; the layer multiplies int8 codes with int8 per-channel weights, exactly
in int32, and scales the sum in float32. Everything between these islands is float32: softplus,
exp(dt*A), the scan and its fp32 state, the gate, the Hadamard rotation, the residual stream.
"""

from __future__ import annotations

import numpy as np

from edgec.ir import Node, Op
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.int_ops import int_matmul

__all__ = ["QdqSimulator", "dequantize_linear", "quantize_linear"]


def quantize_linear(x: np.ndarray, scale: float) -> np.ndarray:
    """ONNX QuantizeLinear to int8, zero point 0: saturate(round_half_even(x / scale))."""
    return np.clip(np.rint(x / np.float32(scale)), -128, 127).astype(np.int8)


def dequantize_linear(q: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * np.asarray(scale, dtype=np.float32)


class QdqSimulator(FloatInterpreter):
    """Float32 interpreter with Q/DQ islands around every int8 GEMM and conv."""

    def __init__(self, qm: QuantizedModel) -> None:
        super().__init__(qm.fparams, dtype=np.float32)  # float parameters: biases, A_log, D
        self.qm = qm
        graph = qm.graphs["prefill"]
        self.q_points = {n.inputs[0] for n in graph.nodes if n.op in (Op.LINEAR, Op.CONV1D_CAUSAL)}

    def emit(self, node: Node, name: str, value):
        if name in self.q_points:
            return dequantize_linear(quantize_linear(value, self.qm.scales[name]), self.qm.scales[name])
        return value

    def _codes(self, node: Node, x: np.ndarray) -> np.ndarray:
        return np.rint(x / np.float32(self.qm.scales[node.inputs[0]])).astype(np.int64)

    def _acc_scale(self, node: Node) -> np.ndarray:
        return np.float32(self.qm.scales[node.inputs[0]]) * self.qm.wscales[node.weights["weight"]]

    def op_embed(self, node: Node, tokens: np.ndarray) -> np.ndarray:
        name = node.weights["weight"]
        return dequantize_linear(self.qm.qweights[name][tokens], self.qm.wscales[name][tokens][..., None])

    def op_linear(self, node: Node, x: np.ndarray) -> np.ndarray:
        acc = int_matmul(self._codes(node, x), self.qm.qweights[node.weights["weight"]])
        y = acc.astype(np.float32) * self._acc_scale(node)
        bias = self.w(node, "bias")
        return y if bias is None else y + bias

    def _conv_weight(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        name = node.weights["weight"]
        w = dequantize_linear(self.qm.qweights[name][:, 0, :], self.qm.wscales[name][:, None])
        bias = self.w(node, "bias")
        return w, np.zeros(w.shape[0], np.float32) if bias is None else bias

    def logits_scale(self) -> float:
        return 1.0
