"""Export the prefill graph: a fixed chunk of T tokens with the step graph's state in and out.

No Loop, Scan or CumSum. Every linear layer and conv runs on the whole chunk at once (what makes prefill
faster than decoding); the selective scan computes the decays exp(dt A) and inputs dt u B of the chunk in
one go and then unrolls h_t = dA_t h_{t-1} + dBu_t over the T tokens: T E N multiply-adds per chunk, as
many as stepping. (The closed form with a [T, T, E, N] decay tensor it replaced costs T^2 E N: at mamba-130m
widths it ran 0.62x HF torch at T = 16 and got slower with T; bench/bench_prefill.py.) A longer prompt is fed
chunk by chunk, the state carried between calls. The mLSTM cell's chunk form is in mlstm.py; the Mamba-2 SSD's in
ssd.py: its scalar decay per head makes the closed matrix form cheap ([T, T] per head, segment sums by a constant
band matrix), 2.6x the unrolled form at mamba2-tiny widths, chunk 64 (18.0k against 7.0k tokens/s int8, 1.63x HF
torch; bench/bench_prefill.py), so SSD_PREFILL_FORM is "chunk".
Each recurrent node reads and writes the states of the step-graph node of the same name, so the two
graphs have the same state inputs and outputs whatever the family.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgec.ir import Node
from edgec.passes.quantize import QuantizedModel
from edgec.targets.onnx import mlstm, ssd
from edgec.targets.onnx.export import FloatWeights, _OnnxBuilder

__all__ = ["DEFAULT_CHUNK", "SSD_FORMS", "SSD_PREFILL_FORM", "export_prefill", "export_prefill_float"]

DEFAULT_CHUNK = 64  # by measurement (bench/bench_prefill.py): int8 prefill of 512 tokens at mamba-130m widths
# 1.67x / 2.39x / 2.67x / 2.83x HF torch at 16 / 32 / 64 / 128 (fp32 twin best at 64); xlstm-tiny 0.96x at 16,
# 1.27x at 64

SSD_PREFILL_FORM = "chunk"  # the SSD's prefill form: "chunk" (closed matrix form) or "unrolled" (bench_prefill.py)
SSD_FORMS = ("chunk", "unrolled")


class _PrefillBuilder(_OnnxBuilder):
    def __init__(self, qm: QuantizedModel, chunk: int, integer_matmul: bool = False,
                 ssd_form: str = SSD_PREFILL_FORM) -> None:
        super().__init__(qm, integer_matmul)
        if ssd_form not in SSD_FORMS:
            raise ValueError(f"ssd_form {ssd_form!r}: one of {', '.join(SSD_FORMS)}")
        self.ssd_form = ssd_form
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
        """The decays exp(dt A) and inputs dt u B of the whole chunk at once, then h_t = dA_t h_{t-1} + dBu_t
        unrolled token by token (T E N multiply-adds, as many as stepping), y_t = C_t . h_t + D u_t."""
        u, dt, b, c = node.inputs
        y = node.outputs[0]
        (h0,) = self._states(node)
        h = h0
        a = self.const_f32(node.weights["A_log"] + ".A", -np.exp(self.qm.fparams[node.weights["A_log"]]))
        d = self.const_f32(node.weights["D"], self.qm.fparams[node.weights["D"]])
        decay = self.node("Exp", [self.node("Mul", [self.node("Unsqueeze", [dt, self.axes(-1)], y + ".dt4"), a],
                                            y + ".dtA")], y + ".dA")  # [B, T, E, N]
        inputs = self.node("Mul", [self.node("Unsqueeze", [self.node("Mul", [dt, u], y + ".dtu"), self.axes(-1)],
                                             y + ".dtu4"),
                                   self.node("Unsqueeze", [b, self.axes(2)], y + ".B4")], y + ".dBu")  # [B, T, E, N]
        states = []
        for t in range(self.chunk):
            at = self.init(f"index_{t}", np.array(t, np.int64))
            step = f"{y}.t{t}"
            h = self.node("Add", [self.node("Mul", [self.node("Gather", [decay, at], step + ".dA", axis=1), h],
                                            step + ".dAh"),
                                  self.node("Gather", [inputs, at], step + ".dBu", axis=1)],
                          step + ".h" if t < self.chunk - 1 else h0 + "_out")
            states.append(self.node("Unsqueeze", [h, self.axes(1)], step + ".h4"))
        hs = self.node("Concat", states, y + ".h", axis=1)  # [B, T, E, N]
        yc = self.node("ReduceSum", [self.node("Mul", [hs, self.node("Unsqueeze", [c, self.axes(2)], y + ".C4")],
                                               y + ".hC"), self.axes(-1)], y + ".Ch", keepdims=0)
        self.node("Add", [yc, self.node("Mul", [d, u], y + ".Du")], self.output(y))

    def _emit_ssd_scan(self, node: Node) -> None:
        """The SSD over the chunk in the builder's ssd_form (ssd.py), in fp32 (exp of segment sums, the state)."""
        (h0,) = self._states(node)
        with self.fp32_region():
            (ssd.emit_chunk if self.ssd_form == "chunk" else ssd.emit_unrolled)(self, node, h0, self.chunk)

    def _emit_mlstm_sequence(self, node: Node) -> None:
        with self.fp32_region():
            mlstm.emit_chunk(self, node, self._states(node), self.chunk)

    name = "edgec_prefill"

    def io(self, lead: tuple) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
        return super().io(("batch", self.chunk))


class _FloatPrefillBuilder(FloatWeights, _PrefillBuilder):
    """The prefill graph in fp32."""


def export_prefill_float(qm: QuantizedModel, weights: Mapping[str, np.ndarray] | None,
                         chunk: int = DEFAULT_CHUNK, ssd_form: str = SSD_PREFILL_FORM) -> onnx.ModelProto:
    """The prefill graph in fp32 from ``weights`` (no Q/DQ; None: the int8 weights dequantized in the graph),
    the twin of export_step_float."""
    return _FloatPrefillBuilder(qm, weights, chunk, False, ssd_form).build()


def export_prefill(qm: QuantizedModel, chunk: int = DEFAULT_CHUNK, integer_matmul: bool = False,
                   ssd_form: str = SSD_PREFILL_FORM) -> tuple[onnx.ModelProto, list[str]]:
    """The prefill graph for chunks of ``chunk`` tokens, and its int8 tensors in order. ``ssd_form``: a Mamba-2
    SSD's form, "chunk" (closed matrix form) or "unrolled" (token by token; bench/bench_prefill.py times both)."""
    builder = _PrefillBuilder(qm, chunk, integer_matmul, ssd_form)
    return builder.build(), builder.quantized

