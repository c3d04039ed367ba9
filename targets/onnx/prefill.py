"""Export the prefill graph: a fixed chunk of T tokens with the step graph's state in and out.

No Loop, Scan or CumSum: inside a chunk the selective scan is written in closed form with matrix
products over time. With S_t = sum_{r<=t} dt_r (a product with a constant lower-triangular matrix) and
G_ts = sum_{s<r<=t} dt_r (a product with a constant [T*T, T] band matrix, so no cancellation),

    h_t = exp(S_t A) h_0 + sum_{s<=t} exp(G_ts A) dt_s u_s B_s,      y_t = C_t . h_t + D u_t,

with s > t masked out before the exponential. Memory is O(T^2 E N) per chunk, so T stays small
(default 16); a longer prompt is fed chunk by chunk, the state carried between calls. The mLSTM cell's
chunk form is in mlstm.py. Each recurrent node reads and writes the states of the step-graph node of the
same name, so the two graphs have the same state inputs and outputs whatever the family.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgec.ir import Node
from edgec.passes.quantize import QuantizedModel
from edgec.targets.onnx import mlstm
from edgec.targets.onnx.export import FloatWeights, _OnnxBuilder

__all__ = ["DEFAULT_CHUNK", "export_prefill", "export_prefill_float"]

DEFAULT_CHUNK = 16
MASKED = 1e4  # added to G_ts for s > t: exp(1e4 * A) underflows to 0 for every A <= -0.01


class _PrefillBuilder(_OnnxBuilder):
    def __init__(self, qm: QuantizedModel, chunk: int, integer_matmul: bool = False) -> None:
        super().__init__(qm, integer_matmul)
        self.graph = qm.graphs["prefill"]
        self.chunk = chunk

    def _states(self, node: Node) -> tuple[str, ...]:
        """The state inputs of the step-graph node with this node's name (those beyond its own inputs)."""
        return self.qm.graphs["step"].find(node.name).inputs[len(node.inputs):]

    def _emit_conv1d_causal(self, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        (conv_state,) = self._states(node)
        k, t = self.qm.qweights[node.weights["weight"]].shape[-1], self.chunk
        x_t = self.node("Transpose", [x], out + ".xT", perm=[0, 2, 1])  # [B, E, T]
        window = self.node("Concat", [conv_state, x_t], out + ".window", axis=-1)  # [B, E, K-1+T]
        window_dq = window
        if self.q_points:  # the state holds past x values, already on x's int8 grid: exact, and marks int8
            scale = self.const_f32(f"{x}.scale", self.qm.scales[x])
            zero = self.zero_point()
            window_q = self.node("QuantizeLinear", [window, scale, zero], out + ".window.q")
            window_dq = self.node("DequantizeLinear", [window_q, scale, zero], out + ".window.dq")
        taps = self.dq_weight(node.weights["weight"], False, keep_shape=True)
        conv = self.node("Conv", [window_dq, taps], out + ".conv", group=self.conv_channels(node))  # [B,E,T]
        acc = self.node("Transpose", [conv], out + ".convT", perm=[0, 2, 1])
        self.node("Identity", [self.bias(node, acc)], self.output(out))
        self.node("Slice", [window, self.init(f"slice_{t}", np.array([t], np.int64)),
                            self.init(f"slice_{t + k - 1}", np.array([t + k - 1], np.int64)), self.axes(-1)],
                  conv_state + "_out")

    def _emit_selective_scan(self, node: Node) -> None:
        u, dt, b, c = node.inputs
        y = node.outputs[0]
        (h0,) = self._states(node)
        t = self.chunk
        a = self.const_f32(node.weights["A_log"] + ".A", -np.exp(self.qm.fparams[node.weights["A_log"]]))
        d = self.const_f32(node.weights["D"], self.qm.fparams[node.weights["D"]])
        tril = self.const_f32(f"tril_{t}", np.tril(np.ones((t, t))))
        band = np.zeros((t, t, t), np.float32)  # band[t, s, r] = 1 for s < r <= t
        for i in range(t):
            for s in range(i + 1):
                band[i, s, s + 1:i + 1] = 1
        mask = np.where(np.tril(np.ones((t, t))) > 0, 0.0, MASKED)[None, :, :, None]
        s_t = self.node("MatMul", [tril, dt], y + ".S")  # [B, T, E]
        g = self.node("MatMul", [self.const_f32(f"band_{t}", band.reshape(t * t, t)), dt], y + ".G")  # [B, T*T, E]
        g = self.node("Reshape", [g, self.init(f"shape_tt_{t}", np.array([0, t, t, -1], np.int64))], y + ".G4")
        g = self.node("Add", [g, self.const_f32(f"mask_{t}", mask)], y + ".Gm")
        pair = self.node("Exp", [self.node("Mul", [self.node("Unsqueeze", [g, self.axes(-1)], y + ".G5"), a],
                                           y + ".GA")], y + ".decay_ts")  # [B, T, T, E, N]
        w = self.node("Mul", [self.node("Unsqueeze", [self.node("Mul", [dt, u], y + ".dtu"), self.axes(-1)],
                                        y + ".dtu4"),
                              self.node("Unsqueeze", [b, self.axes(2)], y + ".B4")], y + ".w")  # [B, T(s), E, N]
        inputs = self.node("ReduceSum", [self.node("Mul", [pair, self.node("Unsqueeze", [w, self.axes(1)], y + ".w5")],
                                                   y + ".pw"), self.axes(2)], y + ".from_inputs", keepdims=0)
        start = self.node("Exp", [self.node("Mul", [self.node("Unsqueeze", [s_t, self.axes(-1)], y + ".S4"), a],
                                            y + ".SA")], y + ".decay_0")  # [B, T, E, N]
        from_h0 = self.node("Mul", [start, self.node("Unsqueeze", [h0, self.axes(1)], y + ".h0")], y + ".from_h0")
        h = self.node("Add", [from_h0, inputs], y + ".h")  # [B, T, E, N]
        yc = self.node("ReduceSum", [self.node("Mul", [h, self.node("Unsqueeze", [c, self.axes(2)], y + ".C4")],
                                               y + ".hC"), self.axes(-1)], y + ".Ch", keepdims=0)
        self.node("Add", [yc, self.node("Mul", [d, u], y + ".Du")], self.output(y))
        self.node("Gather", [h, self.init(f"last_{t}", np.array(t - 1, np.int64))], h0 + "_out", axis=1)

    def _emit_mlstm_sequence(self, node: Node) -> None:
        with self.fp32_region():
            mlstm.emit_chunk(self, node, self._states(node), self.chunk)

    name = "edgec_prefill"

    def io(self, lead: tuple) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
        return super().io(("batch", self.chunk))


class _FloatPrefillBuilder(FloatWeights, _PrefillBuilder):
    """The prefill graph in fp32."""


def export_prefill_float(qm: QuantizedModel, weights: Mapping[str, np.ndarray],
                         chunk: int = DEFAULT_CHUNK) -> onnx.ModelProto:
    """The prefill graph in fp32 from ``weights`` (no Q/DQ), the twin of export_step_float."""
    return _FloatPrefillBuilder(qm, weights, chunk).build()


def export_prefill(qm: QuantizedModel, chunk: int = DEFAULT_CHUNK,
                   integer_matmul: bool = False) -> tuple[onnx.ModelProto, list[str]]:
    """The prefill graph for chunks of ``chunk`` tokens, and its int8 tensors in order."""
    builder = _PrefillBuilder(qm, chunk, integer_matmul)
    return builder.build(), builder.quantized

