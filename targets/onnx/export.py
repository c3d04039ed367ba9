"""Export a QuantizedModel's step graph to ONNX in the ``qdq`` profile.

Table-driven: one ``_emit_<op>`` per IR op appends ONNX nodes. Q/DQ islands follow TensorRT's
explicit-quantization rules: every input of a MatMul (and of the conv step) is quantized per tensor
with a 3-input QuantizeLinear/DequantizeLinear pair (int8 zero point 0, float32 scale), and weights
are int8 initializers behind a per-channel DequantizeLinear (MatMul weights [K, N] on axis 1, conv
taps [E, K] on axis 0). Everything between the islands is float32, exactly as the qdq simulator
computes it; the step graph is elementwise (no Loop, Scan or CumSum).

Nothing here names a family: the state inputs and outputs are the step graph's own, and each op's
sizes come from its values and weights. Ops whose values leave fp16's range (the mLSTM cell: exp(-m)
reaches e^15) are emitted inside ``fp32_region``; their node names are stored in the model's metadata
(FP32_LAYERS_KEY), for the Orin recipe's precision constraints and the lint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgec.errors import UnsupportedOpError
from edgec.ir import Graph, Node, Op, upstream
from edgec.numerics.hadamard import hadamard_factor_matrices
from edgec.passes.quantize import QuantizedModel, merged_graph
from edgec.runtime.sim_qdq import qdq_scales
from edgec.targets.onnx import mlstm, ssd
from edgec.targets.onnx.files import needs_external_data
from edgec.targets.onnx.vision import VisionEmitters

__all__ = ["FP32_LAYERS_KEY", "OPSET", "ExportedGraph", "FloatWeights", "dequantized_weights", "export_image_graph",
           "export_image_graph_float", "export_step", "export_step_float", "first_layers", "fp32_layers",
           "state_shapes"]

OPSET = 17  # the highest opset TensorRT 8.5 / 8.6 (JetPack 5 / 6.0) parse
#: metadata_props key of the ONNX node names that must run in fp32 (the recipe pins them; the lint checks them)
FP32_LAYERS_KEY = "edgec.fp32_layers"


@dataclass(frozen=True)
class ExportedGraph:
    """An exported graph and the names the checks read: its int8 tensors (QuantizeLinear outputs of IR values;
    an expert's own int8 activations are not IR values and are checked through what follows them) and the
    chosen experts of every router (TopK indices)."""

    model: onnx.ModelProto
    quantized: list[str]
    routes: list[str]


def state_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """The step graph's state inputs and their shapes without the batch axis, in input order (any family)."""
    return {name: tuple(int(d) for d in graph.values[name].shape[1:]) for name in graph.inputs if name != "tokens"}


def first_layers(qm: QuantizedModel, layers: int) -> QuantizedModel:
    """``qm`` cut to what the new state of its first ``layers`` layers reads (state inputs are in layer order): the
    step graph's nodes upstream of those states (no logits) and the prefill graph's nodes of the same names. Their
    graphs check a prefill formula against stepping at a memory set by those layers, not by the model's depth."""
    step = qm.graphs["step"]
    states = [o for o in step.outputs if o != "logits"]
    per_layer = len(states) // qm.spec.num_hidden_layers
    cut = upstream(step, states[:per_layer * min(layers, qm.spec.num_hidden_layers)])
    kept = {node.name for node in cut.nodes}
    prefill = qm.graphs["prefill"]
    prefill_cut = Graph(prefill.name, [n for n in prefill.nodes if n.name in kept], dict(prefill.values),
                        list(prefill.inputs), [])
    return replace(qm, graphs={**qm.graphs, "step": cut, "prefill": prefill_cut})


def fp32_layers(model: onnx.ModelProto) -> list[str]:
    """The node names an exported graph asks to keep in fp32 (empty when it asks for none)."""
    entry = next((p.value for p in model.metadata_props if p.key == FP32_LAYERS_KEY), "")
    return [name for name in entry.split(",") if name]


class _OnnxBuilder(VisionEmitters):
    def __init__(self, qm: QuantizedModel, integer_matmul: bool = False, key: str = "step") -> None:
        self.qm = qm
        self.integer_matmul = integer_matmul
        self.graph = qm.graphs[key]
        self.q_scales = qdq_scales(qm)  # the qdq simulator's Q/DQ points and scales
        self.q_points = set(self.q_scales)
        self.routes: list[str] = []  # TopK index outputs, in graph order
        self.nodes: list[onnx.NodeProto] = []
        self.model = onnx.ModelProto()  # initializers are written straight into its graph: each weight held once
        self.inits: set[str] = set()
        self.quantized: list[str] = []  # names of the int8 QuantizeLinear outputs, in graph order
        self.fp32: list[str] = []  # nodes that must not run in fp16 (see fp32_region)

    # -- helpers ----------------------------------------------------------------------------------
    def init(self, name: str, array: np.ndarray) -> str:
        if name not in self.inits:
            self.inits.add(name)
            array = np.asarray(array)
            tensor = self.model.graph.initializer.add(name=name, dims=array.shape,
                                                data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
            tensor.raw_data = array.tobytes()  # little-endian, C order (numpy_helper.from_array's layout)
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    @contextmanager
    def fp32_region(self) -> Iterator[None]:
        """Record every node appended inside as one TensorRT must keep in fp32 (values beyond fp16's range)."""
        start = len(self.nodes)
        yield
        self.fp32 += [n.name for n in self.nodes[start:]]

    def const_f32(self, name: str, value) -> str:
        return self.init(name, np.asarray(value, dtype=np.float32))

    def zero_point(self) -> str:
        """The activations' zero point: int8 0 (TensorRT's symmetric Q/DQ), or on the CPU graph (integer_matmul)
        uint8 128, so that codes + 128 feed ONNX Runtime's u8 x u8 MatMulInteger: the same integers (int8
        saturation equals uint8 saturation shifted by 128), exact, and its fast kernel (s8 x s8 takes a slow
        path on x86 without VNNI: 38x slower on a 768 x 3072 product here)."""
        if self.integer_matmul:
            return self.init("zero_point_u8", np.array(128, np.uint8))
        return self.init("zero_point_int8", np.array(0, np.int8))

    def axes(self, *values: int) -> str:
        return self.init("axes_" + "_".join(str(v).replace("-", "m") for v in values), np.array(values, np.int64))

    def qdq(self, value: str) -> str:
        """Quantize-dequantize ``value`` with its per-tensor scale (a TensorRT Q/DQ pair)."""
        scale = self.const_f32(f"{value}.scale", self.q_scales[value])
        zero = self.zero_point()
        q = self.node("QuantizeLinear", [value + ".f", scale, zero], value + ".q")
        self.quantized.append(q)
        return self.node("DequantizeLinear", [q, scale, zero], value)

    def output(self, value: str) -> str:
        """The ONNX name a node should write for IR value ``value`` (pre-Q/DQ when it is a Q point)."""
        return value + ".f" if value in self.q_points else value

    def finish(self, value: str) -> None:
        if value in self.q_points:
            self.qdq(value)

    def dq_weight(self, name: str, transpose: bool, keep_shape: bool = False) -> str:
        """int8 weight behind a per-output-channel DequantizeLinear."""
        w = self.qm.qweights[name]
        scale = self.qm.wscales[name].astype(np.float32)
        if transpose:  # MatMul weight [K, N]: the output channel is axis 1
            q = self.init(f"{name}.int8", np.ascontiguousarray(w.reshape(w.shape[0], -1).T))
            axis = 1
        else:  # Conv weight [E, 1, K]: axis 0
            q = self.init(f"{name}.int8", np.ascontiguousarray(w if keep_shape else w.reshape(w.shape[0], -1)))
            axis = 0
        zero = self.init(f"{name}.zero", np.zeros(scale.shape, np.int8))
        return self.node("DequantizeLinear", [q, self.init(f"{name}.scale", scale), zero], f"{name}.dq", axis=axis)

    def bias(self, node: Node, value: str) -> str:
        if "bias" not in node.weights:
            return value
        b = self.const_f32(node.weights["bias"], self.qm.fparams[node.weights["bias"]])
        return self.node("Add", [value, b], value + ".biased")

    # -- one emitter per op -----------------------------------------------------------------------
    def _emit_embed(self, node: Node) -> None:
        # Gather the int8 row and its scale, then scale it: the same float32 products as a per-row
        # DequantizeLinear, without a DQ -> Gather pattern that ONNX Runtime's QDQ fusion rewrites
        # with the per-axis scales applied along the batch instead of the vocabulary.
        name, out = node.weights["weight"], node.outputs[0]
        rows = self.node("Gather", [self.init(f"{name}.int8", self.qm.qweights[name]), node.inputs[0]], out + ".rows",
                         axis=0)
        scale = self.node("Gather", [self.const_f32(f"{name}.scale", self.qm.wscales[name]), node.inputs[0]],
                          out + ".row_scale", axis=0)
        as_float = self.node("Cast", [rows], out + ".rows_f", to=onnx.TensorProto.FLOAT)
        self.node("Mul", [as_float, self.node("Unsqueeze", [scale, self.axes(-1)], out + ".row_scale2")],
                  self.output(out))

    def _emit_rmsnorm(self, node: Node) -> None:
        """x / sqrt(mean(x^2) + eps), in fp32 (x^2 overflows fp16 once |x| > 255.9: lint fp16-square-overflow);
        with ``groups`` > 1 each of the equal slices of the last axis by its own rms (a Reshape either side)."""
        x, out, groups = node.inputs[0], node.outputs[0], node.attrs.get("groups", 1)
        lead = len(self.graph.values[x].shape) - 1
        if groups > 1:
            x = self.node("Reshape", [x, self.init(f"shape_{'0_' * lead}{groups}_m1",
                                                    np.array([0] * lead + [groups, -1], np.int64))], out + ".groups")
        with self.fp32_region():
            sq = self.node("Mul", [x, x], out + ".sq")
            mean = self.node("ReduceMean", [sq], out + ".ms", axes=[-1], keepdims=1)
            var = self.node("Add", [mean, self.const_f32(f"{out}.eps", node.attrs["eps"])], out + ".var")
            y = self.node("Div", [x, self.node("Sqrt", [var], out + ".rms")],
                          self.output(out) if groups == 1 else out + ".normed")
        if groups > 1:
            self.node("Reshape", [y, self.init(f"shape_{'0_' * lead}m1", np.array([0] * lead + [-1], np.int64))],
                      self.output(out))

    def _emit_linear(self, node: Node) -> None:
        out = node.outputs[0]
        if self.integer_matmul and node.inputs[0] in self.q_points:
            y = self._integer_matmul(node)
        else:
            y = self.node("MatMul", [node.inputs[0], self.dq_weight(node.weights["weight"], True)], out + ".mm")
        self.node("Identity", [self.bias(node, y)], self.output(out))

    def _integer_matmul(self, node: Node) -> str:
        """MatMulInteger on the codes + 128 of both sides (zero points 128), exact in int32, then one float32
        scale per output channel: the simulator's own arithmetic on ONNX Runtime's fast u8 x u8 kernel."""
        x, out, name = node.inputs[0], node.outputs[0], node.weights["weight"]
        w = self.qm.qweights[name].astype(np.int16) + 128
        codes = self.init(f"{name}.u8", np.ascontiguousarray(w.reshape(w.shape[0], -1).T).astype(np.uint8))
        zero = self.zero_point()
        acc = self.node("MatMulInteger", [x + ".q", codes, zero, zero], out + ".acc")
        scale = np.float32(self.qm.scales[x]) * self.qm.wscales[name].astype(np.float32)
        return self.node("Mul", [self.node("Cast", [acc], out + ".accf", to=TensorProto.FLOAT),
                                 self.const_f32(f"{out}.acc_scale", scale)], out + ".mm")

    def _emit_split(self, node: Node) -> None:
        sizes = self.init(f"{node.name}.sizes", np.array(node.attrs["sizes"], np.int64))
        outs = [self.output(o) for o in node.outputs]
        self.nodes.append(helper.make_node("Split", [node.inputs[0], sizes], outs, name=node.name, axis=-1))

    def _emit_conv1d_step(self, node: Node) -> None:
        """A depthwise Conv over the window [state, x]: TensorRT's int8 conv with per-channel taps.

        The state holds past x values, already on x's int8 grid, so the Q/DQ pair on the window is
        exact; it marks the Conv input as int8 for TensorRT.
        """
        x, state = node.inputs
        out, new_state = node.outputs
        window = self.node("Concat", [state, self.node("Unsqueeze", [x, self.axes(-1)], out + ".x3")],
                           out + ".window", axis=-1)
        window_dq = window
        if self.q_points:
            scale = self.const_f32(f"{x}.scale", self.qm.scales[x])
            zero = self.zero_point()
            window_q = self.node("QuantizeLinear", [window, scale, zero], out + ".window.q")
            window_dq = self.node("DequantizeLinear", [window_q, scale, zero], out + ".window.dq")
        taps = self.dq_weight(node.weights["weight"], False, keep_shape=True)  # [E, 1, K], axis 0
        conv = self.node("Conv", [window_dq, taps], out + ".conv", group=self.conv_channels(node))
        acc = self.node("Squeeze", [conv, self.axes(-1)], out + ".sum")
        self.node("Identity", [self.bias(node, acc)], self.output(out))
        k = self.qm.qweights[node.weights["weight"]].shape[-1]
        self.node("Slice", [window, self.init("slice_1", np.array([1], np.int64)),
                            self.init(f"slice_{k}", np.array([k], np.int64)), self.axes(-1)], new_state)

    def conv_channels(self, node: Node) -> int:
        """The channel count (= groups) of a depthwise conv node, from its weight [E, 1, K]."""
        return int(self.qm.qweights[node.weights["weight"]].shape[0])

    def _emit_silu(self, node: Node) -> None:
        x = node.inputs[0]
        self.node("Mul", [x, self.node("Sigmoid", [x], node.outputs[0] + ".sig")], self.output(node.outputs[0]))

    def _emit_softplus(self, node: Node) -> None:
        self.node("Softplus", [node.inputs[0]], self.output(node.outputs[0]))

    def _emit_scan_step(self, node: Node) -> None:
        u, dt, b, c, h = node.inputs
        y, h_out = node.outputs
        a = self.const_f32(node.weights["A_log"] + ".A", -np.exp(self.qm.fparams[node.weights["A_log"]]))
        d = self.const_f32(node.weights["D"], self.qm.fparams[node.weights["D"]])
        dt3 = self.node("Unsqueeze", [dt, self.axes(-1)], y + ".dt3")
        decay = self.node("Exp", [self.node("Mul", [dt3, a], y + ".dtA")], y + ".dA")
        dtu = self.node("Unsqueeze", [self.node("Mul", [dt, u], y + ".dtu"), self.axes(-1)], y + ".dtu3")
        bu = self.node("Mul", [dtu, self.node("Unsqueeze", [b, self.axes(1)], y + ".B3")], y + ".dBu")
        self.node("Add", [self.node("Mul", [decay, h], y + ".dAh"), bu], h_out)
        c3 = self.node("Unsqueeze", [c, self.axes(1)], y + ".C3")
        yc = self.node("ReduceSum", [self.node("Mul", [h_out, c3], y + ".hC"), self.axes(-1)], y + ".Ch", keepdims=0)
        self.node("Add", [yc, self.node("Mul", [d, u], y + ".Du")], self.output(y))

    def _emit_mul(self, node: Node) -> None:
        self.node("Mul", list(node.inputs), self.output(node.outputs[0]))

    def _emit_add(self, node: Node) -> None:
        self.node("Add", list(node.inputs), self.output(node.outputs[0]))

    def _emit_hadamard(self, node: Node) -> None:
        """The rotation in Kronecker factors, as the simulator's fast transform: H_2^m as MatMuls by
        Sylvester factors of at most 64, then H_K, then the 1/sqrt(n) scale. Constants of K^2 + sum f^2
        floats instead of a dense n x n matrix (which would outweigh the int8 weights at 7B widths)."""
        plan = node.attrs["plan"]
        x, out = node.inputs[0], node.outputs[0]
        lead = len(self.graph.values[x].shape) - 1
        if plan.pad:
            pads = self.init(f"{node.name}.pads", np.array([0] * (lead + 1) + [0] * lead + [plan.pad], np.int64))
            x = self.node("Pad", [x, pads], out + ".padded")
        stages = hadamard_factor_matrices(plan)
        after = 1
        for j in reversed(range(len(stages))):  # the last factor (fastest index) first, H_K last
            h = stages[j]
            size = h.shape[0]
            before = plan.padded_dim // (after * size)
            shape = self.init(f"shape_{'0_' * lead}{before}_{size}_{after}",
                              np.array([0] * lead + [before, size, after], np.int64))
            x = self.node("Reshape", [x, shape], f"{out}.f{j}")
            x = self.node("MatMul", [self.const_f32(f"hadamard_factor_{size}", h), x], f"{out}.h{j}")
            after *= size
        flat = self.init(f"shape_{'0_' * lead}m1", np.array([0] * lead + [-1], np.int64))
        x = self.node("Reshape", [x, flat], out + ".flat")
        scale = self.const_f32(f"hadamard_scale_{plan.padded_dim}", np.float32(1.0 / np.sqrt(plan.padded_dim)))
        self.node("Mul", [x, scale], self.output(out))

    def _emit_sigmoid(self, node: Node) -> None:
        self.node("Sigmoid", [node.inputs[0]], self.output(node.outputs[0]))

    def _emit_softcap(self, node: Node) -> None:
        """cap * tanh(x / cap), in the simulator's order."""
        out, cap = node.outputs[0], self.const_f32(f"softcap_{node.attrs['cap']:g}", node.attrs["cap"])
        t = self.node("Tanh", [self.node("Div", [node.inputs[0], cap], out + ".scaled")], out + ".tanh")
        self.node("Mul", [cap, t], self.output(out))

    def _emit_head_layernorm(self, node: Node) -> None:
        """LayerNorm over each head's values, decomposed (TensorRT 8.5 has no LayerNormalization)."""
        x, out, heads = node.inputs[0], node.outputs[0], node.attrs["heads"]
        lead = len(self.graph.values[x].shape) - 1
        xh = self.node("Reshape", [x, self.init(f"shape_{'0_' * lead}{heads}_m1",
                                                 np.array([0] * lead + [heads, -1], np.int64))], out + ".heads")
        with self.fp32_region():  # the square (lint fp16-square-overflow)
            centred = self.node("Sub", [xh, self.node("ReduceMean", [xh], out + ".mean", axes=[-1], keepdims=1)],
                                out + ".centred")
            var = self.node("ReduceMean", [self.node("Mul", [centred, centred], out + ".sq")], out + ".var",
                            axes=[-1], keepdims=1)
            std = self.node("Sqrt", [self.node("Add", [var, self.const_f32(f"{out}.eps", node.attrs["eps"])],
                                               out + ".var_eps")], out + ".std")
            y = self.node("Div", [centred, std], out + ".normed")
        flat = self.init(f"shape_{'0_' * lead}m1", np.array([0] * lead + [-1], np.int64))
        y = self.node("Reshape", [y, flat], out + ".flat" if "weight" in node.weights else self.output(out))
        if "weight" in node.weights:
            gamma = self.const_f32(node.weights["weight"], self.qm.fparams[node.weights["weight"]])
            self.node("Mul", [y, gamma], self.output(out))

    def _emit_mlstm_step(self, node: Node) -> None:
        with self.fp32_region():
            mlstm.emit_step(self, node)

    def _emit_ssd_step(self, node: Node) -> None:
        with self.fp32_region():  # the state: the products and sums of an fp32 state beyond fp16's range
            ssd.emit_step(self, node)

    # -- the graph --------------------------------------------------------------------------------
    def emitter(self, node: Node) -> Callable[[Node], None]:
        fn = getattr(self, f"_emit_{node.op.value}", None)
        if fn is None:
            raise UnsupportedOpError(f"the ONNX exporter has no mapping for op {node.op.value!r} (node {node.name})")
        return fn

    name = "edgec_step"

    def io(self, lead: tuple) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
        """Graph inputs (tokens, then the step graph's states) and outputs (logits, then each new state; a graph
        cut to its first layers' state, see first_layers, has no logits)."""
        inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, list(lead))]
        outputs = []
        if "logits" in self.graph.outputs:
            vocab = self.graph.values["logits"].shape[-1]
            outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [*lead, vocab]))
        for name, shape in state_shapes(self.qm.graphs["step"]).items():
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape]))
            outputs.append(helper.make_tensor_value_info(name + "_out", TensorProto.FLOAT, ["batch", *shape]))
        return inputs, outputs

    def build(self) -> onnx.ModelProto:
        for node in self.graph.nodes:
            self.emitter(node)
        for node in self.graph.nodes:
            self.emitter(node)(node)
            for out in node.outputs:
                self.finish(out)
        inputs, outputs = self.io(("batch",))
        model = self.model
        model.graph.name = self.name
        model.graph.node.extend(self.nodes)
        model.graph.input.extend(inputs)
        model.graph.output.extend(outputs)
        model.opset_import.append(helper.make_opsetid("", OPSET))
        model.producer_name, model.producer_version = "edgec", "0.1.0"
        model.ir_version = 8  # ONNX 1.12+: parsed by TensorRT 8.5 and later
        if self.fp32:
            helper.set_model_props(model, {FP32_LAYERS_KEY: ",".join(self.fp32)})
        if not needs_external_data(model):  # a larger one is checked from its file once saved (files.save_onnx)
            onnx.checker.check_model(model)
        return model


class _ImageOnnxBuilder(_OnnxBuilder):
    """A stateless entry graph (images in, logits out: one per task of a ViT-MoE)."""

    def __init__(self, qm: QuantizedModel, key: str, integer_matmul: bool = False) -> None:
        super().__init__(qm, integer_matmul, key)
        self.name = "edgec_" + key.replace("/", "_")

    def io(self, lead: tuple) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
        (name,) = self.graph.inputs
        shape = [*lead, *(int(d) for d in self.graph.values[name].shape[1:])]
        classes = int(self.graph.values["logits"].shape[-1])
        return ([helper.make_tensor_value_info(name, TensorProto.UINT8, shape)],
                [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [*lead, classes])])


class FloatWeights:
    """Mixin for a builder: the same graph in fp32, float weights and no Q/DQ (the baseline the int8 graph is
    measured against, and the float twin that checks a closed form without int8 rounding in the way).

    ``weights`` None keeps the int8 weights, dequantized in the graph (DequantizeLinear per channel: the same
    float32 products as ``dequantized_weights``, at a quarter of the bytes, so a twin of a multi-GB model fits
    where the int8 graph does).
    """

    def __init__(self, qm: QuantizedModel, weights: Mapping[str, np.ndarray] | None, *args) -> None:
        super().__init__(qm, *args)
        self.weights = weights
        self.q_points = set()

    def dq_weight(self, name: str, transpose: bool, keep_shape: bool = False) -> str:
        if self.weights is None:
            return super().dq_weight(name, transpose, keep_shape)
        w = self.weights[name].astype(np.float32)
        flat = w if keep_shape else w.reshape(w.shape[0], -1)
        return self.init(f"{name}.f32", np.ascontiguousarray(flat.T if transpose else flat))

    def _emit_embed(self, node: Node) -> None:
        if self.weights is None:
            return super()._emit_embed(node)
        table = self.init(node.weights["weight"] + ".f32", self.weights[node.weights["weight"]].astype(np.float32))
        self.node("Gather", [table, node.inputs[0]], node.outputs[0], axis=0)
        return None

    def dq_columns(self, name: str) -> str:
        if self.weights is None:
            return super().dq_columns(name)
        return self.init(f"{name}.f32", self.weights[name].astype(np.float32))

    def dq_expert(self, weight: str, e: int) -> str:
        if self.weights is None:
            return super().dq_expert(weight, e)
        return self.init(f"{weight}.{e}.f32", np.ascontiguousarray(self.weights[weight][e].astype(np.float32).T))


class _FloatOnnxBuilder(FloatWeights, _OnnxBuilder):
    """The step graph in fp32."""


class _FloatImageBuilder(FloatWeights, _ImageOnnxBuilder):
    """An image graph in fp32."""


def dequantized_weights(qm: QuantizedModel) -> dict[str, np.ndarray]:
    """Every int8 weight times its per-channel scales (float32): the weights the int8 graph computes with.
    A router's [D, E] weight has one scale per column; every other weight per leading channel (an expert
    stack [E, out, in] per expert and output channel)."""
    columns = {n.weights["weight"] for n in merged_graph(qm.graphs).nodes if n.op is Op.ROUTE_LOGITS}
    out = {}
    for name, q in qm.qweights.items():
        scale = qm.wscales[name].astype(np.float32)
        out[name] = q.astype(np.float32) * (scale if name in columns else
                                            scale.reshape(*scale.shape, *[1] * (q.ndim - scale.ndim)))
    return out


def export_step(qm: QuantizedModel, integer_matmul: bool = False) -> tuple[onnx.ModelProto, list[str]]:
    """The step graph as ONNX, and the names of its int8 (QuantizeLinear) tensors in order.

    ``integer_matmul`` writes the linear layers as MatMulInteger + scale (ONNX Runtime on CPUs)
    instead of TensorRT's Q/DQ -> MatMul pattern.
    """
    builder = _OnnxBuilder(qm, integer_matmul)
    return builder.build(), builder.quantized


def export_image_graph(qm: QuantizedModel, key: str, integer_matmul: bool = False) -> ExportedGraph:
    """Entry graph ``key`` (images -> logits) as ONNX, with the names of its int8 tensors and TopK indices."""
    builder = _ImageOnnxBuilder(qm, key, integer_matmul)
    return ExportedGraph(builder.build(), builder.quantized, builder.routes)


def export_image_graph_float(qm: QuantizedModel, key: str, weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """Entry graph ``key`` in fp32 with the float weights of the same rewritten model (the baseline)."""
    return _FloatImageBuilder(qm, weights, key).build()


def export_step_float(qm: QuantizedModel, weights: Mapping[str, np.ndarray] | None) -> onnx.ModelProto:
    """The step graph in fp32, from the float weights of the same rewritten model (fold + rotation), or with
    ``weights`` None from the int8 weights dequantized in the graph (see FloatWeights)."""
    return _FloatOnnxBuilder(qm, weights).build()
