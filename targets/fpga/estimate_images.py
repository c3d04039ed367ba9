"""Analytic estimate of one image through one task on an FPGA: cycles, DRAM bytes and resources per stage.

The design of emit_images.py: one shared int8 engine of P MACs per cycle (two int8 MACs per DSP48E2, as
costs.py) runs every matrix product — patch embedding, qkv / proj / MLP / heads (edgec::linear_tokens:
each weight row read once per image), Q.K^T and P.V, the routers and the experts; element-wise work
(LayerNorm, softmax, residual adds, top-k) runs L elements per cycle; tables (GELU, the softmax exp) are
fused into their neighbours. Per op, T tokens (patches and cls), D width, H heads:

* engine, an [R x C] product over R rows: ceil(R / 2) * ceil(C / (P / 2)) + depth per output row block;
* LAYERNORM: T x (3 passes of ceil(D / L) + depth + NORM_SCALAR_CYCLES); SOFTMAX: rows x (2 passes +
  RECIP_CYCLES); TOPK: T x E x k compares / L; ADD, CLS_POS: ceil(T D / L) + depth;
* MOE, expert by expert (Edge-MoE's order): every routed token once through fc1 and fc2 (T k of them),
  and each **active** expert's weights read from DRAM once per image. Active experts are estimated for
  uniform routing, E (1 - (1 - k/E)^T); token by token (each token fetching its k experts) would read
  T k experts' weights: the report gives both, and the ratio.

DRAM bytes per image: every int8 weight the task runs (its own gates and head, the shared layers, the active
experts) and every per-channel constant at CONST_BYTES, the image in; activations stay on chip (BRAM, buffers
shared by lifetime as buffers.py assigns them, each at the storage width of the widest value it holds, as the
step estimate counts them: the C simulation's int64 arrays are a host convenience); BRAM also holds each
expert's weights while its tokens run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgec.ir import Graph, Node, Op, value_elements, value_rows
from edgec.passes.quantize import QuantizedModel
from edgec.targets.fpga.buffers import assign_buffers
from edgec.targets.fpga.costs import CONST_BYTES, MACS_PER_DSP, NORM_SCALAR_CYCLES, PIPELINE_DEPTH
from edgec.targets.fpga.devices import FpgaDevice
from edgec.targets.fpga.emit_images import merge_task_graphs
from edgec.targets.fpga.estimate import DRAM_EFFICIENCY, DSP_BUDGET, FIXED_DSP, VECTOR_DSP_PER_LANE
from edgec.targets.fpga.memory import mb

__all__ = ["ImageEstimate", "estimate_image", "format_image_estimate"]

UNKNOWN_BITS = 32  # a value without a stored format: accumulators (logits), expert indices
RECIP_CYCLES = 24  # the row sum's Newton reciprocal (3 steps) and its normalization multiplier
LANES = 8
BRAM36_BYTES = 4608


@dataclass
class ImageEstimate:
    """Per stage cycles and DRAM bytes of one image, the two bounds, resources against the part, the MoE
    traffic of both orders."""

    device: FpgaDevice
    parallelism: int
    stage_cycles: dict[str, int]
    stage_bytes: dict[str, int]
    dsp: int
    bram36: float
    expert_bytes_expert_order: int  # active experts' weights, each read once per image
    expert_bytes_token_order: int  # each token fetching its k experts
    active_experts: float
    notes: list[str] = field(default_factory=list)

    @property
    def cycles(self) -> int:
        return sum(self.stage_cycles.values())

    @property
    def bytes(self) -> int:
        return sum(self.stage_bytes.values())

    @property
    def compute_images_per_s(self) -> float:
        return self.device.clock_hz / self.cycles

    @property
    def dram_images_per_s(self) -> float:
        return self.device.dram_bytes_per_s * DRAM_EFFICIENCY / self.bytes

    @property
    def bound(self) -> str:
        return "compute" if self.compute_images_per_s <= self.dram_images_per_s else "dram"

    @property
    def images_per_s(self) -> float:
        return min(self.compute_images_per_s, self.dram_images_per_s)

    @property
    def fits(self) -> bool:
        return self.dsp <= self.device.dsp and self.bram36 <= self.device.bram_36k + 8 * self.device.uram

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device.name, "parallelism": self.parallelism, "stage_cycles": self.stage_cycles,
                "stage_bytes": self.stage_bytes, "cycles": self.cycles, "bytes": self.bytes,
                "compute_images_per_s": self.compute_images_per_s, "dram_images_per_s": self.dram_images_per_s,
                "bound": self.bound, "images_per_s": self.images_per_s, "dsp": self.dsp, "bram36": self.bram36,
                "active_experts": self.active_experts, "expert_bytes_expert_order": self.expert_bytes_expert_order,
                "expert_bytes_token_order": self.expert_bytes_token_order, "fits": self.fits, "notes": self.notes}


def _engine(rows: int, cols: int, count: int, p: int) -> int:
    """``count`` products of a [rows x cols] matrix with a vector, on the engine."""
    return count * math.ceil(rows / MACS_PER_DSP) * math.ceil(cols / (p // MACS_PER_DSP)) + PIPELINE_DEPTH


def _loop(trips: int) -> int:
    return math.ceil(trips / LANES) + PIPELINE_DEPTH


class _Costs:
    def __init__(self, graph: Graph, p: int) -> None:
        self.graph, self.p = graph, p
        self.expert_order = self.token_order = 0
        self.active = 0.0

    def width(self, value: str) -> int:
        return int(self.graph.values[value].shape[-1])

    def rows(self, value: str) -> int:
        return value_rows(self.graph, value)

    def cost(self, node: Node) -> tuple[int, int]:
        """(cycles, DRAM bytes) of ``node`` for one image."""
        op, x, out = node.op, node.inputs[0], node.outputs[0]
        if op in (Op.LINEAR, Op.ROUTE_LOGITS):
            n, k = self.width(out), self.width(x)
            consts = n * (2 + ("bias" in node.weights))
            return _engine(n, k, self.rows(x), self.p), n * k + CONST_BYTES * consts
        if op is Op.PATCH_EMBED:
            (h, w, c), patch, d = self.graph.values[x].shape[1:], node.attrs["patch"], self.width(out)
            k = c * patch * patch
            return _engine(d, k, (h // patch) * (w // patch), self.p), d * k + CONST_BYTES * 3 * d + h * w * c
        if op is Op.ATTN_SCORES:
            t, heads = self.rows(x), int(node.attrs["heads"])
            return _engine(t, self.width(x) // heads, heads * t, self.p), 0
        if op is Op.ATTN_CONTEXT:
            t = self.rows(node.inputs[1])
            return _engine(self.width(out), t, t, self.p), 0
        if op is Op.LAYERNORM:
            return self.rows(x) * (3 * _loop(self.width(x)) + NORM_SCALAR_CYCLES), 0
        if op is Op.SOFTMAX:
            n = self.width(x)
            rows = value_elements(self.graph, x) // n
            return rows * (2 * _loop(n) + RECIP_CYCLES), CONST_BYTES * 256
        if op is Op.TOPK:
            return self.rows(x) * _loop(self.width(x) * node.attrs["k"]), 0
        if op is Op.MOE:
            return self.moe(node)
        if op is Op.GELU:
            return 0, CONST_BYTES * 256  # fused into the linear before it
        if op in (Op.ADD, Op.CLS_POS, Op.NORMALIZE_IMAGE, Op.CLS_POOL, Op.SPLIT):
            size = value_elements(self.graph, out)
            table = CONST_BYTES * size if op is Op.CLS_POS else 0
            return (0 if op is Op.SPLIT else _loop(size)), table
        raise ValueError(f"no image cost model for op {op.value!r} (node {node.name})")

    def moe(self, node: Node) -> tuple[int, int]:
        x = node.inputs[0]
        t, d, e = self.rows(x), self.width(x), int(node.attrs["experts"])
        k, hm = int(self.graph.values[node.inputs[2]].shape[-1]), int(node.attrs["hidden"])
        per_expert = 2 * d * hm + CONST_BYTES * (3 * hm + 3 * d + 256)  # weights, biases, requants, GELU table
        active = e * (1 - (1 - k / e) ** t)
        self.active += active
        self.expert_order += int(active * per_expert)
        self.token_order += t * k * per_expert
        cycles = _engine(hm, d, t * k, self.p) + _engine(d, hm, t * k, self.p)
        return cycles, int(active * per_expert)


def _stage(node: Node) -> str:
    """Report stage: the node name without its block prefix ("blocks.3.attn.qkv" -> "attn.qkv")."""
    parts = node.name.split(".")
    if parts[0] == "blocks" and len(parts) > 2:
        inner = ".".join(parts[2:])
        return inner.split(".gate.")[0] + ".gate" if ".gate." in inner else inner
    return "heads" if parts[0] == "heads" else node.name


def estimate_image(qm: QuantizedModel, device: FpgaDevice, parallelism: int, task: int = 0) -> ImageEstimate:
    """The estimate of one image through task ``task`` (index among the entry graphs)."""
    from edgec.ir import entry_graphs

    keys = list(entry_graphs(qm.graphs))
    graph, tasks = merge_task_graphs({k: qm.graphs[k] for k in keys})
    costs = _Costs(graph, parallelism)
    stage_cycles: dict[str, int] = {}
    stage_bytes: dict[str, int] = {}
    for node in graph.nodes:
        if tasks[node.name] and task not in tasks[node.name]:
            continue
        cycles, nbytes = costs.cost(node)
        label = _stage(node)
        stage_cycles[label] = stage_cycles.get(label, 0) + cycles
        stage_bytes[label] = stage_bytes.get(label, 0) + nbytes
    widest: dict[str, tuple[int, int]] = {}  # buffer -> (elements, bits of the widest value it holds)
    for value, (name, size) in assign_buffers(graph).items():
        bits = qm.bits.get(value) or UNKNOWN_BITS
        widest[name] = (size, max(bits, widest.get(name, (0, 0))[1]))
    hidden = max((int(n.attrs["hidden"]) * int(graph.values[n.inputs[0]].shape[-1])
                  for n in graph.nodes if n.op is Op.MOE), default=0)
    onchip = sum(n * b for n, b in widest.values()) // 8 + 2 * hidden  # buffers; one expert's fc1 + fc2 weights
    est = ImageEstimate(device, parallelism, stage_cycles, stage_bytes,
                        parallelism // MACS_PER_DSP + LANES * VECTOR_DSP_PER_LANE + FIXED_DSP,
                        math.ceil(onchip / BRAM36_BYTES), costs.expert_order, costs.token_order, costs.active)
    if est.dsp > DSP_BUDGET * device.dsp:
        est.notes.append(f"DSP use {est.dsp} is {est.dsp / device.dsp:.0%} of {device.dsp}: timing closure may be hard")
    if est.bram36 > device.bram_36k:
        est.notes.append(f"activation buffers need {est.bram36} BRAM36 ({mb(onchip)}) but {device.name} has "
                         f"{device.bram_36k}: URAM or tiling over tokens would be needed")
    return est


def format_image_estimate(e: ImageEstimate) -> str:
    dev = e.device
    lines = [f"FPGA estimate, one image: {dev.name} ({dev.part}) at {dev.clock_mhz:g} MHz; P = {e.parallelism} int8 "
             "MACs/cycle", f"{'stage':<22} {'cycles':>12} {'share':>6} {'DRAM bytes':>12}"]
    for name, c in e.stage_cycles.items():
        lines.append(f"{name:<22} {c:>12,} {c / e.cycles:>6.1%} {e.stage_bytes.get(name, 0):>12,}")
    lines += [f"{'total':<22} {e.cycles:>12,} {1:>6.0%} {e.bytes:>12,}",
              f"compute bound: {e.compute_images_per_s:,.1f} images/s; DRAM bound: {e.dram_images_per_s:,.1f} images/s "
              f"({mb(e.bytes)}/image at {DRAM_EFFICIENCY:g} x {dev.dram_gbps:g} GB/s); active: {e.bound} -> "
              f"{e.images_per_s:,.1f} images/s ({1e3 / e.images_per_s:.3f} ms/image)",
              f"resources: DSP48E2 {e.dsp} of {dev.dsp}, BRAM36 {e.bram36:g} of {dev.bram_36k}"]
    if e.expert_bytes_token_order:
        lines.append(f"experts: {e.active_experts:.1f} active per image (uniform routing), read expert by expert "
                     f"{mb(e.expert_bytes_expert_order)} vs token by token {mb(e.expert_bytes_token_order)}: "
                     f"{e.expert_bytes_token_order / max(e.expert_bytes_expert_order, 1):.1f}x less expert traffic")
    lines += [f"note: {n}" for n in e.notes]
    lines.append("note: an analytic model (trip counts x II, weights at full AXI burst width); not a synthesis report")
    return "\n".join(lines)
