"""Analytic estimate of one decode step on an FPGA: cycles, DRAM traffic, DSP/BRAM/URAM/LUT and fit.

The design and the per-op formulas are in costs.py; this module adds them up over a step graph (the
quantized model's, or the float graph of a spec with the default recipe's rotations), places the
recurrent state and the activation buffers in on-chip memory, and names the active bound.

State lives on chip or in DRAM by the size rule of memory.py; DRAM-resident state is read and written
back once per token, and that traffic counts in the DRAM bound. A model whose on-chip state alone
exceeds the part's BRAM + URAM does not fit.

DRAM bound: ``dram_bytes_per_s * DRAM_EFFICIENCY / bytes_per_token``. Weight and state streaming overlap
compute (a ping/pong weight FIFO, as Edge-MoE's buffers), so tokens/s is the smaller of the two bounds
and that bound is named active.

Resources are an estimate for planning, not a synthesis report: DSPs are counted exactly for the
engine (P / 2) and per lane for the recurrent and element-wise units; BRAM/URAM from the arrays'
shapes mapped onto 36 Kb / 288 Kb blocks; LUTs from per-unit rules of thumb (order of magnitude).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edgec.errors import EdgecError
from edgec.families import FAMILIES
from edgec.ir import Graph, Node, Op, Value
from edgec.numerics.hadamard import HadamardPlan, plan_hadamard
from edgec.passes.hadamard import rotated_linears
from edgec.targets.fpga import memory
from edgec.targets.fpga.buffers import BUFFER_BITS, assign_buffers, state_outputs, wide_value
from edgec.targets.fpga.costs import (
    CONST_BYTES,
    MACS_PER_DSP,
    MLSTM_DEPTH,
    MLSTM_SCALAR_CYCLES,
    NORM_SCALAR_CYCLES,
    PIPELINE_DEPTH,
    SCAN_DEPTH,
    SSD_DEPTH,
    SSD_HEAD_CYCLES,
    TABLE_OPS,
    UNITS,
    StateArray,
    fused_host,
    lane_width,
    node_cost,
    stage_label,
)
from edgec.targets.fpga.devices import FpgaDevice
from edgec.targets.fpga.memory import StatePlacement, mb, place_states

__all__ = [
    "CONST_BYTES",
    "DRAM_EFFICIENCY",
    "DSP_BUDGET",
    "MACS_PER_DSP",
    "Estimate",
    "StatePlacement",
    "default_lanes",
    "default_parallelism",
    "estimate",
    "format_estimate",
    "spec_bits",
    "step_graph",
]

logger = logging.getLogger(__name__)

#: Sustained fraction of peak DRAM bandwidth for long sequential AXI bursts. Batch-1 decode latency is
#: about bytes moved / (0.6-0.8 x bandwidth) (REFERENCES.md, roofline); 0.7 is the middle of that range.
DRAM_EFFICIENCY = 0.7
#: The default P keeps DSP use at or below this fraction of the device (room for routing and timing).
DSP_BUDGET = 0.8
#: DSP48E2 per element-wise lane (one shared unit: a 32x32 product for x^2 / y*g (4), a requant (2),
#: the conv taps (2)).
VECTOR_DSP_PER_LANE = 8
#: DSP48E2 outside the lanes: the scan's per-channel output requants (6), RMSNorm's scale/divide (6).
FIXED_DSP = 12
#: LUT rules of thumb (order of magnitude): AXI masters, DMA and control; per engine MAC (operand
#: packing/correction, adder tree, and the 2 x 32-beat SRL32 weight FIFO of P bytes); per Hadamard
#: element of width W (an adder of ~40 bits); per element-wise lane (requant, LUT tables).
LUT_BASE = 25_000
LUT_PER_MAC = 24
LUT_PER_HADAMARD_ELEMENT = 40
LUT_PER_VECTOR_LANE = 600
#: Storage width a spec-only estimate (no quantized formats) assumes for a value other than a wide product: between
#: the int8 codes of most values and the 24-bit residual stream.
UNKNOWN_BUFFER_BITS = 16


def spec_bits(graph: Graph) -> dict[str, int]:
    """The storage widths a spec-only estimate assumes: UNKNOWN_BUFFER_BITS for every value but the products the
    quantizer leaves without a format, those read by a rotation or a norm (passes/quantize.py)."""
    def wide(value: str) -> bool:
        producer = graph.producer(value)
        return (producer is not None and producer.op is Op.MUL
                and any(u.op in (Op.HADAMARD, Op.RMSNORM) for u in graph.users(value)))
    return {v: UNKNOWN_BUFFER_BITS for v in graph.values if not wide(v)}


def step_graph(spec: Any) -> Graph:
    """The float step graph of ``spec`` (its family's builder) with a HADAMARD before every LINEAR that reads
    a product or the norm of a product, where the default recipe rotates (passes/hadamard.py; the weights are
    not needed here)."""
    graph = FAMILIES[spec.family].build_graphs(spec)["step"].copy()
    for linear in rotated_linears(graph):
        src, value = linear.inputs[0], graph.values[linear.inputs[0]]
        plan = plan_hadamard(int(value.shape[-1]))
        rotated = Value(src + "_rot", (*value.shape[:-1], plan.padded_dim), value.dtype)
        rotation = Node(Op.HADAMARD, (src,), (rotated.name,), {}, {"plan": plan}, linear.name + ".hadamard")
        graph.insert_after(graph.producer(src), rotation, [rotated])
        graph.replace_all_uses(src, rotated.name, skip=rotation)
    return graph


class _Design:
    """A step graph, the storage width of its values, and what the estimate derives from them once."""

    def __init__(self, spec: Any, graph: Graph | None, bits: Mapping[str, int] | None) -> None:
        self.spec = spec
        self.graph = graph if graph is not None else step_graph(spec)
        self.bits = dict(bits) if bits else spec_bits(self.graph)
        nodes = self.graph.nodes
        self.labels = {n.name: stage_label(fused_host(self.graph, n) if n.op in TABLE_OPS else n) for n in nodes}
        self.plans = tuple(dict.fromkeys(n.attrs["plan"] for n in nodes if n.op is Op.HADAMARD))
        self.units = sorted({c.unit for c in self.costs(MACS_PER_DSP, 1).values() if c.unit})
        widths = [lane_width(self.graph, n) for n in nodes]
        self.lane_cap = min([w for w in widths if w] or [16])
        widest = max(int(self.graph.values[n.inputs[0]].shape[-1]) for n in nodes if n.op is Op.LINEAR)
        self.max_parallelism = MACS_PER_DSP * (1 << (widest - 1).bit_length())  # P/2 covers the widest reduction

    def costs(self, p: int, lanes: int) -> dict[str, Any]:
        return {n.name: c for n in self.graph.nodes
                if (c := node_cost(self.graph, n, p, lanes, self.bits)) is not None}

    def cycles(self, p: int, lanes: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, cost in self.costs(p, lanes).items():
            out[self.labels[name]] = out.get(self.labels[name], 0) + cost.cycles
        return out

    def dsp(self, p: int, lanes: int) -> int:
        units = sum(lanes * UNITS[u].dsp_per_lane + UNITS[u].fixed_dsp for u in self.units)
        return p // MACS_PER_DSP + lanes * VECTOR_DSP_PER_LANE + FIXED_DSP + units

    def lut(self, p: int, lanes: int) -> int:
        w = min(p, max((plan.padded_dim for plan in self.plans), default=0))
        per_lane = LUT_PER_VECTOR_LANE + sum(UNITS[u].lut_per_lane for u in self.units)
        return LUT_BASE + LUT_PER_MAC * p + LUT_PER_HADAMARD_ELEMENT * w + lanes * per_lane

    def storage_bits(self, value: str) -> int:
        """The width ``value`` takes in a buffer: its format, or for a wide product (exact, unsaturated) the sum of
        its factors' widths (the C simulation holds every value in a BUFFER_BITS element; synthesis packs them)."""
        if not wide_value(self.bits, value):
            return self.bits[value] or UNKNOWN_BUFFER_BITS
        producer = self.graph.producer(value)
        return BUFFER_BITS if producer is None else sum(self.storage_bits(x) for x in producer.inputs)

    def buffers(self, lanes: int) -> list[tuple[int, int]]:
        """(elements, bits) of each activation buffer (values sharing one take the widest format)."""
        widest: dict[str, tuple[int, int]] = {}
        streamed = state_outputs(self.graph) | set(self.graph.outputs)  # logits go out over AXI as produced
        for value, (name, width) in assign_buffers(self.graph, streamed).items():
            widest[name] = (width, max(self.storage_bits(value), widest.get(name, (0, 0))[1]))
        return list(widest.values())


def default_lanes(spec: Any, graph: Graph | None = None) -> int:
    """Element-wise lanes: one per element of the narrowest recurrent state row (scan N, mLSTM dv), up to 16."""
    return min(_Design(spec, graph, None).lane_cap, 16)


def _default_parallelism(design: _Design, device: FpgaDevice, lanes: int) -> int:
    p = 2
    while (p * 2 <= design.max_parallelism and design.dsp(p * 2, lanes) <= DSP_BUDGET * device.dsp
           and design.lut(p * 2, lanes) <= DSP_BUDGET * device.lut):
        p *= 2
    return p


def default_parallelism(spec: Any, device: FpgaDevice, lanes: int | None = None, graph: Graph | None = None) -> int:
    """The largest power of two P >= 2 whose DSP (and LUT) use stays within DSP_BUDGET of the device.

    Capped at the largest P the engine can use on this model (P/2 >= the widest reduction).
    """
    design = _Design(spec, graph, None)
    return _default_parallelism(design, device, min(design.lane_cap, 16) if lanes is None else lanes)


@dataclass(frozen=True)
class Estimate:
    """The analytic estimate of one decode step; see the module docstrings (here and costs.py)."""

    device: FpgaDevice
    spec: Any
    parallelism: int
    lanes: int
    hadamards: tuple[HadamardPlan, ...]
    stage_cycles: dict[str, int]
    cycles_per_token: int
    compute_tokens_per_s: float
    stage_bytes: dict[str, int]
    bytes_per_token: int
    int8_weight_bytes: int
    const_bytes: int
    state_traffic_bytes: int  # DRAM-resident state read and written back, per token
    dram_efficiency: float
    dram_tokens_per_s: float
    tokens_per_s: float
    bound: str  # "compute" or "dram": the smaller of the two bounds
    balanced_parallelism: int | None  # smallest power-of-two P whose compute bound reaches the DRAM bound
    dsp_used: int
    lut_used: int
    bram_used: float  # BRAM36 equivalents
    uram_used: int
    states: tuple[StatePlacement, ...]
    buffer_bytes: int  # activation buffers
    fits: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def hadamard(self) -> HadamardPlan | None:
        """The first rotation's plan (None without rotations)."""
        return self.hadamards[0] if self.hadamards else None

    def _state(self, dram: bool, kind: str | None = None) -> int:
        return sum(s.nbytes for s in self.states if (s.where == "DRAM") == dram and kind in (None, s.kind))

    @property
    def state_bytes(self) -> int:
        """Recurrent state kept on chip between tokens."""
        return self._state(False)

    @property
    def dram_state_bytes(self) -> int:
        """Recurrent state that lives in DRAM."""
        return self._state(True)

    @property
    def ssm_state_bytes(self) -> int:
        return self._state(False, "ssm")

    @property
    def conv_state_bytes(self) -> int:
        return self._state(False, "conv")

    @property
    def dram_states(self) -> frozenset[str]:
        """The state inputs of the step graph whose arrays live in DRAM."""
        return frozenset(v for s in self.states if s.where == "DRAM" for v in s.values)

    @property
    def reason(self) -> str:
        """Why the design does not fit (one line), or '' when it fits."""
        return "; ".join(self.reasons)

    @property
    def latency_ms(self) -> float:
        return 1e3 / self.tokens_per_s

    def utilization(self) -> dict[str, float]:
        dev = self.device
        return {
            "dsp": self.dsp_used / dev.dsp,
            "bram_36k": self.bram_used / dev.bram_36k if dev.bram_36k else (math.inf if self.bram_used else 0.0),
            "uram": self.uram_used / dev.uram if dev.uram else (math.inf if self.uram_used else 0.0),
            "lut": self.lut_used / dev.lut,
        }

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report (plain ints, floats, strings, lists and dicts)."""
        dev = self.device
        return {
            "device": asdict(dev),
            "model": {k: v for k, v in asdict(self.spec).items() if isinstance(v, int) and not isinstance(v, bool)},
            "parallelism": self.parallelism,
            "lanes": self.lanes,
            "hadamard": [{"dim": p.dim, "k": p.k, "m": p.m, "padded_dim": p.padded_dim} for p in self.hadamards],
            "stage_cycles": dict(self.stage_cycles),
            "cycles_per_token": self.cycles_per_token,
            "compute_tokens_per_s": self.compute_tokens_per_s,
            "stage_bytes": dict(self.stage_bytes),
            "bytes_per_token": self.bytes_per_token,
            "int8_weight_bytes": self.int8_weight_bytes,
            "const_bytes": self.const_bytes,
            "state_traffic_bytes": self.state_traffic_bytes,
            "dram_efficiency": self.dram_efficiency,
            "dram_tokens_per_s": self.dram_tokens_per_s,
            "tokens_per_s": self.tokens_per_s,
            "latency_ms": self.latency_ms,
            "bound": self.bound,
            "balanced_parallelism": self.balanced_parallelism,
            "resources": {
                "dsp": {"used": self.dsp_used, "available": dev.dsp},
                "bram_36k": {"used": self.bram_used, "available": dev.bram_36k},
                "uram": {"used": self.uram_used, "available": dev.uram},
                "lut": {"used": self.lut_used, "available": dev.lut},
            },
            "state": [{"kind": s.kind, "arrays": len(s.values), "shape": list(s.shape), "bits": s.bits,
                       "bytes": s.nbytes, "where": s.where} for s in self.states],
            "onchip": {"state_bytes": self.state_bytes, "buffer_bytes": self.buffer_bytes,
                       "capacity_bytes": dev.bram_bytes + dev.uram_bytes},
            "fits": self.fits,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "assumptions": {
                "macs_per_dsp": MACS_PER_DSP, "dsp_budget": DSP_BUDGET, "onchip_budget": memory.ONCHIP_BUDGET,
                "const_bytes": CONST_BYTES, "pipeline_depth": PIPELINE_DEPTH, "scan_depth": SCAN_DEPTH,
                "ssd_depth": SSD_DEPTH, "ssd_head_cycles": SSD_HEAD_CYCLES,
                "mlstm_depth": MLSTM_DEPTH, "mlstm_scalar_cycles": MLSTM_SCALAR_CYCLES,
                "norm_scalar_cycles": NORM_SCALAR_CYCLES,
            },
        }


def _group_states(design: _Design, lanes: int) -> list[tuple[StateArray, list[str]]]:
    """State arrays of one kind and shape across layers, largest first: (one array, every state input)."""
    groups: dict[tuple, tuple[StateArray, list[str]]] = {}
    for cost in design.costs(MACS_PER_DSP, lanes).values():
        for s in cost.states:
            key = (s.kind, s.shape, s.bits, s.word_bits, s.depth, s.streamable)
            groups.setdefault(key, (s, []))[1].append(s.value)
    return sorted(groups.values(), key=lambda g: -g[0].bytes * len(g[1]))


def estimate(spec: Any, device: FpgaDevice, parallelism: int | None = None, lanes: int | None = None,
             graph: Graph | None = None, bits: Mapping[str, int] | None = None) -> Estimate:
    """Estimate one decode step on ``device`` with a P-MAC engine and L lanes.

    ``graph`` is the step graph to estimate (default: ``step_graph(spec)``) and ``bits`` the storage width
    of its values (a QuantizedModel's ``bits``; default: :func:`spec_bits`); a wide product (no format) takes the
    sum of its factors' widths.
    ``parallelism`` defaults to :func:`default_parallelism`; ``lanes`` to :func:`default_lanes`.
    """
    design = _Design(spec, graph, bits)
    lanes = min(design.lane_cap, 16) if lanes is None else int(lanes)
    if lanes < 1:
        raise EdgecError(f"FPGA lanes must be >= 1, got {lanes}")
    p = _default_parallelism(design, device, lanes) if parallelism is None else int(parallelism)
    if p < MACS_PER_DSP or p % MACS_PER_DSP:
        raise EdgecError(f"FPGA parallelism must be an even number >= {MACS_PER_DSP} (2 int8 MACs per DSP), got {p}")

    # -- memory, then time and traffic -----------------------------------------------------------
    buffers = design.buffers(lanes)
    mem, placed = place_states(_group_states(design, lanes), buffers, device, lanes)
    buffer_bytes = sum(n * bits // 8 for n, bits in buffers)
    in_dram = {v for s in placed if s.where == "DRAM" for v in s.values}
    stage_cycles = design.cycles(p, lanes)
    cycles = sum(stage_cycles.values())
    compute_tps = device.clock_hz / cycles
    stage_bytes: dict[str, int] = {}
    int8_bytes = traffic = 0
    for name, cost in design.costs(p, lanes).items():
        streamed = 2 * sum(s.bytes for s in cost.states if s.value in in_dram)  # read and write back
        label = design.labels[name]
        stage_bytes[label] = stage_bytes.get(label, 0) + cost.int8_bytes + CONST_BYTES * cost.consts + streamed
        int8_bytes += cost.int8_bytes
        traffic += streamed
    nbytes = sum(stage_bytes.values())
    dram_tps = device.dram_bytes_per_s * DRAM_EFFICIENCY / nbytes
    bound = "compute" if compute_tps <= dram_tps else "dram"
    balanced = next((q for q in (1 << i for i in range(1, design.max_parallelism.bit_length()))
                     if device.clock_hz / sum(design.cycles(q, lanes).values()) >= dram_tps), None)

    # -- fit -------------------------------------------------------------------------------------
    dsp, lut = design.dsp(p, lanes), design.lut(p, lanes)
    reasons: list[str] = []
    notes: list[str] = []
    fixed = [s for s in placed if s.where != "DRAM"]
    state = sum(s.nbytes for s in fixed)
    capacity = device.bram_bytes + device.uram_bytes
    if state > capacity:
        reasons.append(f"on-chip state needs {mb(state)} ({'; '.join(s.describe() for s in fixed)}) but "
                       f"{device.name} has {mb(capacity)} of BRAM+URAM; this state must stay on chip between tokens "
                       "(DRAM streaming covers the weights and streamable state, such as mLSTM C and the SSD state, "
                       "only)")
    elif mem.bram > device.bram_36k or mem.uram > device.uram:
        reasons.append(f"on-chip state and buffers need {mem.bram:g} BRAM36 + {mem.uram} URAM (state {mb(state)}, "
                       f"{lanes} lanes wide) but {device.name} has {device.bram_36k} BRAM36 + {device.uram} URAM; "
                       "fewer lanes pack the state more tightly")
    if dsp > device.dsp:
        reasons.append(f"{dsp} DSP48E2 needed (P = {p}: {p // MACS_PER_DSP} for the engine) but {device.name} "
                       f"has {device.dsp}; lower the parallelism")
    if lut > device.lut:
        reasons.append(f"about {lut} LUTs needed but {device.name} has {device.lut}; lower the parallelism")
    if not reasons:
        for label, used, avail in (("DSP", dsp, device.dsp), ("BRAM36", mem.bram, device.bram_36k),
                                   ("URAM", mem.uram, device.uram), ("LUT", lut, device.lut)):
            if avail and used > DSP_BUDGET * avail:
                notes.append(f"{label} use {used:g} is {used / avail:.0%} of {avail}: timing closure may be hard")
    if bound == "dram" and balanced is not None and balanced < p:
        notes.append(f"DRAM-bound: P = {balanced} already reaches the bandwidth bound; a larger P buys nothing")
    for s in placed:
        if s.where == "DRAM":
            notes.append(f"state {s.kind} ({mb(s.nbytes)}) does not fit on chip within {memory.ONCHIP_BUDGET:.0%} of "
                         f"BRAM+URAM: it lives in DRAM, {mb(2 * s.nbytes)}/token read and written back")
    for plan in design.plans:
        if plan.pad:
            notes.append(f"width {plan.dim} is zero-padded to {plan.padded_dim} = {plan.k} * 2^{plan.m} for the "
                         "Hadamard rotation")

    return Estimate(
        device=device, spec=spec, parallelism=p, lanes=lanes, hadamards=design.plans,
        stage_cycles=stage_cycles, cycles_per_token=cycles, compute_tokens_per_s=compute_tps,
        stage_bytes=stage_bytes, bytes_per_token=nbytes, int8_weight_bytes=int8_bytes,
        const_bytes=nbytes - int8_bytes - traffic, state_traffic_bytes=traffic, dram_efficiency=DRAM_EFFICIENCY,
        dram_tokens_per_s=dram_tps, tokens_per_s=min(compute_tps, dram_tps), bound=bound,
        balanced_parallelism=balanced, dsp_used=dsp, lut_used=lut, bram_used=mem.bram, uram_used=mem.uram,
        states=tuple(placed), buffer_bytes=buffer_bytes, fits=not reasons, reasons=tuple(reasons),
        notes=tuple(notes),
    )


def format_estimate(e: Estimate) -> str:
    """A short text table: cycles and bytes by stage, the two bounds, resources against capacity, state, fit."""
    dev, s = e.device, e.spec
    lines = [
        f"FPGA estimate: {dev.name} ({dev.part}) at {dev.clock_mhz:g} MHz; P = {e.parallelism} int8 MACs/cycle, "
        f"L = {e.lanes} lanes; {s.family} {s.num_hidden_layers} layers, hidden {s.hidden_size}, V {s.vocab_size}",
        f"{'stage':<16} {'cycles/token':>13} {'share':>6} {'DRAM bytes':>14}",
    ]
    for name, c in e.stage_cycles.items():
        lines.append(f"{name:<16} {c:>13,} {c / e.cycles_per_token:>6.1%} {e.stage_bytes.get(name, 0):>14,}")
    lines.append(f"{'total':<16} {e.cycles_per_token:>13,} {1:>6.0%} {e.bytes_per_token:>14,}")
    lines += [
        f"compute bound: {e.compute_tokens_per_s:,.1f} tok/s ({e.cycles_per_token:,} cycles at {dev.clock_mhz:g} MHz)",
        f"DRAM bound:    {e.dram_tokens_per_s:,.1f} tok/s ({mb(e.bytes_per_token)}/token at "
        f"{e.dram_efficiency:g} x {dev.dram_gbps:g} GB/s; state traffic {mb(e.state_traffic_bytes)})",
        f"active bound:  {e.bound} -> {e.tokens_per_s:,.1f} tok/s ({e.latency_ms:.3f} ms/token)",
        f"{'resource':<10} {'used':>10} {'available':>10} {'use':>6}",
    ]
    util = e.utilization()
    for label, key, used, avail in (("DSP48E2", "dsp", e.dsp_used, dev.dsp),
                                    ("BRAM36", "bram_36k", e.bram_used, dev.bram_36k),
                                    ("URAM", "uram", e.uram_used, dev.uram),
                                    ("LUT (~)", "lut", e.lut_used, dev.lut)):
        lines.append(f"{label:<10} {used:>10,g} {avail:>10,} {util[key]:>6.0%}")
    lines += [f"state {p.describe()} in {p.where}" for p in e.states]
    lines.append(f"on-chip state: {mb(e.state_bytes)}; in DRAM: {mb(e.dram_state_bytes)}")
    lines.append("fits: yes" if e.fits else f"fits: NO: {e.reason}")
    lines += [f"note: {n}" for n in e.notes]
    lines.append("note: an analytic model (trip counts x II, weights read at full AXI burst width, activation "
                 "buffers at their declared widths); not a synthesis report")
    return "\n".join(lines)

