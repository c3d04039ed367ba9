"""Choose every scale and quantize every weight: the model becomes a QuantizedModel.

The rules are per op, never per family:
- Weights: the ``weight`` of every EMBED / LINEAR / CONV1D is symmetric int8 in [-127, 127], one scale
  per output channel (or per tensor when ``per_channel`` is off). Every other parameter (biases, A_log,
  D, an unfolded norm gain) stays float: the int profile derives fixed-point constants from it.
- Activations: static, per tensor, scale = absmax / 127; one scale per output segment of a SPLIT
  LINEAR output; the input of a selective scan (u) or an SSD (x) uses its alpha-quantile (percentile clipping).
- Wider formats where int8 is too coarse (the int profile), each chosen by measurement
  (bench/bench_formats.py: perplexity with one group of values at 8 / 16 / 32 bits):
  the residual stream (24-bit, one scale per layer boundary); softplus output dt (24-bit);
  LUT outputs that gate a product (SiLU, sigmoid: 16-bit); soft-cap inputs (gate pre-activations,
  raw logits) and outputs (16-bit); scan outputs and per-head norms (16-bit); the mLSTM cell output
  (32-bit: the per-head norm after it magnifies quiet heads, 16 bits cost 8 dB there on random-init
  models); the SSM state and the mLSTM C and n states (32-bit, the calibrated maximum at 2^29).
- Mamba-2's SSD (SSD_SCAN / SSD_STEP): its dt input is in_proj's int8 dt segment (the int profile tabulates
  dt and exp(dt A) per head from the code, runtime/ssd_int.py); its output is 16-bit and its state 32-bit,
  as the selective scan's. The conv output is split into x | B | C before their SiLUs (the conv's
  ``segments``), so each has its own int8 scale before and after its table. The gated product y * silu(z)
  read by a norm gets no format: the integer grouped RMSNorm reads it wide, in block floating point per
  group. A norm whose output is rotated (HADAMARD) writes 16 bits; the rotation's int8 output feeds the LINEAR.
- Vision transformer ops: the centred image (pixel - 128) is int8 at scale 1; the patch embedding writes
  into the scale of the first residual value (CLS_POS); attention scores int8 (the attention scale folded
  into their requant); softmax probabilities at 1 / (2^b - 1): b = ``probs_bits`` (16) when P.V reads them
  (uint8 probabilities flip 12 clear routing decisions of vitmoe_alt's last MoE layer, 16 bits 1), 16 for a
  router; top-k values keep their input's format; GELU output is the int8 that fits its 256-entry
  table; per MOE expert e, its fc1 output ("node/fc1/<e>", calibrated on every token) and GELU output
  ("node/act/<e>") get their own int8 scales in ``state_scales``.
- Weights of PATCH_EMBED ([D, C, P, P]: per D), ROUTE_LOGITS ([D, E]: per expert column) and MOE
  (fc1/fc2 [E, out, in]: per expert and output channel) are int8 like LINEAR's.
- Scales are chosen over every entry graph (all task graphs of a ViT-MoE): a shared value has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.ir import Graph, Op, entry_graphs
from edgec.numerics.gelu import GELU_VARIANTS
from edgec.numerics.softmax import SOFTMAX_VARIANTS
from edgec.passes.base import row_blocks
from edgec.passes.calibrate import CalibrationStats
from edgec.passes.fold_image import is_centred
from edgec.runtime.float_ref import sigmoid, silu, softplus
from edgec.runtime.vit_float import gelu

__all__ = ["QuantOptions", "QuantizedModel", "merged_graph", "quantize_model", "quantize_weight"]

RESIDUAL_BITS = 24  # the residual stream saturates at 2^23; its calibrated max sits at 2^21
STATE_BITS = 32  # recurrent states; the calibrated max sits at 2^29
WIDE_BITS = 16  # scan / cell outputs, gates, soft-cap inputs and outputs, per-head norms
DT_BITS = 24  # softplus output dt: small dt (long memory) keeps >= 10 significant bits
CELL_BITS = 32  # mLSTM cell output h: a per-head norm follows, so quiet heads need their relative precision


@dataclass(frozen=True)
class QuantOptions:
    """Switches of the quantization recipe; each can be turned off to measure its effect."""

    hadamard: bool = True
    percentile: bool = True
    per_channel: bool = True
    alpha: float = 0.99999
    softmax: str = "lut"  # int profile: the attention softmax's exp (edgec.numerics.softmax.SOFTMAX_VARIANTS)
    gelu: str = "lut"  # int profile: the GELU of an int8 input, tabulated (edgec.numerics.gelu.GELU_VARIANTS)
    probs_bits: int = 16  # int profile: attention probabilities P read by P.V (unsigned, scale 1 / (2^b - 1))
    qdq_pv: bool = False  # qdq profile: int8 Q/DQ on both inputs of P.V (off: P.V in float, fp16 on TensorRT)

    def __post_init__(self) -> None:
        for what, value, known in (("softmax", self.softmax, SOFTMAX_VARIANTS), ("gelu", self.gelu, GELU_VARIANTS)):
            if value not in known:
                raise DataError(f"{what} variant {value!r} is not one of {', '.join(known)}")
        if not 8 <= self.probs_bits <= 16:
            raise DataError(f"attention probabilities of {self.probs_bits} bits: choose 8 to 16")


@dataclass
class QuantizedModel:
    """Everything a simulator or emitter needs; saved to and loaded from a QDIR."""

    spec: Any  # the family's ModelSpec (edgec.families)
    graphs: dict[str, Graph]
    qweights: dict[str, np.ndarray]  # int8 weights by weight name
    wscales: dict[str, np.ndarray]  # float32 scale per output channel of each int8 weight
    fparams: dict[str, np.ndarray]  # float32 parameters kept in float (biases, A_log, D)
    scales: dict[str, float]  # activation scale by value name
    state_scales: dict[str, float]  # recurrent state scale: "node" (scan) or "node/C", "node/n" (mLSTM)
    bits: dict[str, int]  # storage width of each quantized value in the int profile
    options: QuantOptions = field(default_factory=QuantOptions)
    notes: list[str] = field(default_factory=list)
    calibration: dict[str, float | int] = field(default_factory=dict)
    source: str = ""
    int_constants: dict[str, np.ndarray] = field(default_factory=dict)  # lowered int profile, by node/key


def merged_graph(graphs: dict[str, Graph]) -> Graph:
    """The entry graphs as one graph: nodes of equal name are one node (kept once, first seen first)."""
    nodes, values, outputs = {}, {}, []
    for g in entry_graphs(graphs).values():
        nodes |= {n.name: n for n in g.nodes if n.name not in nodes}
        values |= g.values
        outputs += [o for o in g.outputs if o not in outputs]
    return Graph("entry", list(nodes.values()), values, [], outputs)


# (op, role) -> how an int8 weight is laid out: "rows" (per first axis), "columns" ([D, E]: per E),
# "experts" ([E, out, in]: per expert and output channel)
_INT8_WEIGHTS = {(Op.EMBED, "weight"): "rows", (Op.LINEAR, "weight"): "rows", (Op.CONV1D_CAUSAL, "weight"): "rows",
                 (Op.PATCH_EMBED, "weight"): "rows", (Op.ROUTE_LOGITS, "weight"): "columns",
                 (Op.MOE, "fc1_weight"): "experts", (Op.MOE, "fc2_weight"): "experts"}


def quantize_weight(w: np.ndarray, layout: str, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes of ``w`` (its own layout) and float32 scales per channel of ``layout``."""
    if layout == "columns":
        q, scale = _quantize_weight(w.T, per_channel)
        return np.ascontiguousarray(q.T), scale
    if layout == "experts":
        q, scale = _quantize_weight(w.reshape(-1, w.shape[-1]), per_channel)
        return q.reshape(w.shape), scale.reshape(w.shape[:2])
    return _quantize_weight(w, per_channel)


def _quantize_weight(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    flat = w.reshape(w.shape[0], -1)
    blocks = row_blocks(flat.shape)
    amax = np.concatenate([np.abs(flat[b]).max(axis=1) for b in blocks]).astype(np.float64)
    if not per_channel:
        amax = np.full(w.shape[0], amax.max())
    # An all-zero row takes a typical scale (its codes are 0 whatever it is), so that every
    # multiplier derived from it stays in the range of the others.
    typical = float(np.median(amax[amax > 0])) if np.any(amax > 0) else 127.0
    scale = (np.where(amax > 0, amax, typical) / 127.0).astype(np.float32)
    q = np.empty(flat.shape, np.int8)
    for b in blocks:  # float64 temporaries of one block, not of the whole tensor (an embedding is 1 GB in float64)
        q[b] = np.clip(np.rint(flat[b].astype(np.float64) / scale[b, None].astype(np.float64)), -127, 127)
    return q.reshape(w.shape), scale


def _int8_scale(amax: float, what: str) -> float:
    if not np.isfinite(amax):
        raise DataError(f"calibration range of %{what} is not finite")
    return float(np.float32(max(amax, 1e-8) / 127.0))


def _wide_scale(amax: float) -> float:
    """A 16-bit scale with one bit of headroom over the calibrated maximum."""
    return float(np.float32(2 * max(amax, 1e-8) / (2 ** (WIDE_BITS - 1) - 1)))


def _lut_output_scale(fn, in_scale: float, bits: int) -> float:
    """The scale that fits the largest output of a 256-entry table over int8 inputs at ``in_scale``."""
    table = fn(np.arange(-128, 128) * np.float64(in_scale))
    return float(np.float32(max(float(np.abs(table).max()), 1e-8) / (2 ** (bits - 1) - 1)))


class _Formats:
    """Activation scales and storage widths, set value by value."""

    def __init__(self) -> None:
        self.scales: dict[str, float] = {}
        self.bits: dict[str, int] = {}

    def set(self, value: str, scale: float, bits: int) -> None:
        self.scales[value] = scale
        self.bits[value] = bits


def quantize_model(model: Model, stats: CalibrationStats, options: QuantOptions,
                   notes: list[str] | None = None) -> QuantizedModel:
    """Quantize a (folded, optionally rotated) float model with calibration ``stats``."""
    graph = merged_graph(model.graphs)
    absmax = {k: float(v.max()) for k, v in stats.absmax.items()}
    fmt = _Formats()
    state_scales: dict[str, float] = {}

    def consumers(value: str) -> set[Op]:
        return {u.op for u in graph.users(value)}

    def int8(value: str, amax: float | None = None) -> None:
        fmt.set(value, _int8_scale(absmax[value] if amax is None else amax, value), 8)

    def gate_like(value: str) -> bool:
        """Read by a soft cap, or a gate pre-activation of an mLSTM cell (i, f)."""
        return any(u.op is Op.SOFTCAP or (u.op is Op.MLSTM_SEQUENCE and value in u.inputs[3:5])
                   for u in graph.users(value))

    def linear_like(value: str) -> None:
        """A value read by LINEAR/LUT/cell ops: int8, or 16-bit for a gate pre-activation or soft-cap input."""
        if gate_like(value):
            fmt.set(value, _wide_scale(absmax[value]), WIDE_BITS)
        else:
            int8(value)

    # The residual stream: one scale per layer boundary (it grows with depth, often by orders of
    # magnitude), calibrated maximum at 2^21 of 2^23. The LINEAR feeding an ADD writes straight into
    # the scale of the sum; the skip input is rescaled by the ADD.
    for node in graph.nodes:
        if node.op is Op.EMBED:  # the whole table counts: rows unseen in calibration must fit too
            amax = max(absmax[node.outputs[0]], float(np.abs(model.weights.read(node.weights["weight"])).max()))
        elif node.op is Op.ADD:
            amax = max(absmax[node.outputs[0]], absmax[node.inputs[1]])
        elif node.op is Op.CLS_POS:  # the patch embedding writes into the first residual value's scale
            amax = max(absmax[node.outputs[0]], absmax[node.inputs[0]])
        else:
            continue
        scale = float(np.float32(max(amax, 1e-8) / 2 ** (RESIDUAL_BITS - 3)))
        written = {Op.EMBED: node.outputs, Op.CLS_POS: (node.outputs[0], node.inputs[0])}.get(node.op)
        for v in written or (node.outputs[0], node.inputs[1]):
            fmt.set(v, scale, RESIDUAL_BITS)

    for node in graph.nodes:
        out = node.outputs[0]
        if node.op is Op.RMSNORM and Op.HADAMARD in consumers(out):  # wide into the rotation, int8 after it
            fmt.set(out, _wide_scale(absmax[out]), WIDE_BITS)
        elif node.op in (Op.RMSNORM, Op.CONV1D_CAUSAL, Op.HADAMARD, Op.LAYERNORM, Op.ATTN_SCORES, Op.ATTN_CONTEXT):
            int8(out)
        elif node.op is Op.ROUTE_LOGITS:  # 16-bit: int8 codes tie experts the float model tells apart
            fmt.set(out, _wide_scale(absmax[out]), WIDE_BITS)
        elif node.op is Op.NORMALIZE_IMAGE:  # pixel - 128 after fold_image: exact codes at scale 1
            fmt.set(out, 1.0, 8) if is_centred(node.attrs) else int8(out)
        elif node.op is Op.CLS_POOL:
            fmt.set(out, fmt.scales[node.inputs[0]], fmt.bits[node.inputs[0]])
        elif node.op is Op.SOFTMAX:  # P.V's probabilities at probs_bits, 16-bit for a router's weights
            bits = options.probs_bits if Op.ATTN_CONTEXT in consumers(out) else WIDE_BITS
            fmt.set(out, float(np.float32(1 / (2**bits - 1))), bits)
        elif node.op is Op.TOPK:
            fmt.set(out, fmt.scales[node.inputs[0]], fmt.bits[node.inputs[0]])
        elif node.op is Op.GELU:
            fmt.set(out, _lut_output_scale(gelu, fmt.scales[node.inputs[0]], 8), 8)
        elif node.op is Op.MOE:
            for e in range(node.attrs["experts"]):
                s_fc1 = _int8_scale(stats.state_absmax[f"{node.name}/fc1/{e}"], f"{node.name}/fc1/{e}")
                state_scales[f"{node.name}/fc1/{e}"] = s_fc1
                state_scales[f"{node.name}/act/{e}"] = _lut_output_scale(gelu, s_fc1, 8)
        elif node.op is Op.SPLIT:
            for o in node.outputs:
                linear_like(o)
            widths = {fmt.bits[o] for o in node.outputs}
            if len(widths) != 1:
                raise DataError(f"{node.name}: segments of one linear output need one storage width, got {widths}")
            fmt.bits[node.inputs[0]] = widths.pop()  # the LINEAR stores its segments at that width
        elif node.op is Op.LINEAR and out not in fmt.scales and out not in graph.outputs \
                and Op.SPLIT not in consumers(out):
            linear_like(out)
        elif node.op in (Op.SILU, Op.SIGMOID):
            if Op.MUL in consumers(out):  # a gate: a 16-bit table output
                fn = silu if node.op is Op.SILU else sigmoid
                fmt.set(out, _lut_output_scale(fn, fmt.scales[node.inputs[0]], WIDE_BITS), WIDE_BITS)
            else:  # read by a LINEAR or a scan: int8, percentile-clipped where calibration measured it
                clip = options.percentile and out in stats.quantile
                int8(out, stats.quantile[out] if clip else None)
        elif node.op is Op.SOFTPLUS:
            top = float(softplus(np.float64(127 * fmt.scales[node.inputs[0]])))
            fmt.set(out, float(np.float32(top / (2 ** (DT_BITS - 1) - 1))), DT_BITS)
        elif node.op is Op.SOFTCAP:  # bounded by the cap and by the largest 16-bit input
            cap = float(node.attrs["cap"])
            top = cap * math.tanh((2 ** (WIDE_BITS - 1)) * fmt.scales[node.inputs[0]] / cap)
            fmt.set(out, float(np.float32(top / (2 ** (WIDE_BITS - 1) - 1))), WIDE_BITS)
        elif node.op in (Op.SELECTIVE_SCAN, Op.SSD_SCAN, Op.MLSTM_SEQUENCE):
            bits = CELL_BITS if node.op is Op.MLSTM_SEQUENCE else WIDE_BITS
            fmt.set(out, float(np.float32(2 * max(absmax[out], 1e-8) / (2 ** (bits - 1) - 1))), bits)
            parts = ("/C", "/n") if node.op is Op.MLSTM_SEQUENCE else ("",)
            for part in parts:
                state_max = max(stats.state_absmax[node.name + part], 1e-8)
                state_scales[node.name + part] = float(np.float32(2 * state_max / 2 ** (STATE_BITS - 2)))
        elif node.op is Op.HEAD_LAYERNORM:  # |x - mean| / std <= sqrt(d) per head: never saturates
            d = graph.values[out].shape[-1] // node.attrs["heads"]
            gain = model.weights[node.weights["weight"]] if "weight" in node.weights else np.ones(1)
            fmt.set(out, float(np.float32(math.sqrt(d) * float(np.abs(gain).max()) / (2 ** (WIDE_BITS - 1) - 1))),
                    WIDE_BITS)
        elif node.op is Op.MUL and not consumers(out) & {Op.HADAMARD, Op.RMSNORM}:
            int8(out)  # no rotation: the LINEAR reads the product directly (a norm reads it wide)

    qweights: dict[str, np.ndarray] = {}
    wscales: dict[str, np.ndarray] = {}
    fparams: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        for role, name in node.weights.items():
            if (layout := _INT8_WEIGHTS.get((node.op, role))) is not None:
                if name not in qweights:
                    per_channel = options.per_channel or node.op is Op.EMBED
                    qweights[name], wscales[name] = quantize_weight(model.weights.read(name), layout, per_channel)
            else:
                fparams[name] = model.weights.read(name)
        model.weights.forget(node.weights.values())  # one layer's float weights in memory at a time
    for o in graph.outputs:  # a LINEAR's graph output (logits) keeps its accumulators, scaled per row at the end
        if graph.producer(o).op is Op.LINEAR:
            fmt.bits[o] = 0
    return QuantizedModel(
        spec=model.spec, graphs=model.graphs, qweights=qweights, wscales=wscales, fparams=fparams,
        scales=fmt.scales, state_scales=state_scales, bits=fmt.bits, options=options, notes=list(notes or []),
        calibration={"alpha": stats.alpha, "batches": stats.batches, "tokens": stats.tokens},
        source=model.source)
