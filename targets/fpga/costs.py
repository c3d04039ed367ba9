"""Per-op cost model of the FPGA decode step: cycles, DRAM bytes and recurrent state of each step-graph node.

One ``_cost_<op>`` per IR op, as the emitter has one ``_emit_<op>``; a model family is only a graph and the
storage width of its values (``bits``, a QuantizedModel's).
The design (hls/include/edgec_kernels.h, generated top):

* one shared int8 matrix-vector engine of ``P`` MACs per cycle, pipelined at II = 1. Int8 MACs are
  packed two per DSP48E2 (AMD WP486: two int8 products that share one operand fit one 27x18
  multiplier), so the engine is a tile of 2 output rows x P/2 reduction columns: the two rows share
  x[k]. Every int8 weight and per-channel constant is streamed from DRAM over AXI for every token;
* element-wise units handle ``L`` elements per cycle (``lanes``); an II = 1 loop of T trips costs
  ``T + PIPELINE_DEPTH`` cycles (fill/drain once per loop);
* a table lookup (SiLU, softplus, sigmoid: 256 entries; a soft cap: an interpolated table) is fused
  into the pipeline next to it and costs no cycles: into its consumer when that is a product (the gate
  silu(z) * y), else into its producer (conv1d, a projection; through a SPLIT, which only names slices).

Cycle formulas (D, E widths of the node's input/output; ``ceil`` rounds up):

* LINEAR rows x cols: ceil(rows / 2) * ceil(cols / (P / 2)) + depth;
* RMSNORM: 2 * (ceil(D / L) + depth) + NORM_SCALAR_CYCLES (sum of squares, then scale; isqrt and one
  64-bit division between); with G groups, G * NORM_SCALAR_CYCLES, and of a wide product (no stored format:
  buffers.wide_value; block floating point) a third pass (the max |x| of each group) before the block shift and
  sum of squares;
* EMBED, CONV1D_STEP, MUL, ADD: ceil(width / L) + depth (the K taps of a conv channel are unrolled in one
  iteration);
* SCAN_STEP: E * ceil(N / L) + SCAN_DEPTH (L state elements per cycle, the C.h reduction across lanes);
* SSD_STEP over H heads of P channels and N states: H * P * ceil(N / L) + SSD_DEPTH (the same sweep with one
  decay per head, looked up, not computed: no exp2 polynomial) + H * SSD_HEAD_CYCLES (the two indexed table
  reads of the head's dt code);
* HADAMARD, ``W = min(P, padded)`` elements per cycle: m butterfly stages of ceil(padded / W) + depth
  cycles each, then the K x K +-1 stage (padded * K adds) and the requant: ceil(padded * K / W) + depth;
* HEAD_LAYERNORM over H heads of V/H: 4 * (ceil(V / L) + depth) (sum, centre and max, block shift and
  sum of squares, scale) + H * NORM_SCALAR_CYCLES;
* MLSTM_STEP, per head: the n update with q.n (ceil(dqk / L) + depth), the C sweep with q.C
  (dqk * ceil(dv / L) + MLSTM_DEPTH), the output h (ceil(dv / L) + depth) and MLSTM_SCALAR_CYCLES
  (gates: interpolated log-sigmoid, two exp2 polynomials; denominator: exp2_int and the reciprocal).

DRAM bytes per token: every int8 weight (the embedding as one row) + every per-channel constant at
``CONST_BYTES`` (the kernels read them as int64) + the tables; scalar constants are compiled into the top.
A state array that lives in DRAM adds its read and write-back (estimate.py decides where state lives).
SSD_STEP's per-head tables (dt_q and decay, [H, 256] each) stay in DRAM and are read by index: 2 * H words per
token, plus bu_m, bu_shift, d_m and d_shift per head (4 * H).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgec.errors import UnsupportedOpError
from edgec.ir import Graph, Node, Op
from edgec.runtime.sim_int import KNOT_BITS
from edgec.targets.fpga.buffers import wide_value

__all__ = [
    "CONST_BYTES",
    "MACS_PER_DSP",
    "MLSTM_DEPTH",
    "MLSTM_SCALAR_CYCLES",
    "NORM_SCALAR_CYCLES",
    "PIPELINE_DEPTH",
    "SCAN_DEPTH",
    "SSD_DEPTH",
    "SSD_HEAD_CYCLES",
    "TABLE_OPS",
    "UNITS",
    "NodeCost",
    "StateArray",
    "Unit",
    "fused_host",
    "lane_width",
    "node_cost",
    "stage_label",
]

#: Int8 MACs per DSP48E2: two int8 x int8 products sharing one operand, packed into one 27x18 multiply
#: (AMD WP486, "Deep Learning with INT8 Optimization on Xilinx Devices").
MACS_PER_DSP = 2
#: Bytes of one per-channel constant (requant multiplier, shift, bias, A, LUT entry, knot) as streamed:
#: hls/include/edgec_kernels.h reads every constant as int64.
CONST_BYTES = 8
#: Fill/drain latency of one II = 1 loop: load, multiply, requant multiply, round-shift, saturate, store.
PIPELINE_DEPTH = 8
#: Latency of the scan pipeline: the degree-5 Q30 exp2 polynomial (5 chained products) and the update.
SCAN_DEPTH = 24
#: Latency of the SSD sweep: dt_q x B and its requant, requant(h, decay), the saturating add and the C.h MAC.
SSD_DEPTH = 16
#: The SSD cell's scalar work per head: two indexed reads of the dt code's table entries (DRAM latency).
SSD_HEAD_CYCLES = 40
#: RMSNorm's scalar tail: a bit-serial isqrt (32 steps) and one 64-bit division (~68 cycles).
NORM_SCALAR_CYCLES = 100
#: Latency of the C sweep: requant(C, f_act), the k v i_act requant, the saturating add and the q.C MAC.
MLSTM_DEPTH = 16
#: The mLSTM cell's scalar work per head: i requant and the log-sigmoid interpolation, two exp2_fixed
#: polynomials (gates), then exp2_int and a 3-step Newton reciprocal (denominator), ~20 cycles each.
MLSTM_SCALAR_CYCLES = 80
_TABLE_ENTRIES = 256  # a one-input int8 nonlinearity is a 256-entry table
_KNOTS = (1 << KNOT_BITS) + 1  # an interpolated table of a 16-bit input (soft cap, log-sigmoid gate)
_LAYER_NODE = re.compile(r"[A-Za-z_]+\.\d+\.(.+)")  # "layers.3.in_proj", "blocks.0.mlstm"
#: Ops a layer may hold several instances of, all run by one shared unit: reported as one stage.
_SHARED_UNITS = frozenset({Op.RMSNORM, Op.HEAD_LAYERNORM, Op.HADAMARD})
TABLE_OPS = frozenset({Op.SILU, Op.SOFTPLUS, Op.SIGMOID, Op.SOFTCAP})  # fused lookups


@dataclass(frozen=True)
class Unit:
    """A compute unit beside the engine and the element-wise lanes: DSP48E2 and LUTs (per lane and fixed)."""

    dsp_per_lane: int
    fixed_dsp: int
    lut_per_lane: int


#: DSP48E2 and LUT rules of thumb per unit. scan, per lane: dt*A (2), exp2 Horner 5 x 32x32 (20), dt*u*B (2),
#: its requant (3), requant(h, decay) 32x31 (4), h*C (2). mlstm, per lane: requant(C, f_act) 32x31 (4), k*v*i_act
#: (3), its requant (2), q*C (2); fixed: the gate exp2 Horner chain (20) and the reciprocal's Newton products
#: (24) and the output requant chain (4). interp: the slope * offset product of an interpolated table.
#: ssd, per lane: dt_q*x*B 24x8x8 (3), its requant (2), requant(h, decay) 32x31 (4), h*C (2); fixed: the output
#: requants of y and of the D skip (4).
UNITS = {"scan": Unit(33, 0, 1_500), "mlstm": Unit(11, 48, 1_500), "interp": Unit(0, 1, 0),
         "ssd": Unit(11, 4, 1_200)}


@dataclass(frozen=True)
class StateArray:
    """One recurrent state array of one node, as the design stores it between tokens.

    ``word_bits`` x ``depth`` is its memory shape (L elements per word along the axis a kernel
    processes in parallel); ``streamable`` arrays are swept once per token in row order and may live
    in DRAM (estimate.py decides), the others stay on chip.
    """

    value: str  # the state input of the step graph
    kind: str  # "conv", "ssm", "C", "n", "m": what the report calls it
    shape: tuple[int, ...]
    bits: int
    word_bits: int
    depth: int
    streamable: bool = False

    @property
    def bytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * self.bits // 8


@dataclass(frozen=True)
class NodeCost:
    """What one node adds to the step: cycles, int8 weight bytes, constants (elements) and its state."""

    cycles: int = 0
    int8_bytes: int = 0
    consts: int = 0
    unit: str = ""
    states: tuple[StateArray, ...] = ()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _loop(trips: int, depth: int = PIPELINE_DEPTH) -> int:
    """Cycles of one pipelined II = 1 loop."""
    return trips + depth


def _width(graph: Graph, value: str) -> int:
    return int(graph.values[value].shape[-1])


def _state_shape(graph: Graph, value: str) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.values[value].shape[1:])  # without the batch axis


def stage_label(node: Node) -> str:
    """The report stage of a node: its name without the layer prefix (one stage across layers); a shared
    unit's ops (norms, rotations) inside layers by the op's name; nodes outside layers by their name."""
    inner = _LAYER_NODE.fullmatch(node.name)
    if inner is None:
        return node.name
    return node.op.value if node.op in _SHARED_UNITS else inner.group(1)


def _producer(graph: Graph, value: str) -> Node | None:
    node = graph.producer(value)
    while node is not None and node.op is Op.SPLIT:  # a SPLIT only names slices of its input
        node = graph.producer(node.inputs[0])
    return node


def fused_host(graph: Graph, node: Node) -> Node:
    """The node whose pipeline runs a table lookup: its consumer when that is a product, else its producer."""
    users = graph.users(node.outputs[0])
    if users and users[0].op is Op.MUL:
        return users[0]
    return _producer(graph, node.inputs[0]) or node


def lane_width(graph: Graph, node: Node) -> int | None:
    """The state row a recurrent unit processes L elements of at a time (None for other ops)."""
    if node.op is Op.SCAN_STEP:
        return _state_shape(graph, node.inputs[4])[-1]
    if node.op is Op.MLSTM_STEP:
        return _state_shape(graph, node.inputs[5])[-1]
    if node.op is Op.SSD_STEP:
        return _state_shape(graph, node.inputs[4])[-1]
    return None


def _cost_embed(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    d = _width(graph, node.outputs[0])
    return NodeCost(_loop(_cdiv(d, lanes)), d, 2)  # one row; the token's multiplier and shift


def _cost_rmsnorm(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    src = node.inputs[0]
    passes = 3 if wide_value(bits, src) else 2  # a wide product: the max pass first
    groups = int(node.attrs.get("groups", 1))
    return NodeCost(passes * _loop(_cdiv(_width(graph, src), lanes)) + groups * NORM_SCALAR_CYCLES)


def _cost_linear(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    rows, cols = _width(graph, node.outputs[0]), _width(graph, node.inputs[0])
    requant = node.outputs[0] not in graph.outputs  # a graph output keeps its accumulators (passes/quantize.py)
    cycles = _cdiv(rows, MACS_PER_DSP) * _cdiv(cols, p // MACS_PER_DSP) + PIPELINE_DEPTH
    return NodeCost(cycles, rows * cols, rows * (2 * requant + ("bias" in node.weights)))


def _cost_elementwise(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    return NodeCost(_loop(_cdiv(_width(graph, node.outputs[0]), lanes)))


def _cost_conv1d_step(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    e, taps = _state_shape(graph, node.inputs[1])
    state = StateArray(node.inputs[1], "conv", (e, taps), 8, lanes * taps * 8, _cdiv(e, lanes))
    return NodeCost(_loop(_cdiv(e, lanes)), e * (taps + 1), e * (2 + ("bias" in node.weights)), states=(state,))


def _cost_scan_step(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    e, n = _state_shape(graph, node.inputs[4])
    state = StateArray(node.inputs[4], "ssm", (e, n), 32, lanes * 32, e * _cdiv(n, lanes))
    # A (quantized, per channel and state) + D's multiplier and shift
    return NodeCost(_loop(e * _cdiv(n, lanes), SCAN_DEPTH), 0, e * n + 2 * e, "scan", (state,))


def _cost_ssd_step(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    heads, hp, n = _state_shape(graph, node.inputs[4])
    state = StateArray(node.inputs[4], "ssm", (heads, hp, n), 32, lanes * 32, heads * hp * _cdiv(n, lanes),
                       streamable=True)
    cycles = _loop(heads * hp * _cdiv(n, lanes), SSD_DEPTH) + heads * SSD_HEAD_CYCLES
    return NodeCost(cycles, 0, 6 * heads, "ssd", (state,))  # dt_q, decay (indexed), bu_m, bu_shift, d_m, d_shift


def _cost_table(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    if node.op is Op.SOFTCAP:
        return NodeCost(0, 0, _KNOTS, "interp")
    return NodeCost(0, 0, _TABLE_ENTRIES)


def _cost_hadamard(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    plan = node.attrs["plan"]
    w = min(p, plan.padded_dim)
    cycles = plan.m * _loop(_cdiv(plan.padded_dim, w)) + _loop(_cdiv(plan.padded_dim * plan.k, w))
    return NodeCost(cycles, 0, plan.k * plan.k)  # the K x K +-1 matrix


def _cost_head_layernorm(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    v, heads = _width(graph, node.outputs[0]), int(node.attrs["heads"])
    return NodeCost(4 * _loop(_cdiv(v, lanes)) + heads * NORM_SCALAR_CYCLES, 0, 2 * v)  # per-channel m, shift


def _cost_mlstm_step(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost:
    c, n, m = node.inputs[5:8]
    heads, dqk, dv = _state_shape(graph, c)
    per_head = (_loop(_cdiv(dqk, lanes)) + _loop(dqk * _cdiv(dv, lanes), MLSTM_DEPTH) + _loop(_cdiv(dv, lanes))
                + MLSTM_SCALAR_CYCLES)
    states = (StateArray(c, "C", (heads, dqk, dv), 32, lanes * 32, heads * dqk * _cdiv(dv, lanes), streamable=True),
              StateArray(n, "n", (heads, dqk), 32, lanes * 32, heads * _cdiv(dqk, lanes)),
              StateArray(m, "m", (heads,), 32, 32, heads))
    return NodeCost(heads * per_head, 0, _KNOTS, "mlstm", states)  # the log-sigmoid knots


_COSTS: dict[Op, Callable[[Graph, Node, int, int, Mapping[str, int]], NodeCost]] = {
    Op.EMBED: _cost_embed, Op.RMSNORM: _cost_rmsnorm, Op.LINEAR: _cost_linear, Op.CONV1D_STEP: _cost_conv1d_step,
    Op.SCAN_STEP: _cost_scan_step, Op.MUL: _cost_elementwise, Op.ADD: _cost_elementwise, Op.HADAMARD: _cost_hadamard,
    Op.HEAD_LAYERNORM: _cost_head_layernorm, Op.MLSTM_STEP: _cost_mlstm_step, Op.SSD_STEP: _cost_ssd_step,
    **dict.fromkeys(TABLE_OPS, _cost_table),
}


def node_cost(graph: Graph, node: Node, p: int, lanes: int, bits: Mapping[str, int]) -> NodeCost | None:
    """The cost of ``node`` with a P-MAC engine and L lanes, ``bits`` the storage width of the graph's values; None
    for a SPLIT (it only names slices)."""
    if node.op is Op.SPLIT:
        return None
    cost = _COSTS.get(node.op)
    if cost is None:
        raise UnsupportedOpError(f"the FPGA estimate has no cost model for op {node.op.value!r} (node {node.name})")
    return cost(graph, node, p, lanes, bits)
