"""Analytic estimate of one Mamba decode step on an FPGA: cycles, DRAM traffic, DSP/BRAM/URAM/LUT.

The design being estimated (the HLS project ``edgec build --target fpga`` writes):

* one shared int8 matrix-vector engine of ``P`` MACs per cycle, pipelined at II = 1. Int8 MACs are
  packed two per DSP48E2 (AMD WP486: two int8 products that share one operand fit one 27x18 multiplier),
  so the engine is a tile of 2 output rows x P/2 reduction columns: the two rows share x[k]. All int8
  weights and per-channel constants are streamed from DRAM over AXI for every token;
* per layer: RMSNorm over D, in_proj (2E x D), causal conv1d step (E channels x K taps), x_proj
  ((R + 2N) x E), dt_proj (E x R), the selective-scan step over E x N state elements, the gate
  silu(z) * y, the Hadamard rotation of the gated output (padded to K * 2^m), out_proj (D x padded),
  the residual add; then the final RMSNorm and lm_head (V x D);
* the SSM state (32-bit fixed point) and the conv state (int8) of every layer stay on chip between
  calls; that memory cannot be streamed, so a model whose state does not fit does not fit.

Cycle model (D hidden, E d_inner, N state, R dt rank, K conv taps, V vocab, ``ceil`` rounds up):

* an II = 1 loop of T trips costs ``T + PIPELINE_DEPTH`` cycles (fill/drain once per loop);
* matvec(rows, cols) = ceil(rows / 2) * ceil(cols / (P / 2)) + PIPELINE_DEPTH;
* element-wise units (RMSNorm, conv, gate, residual, embedding row) handle ``L`` elements per cycle,
  the same ``lanes`` as the scan: rmsnorm = 2 * (ceil(D / L) + depth) + NORM_SCALAR_CYCLES (sum of squares,
  then scale; isqrt and one 64-bit division between), conv1d / gate = ceil(E / L) + depth (the K taps
  of a channel and the silu/softplus tables are fused into the same pipeline), residual = ceil(D / L) + depth;
* scan = E * ceil(N / L) + SCAN_DEPTH (L state elements per cycle, the C.h reduction across lanes);
* hadamard, ``W = min(P, padded)`` elements per cycle: m butterfly stages of ceil(padded / W) + depth
  cycles each, then the K x K +-1 stage (padded * K adds) and the requant: ceil(padded * K / W) + depth.

DRAM model: bytes per token = every int8 weight (the embedding as one row; the lm_head in full) + every
per-channel constant at ``CONST_BYTES`` (the kernels read them as int64) + the LUT tables; the bound is
``dram_bytes_per_s * DRAM_EFFICIENCY / bytes_per_token``. Weight streaming overlaps compute (a ping/pong
weight FIFO, as Edge-MoE's buffers), so tokens/s is the smaller of the two bounds and that bound is named active.

Resources are an estimate for planning, not a synthesis report: DSPs are counted exactly for the
engine (P / 2) and per lane for the scan and vector units; BRAM/URAM from the buffers' shapes mapped
onto 36 Kb / 288 Kb blocks; LUTs from per-unit rules of thumb (order of magnitude).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edgec.errors import EdgecError
from edgec.frontends.mamba_spec import MambaSpec
from edgec.numerics.hadamard import HadamardPlan, plan_hadamard
from edgec.targets.fpga.devices import FpgaDevice

__all__ = [
    "CONST_BYTES",
    "DRAM_EFFICIENCY",
    "DSP_BUDGET",
    "MACS_PER_DSP",
    "Estimate",
    "default_lanes",
    "default_parallelism",
    "estimate",
    "format_estimate",
]

#: Sustained fraction of peak DRAM bandwidth for long sequential AXI bursts. Batch-1 decode latency is
#: about bytes moved / (0.6-0.8 x bandwidth) (REFERENCES.md, roofline); 0.7 is the middle of that range.
DRAM_EFFICIENCY = 0.7
#: The default P keeps DSP use at or below this fraction of the device (room for routing and timing).
DSP_BUDGET = 0.8
#: Int8 MACs per DSP48E2: two int8 x int8 products sharing one operand, packed into one 27x18 multiply
#: (AMD WP486, "Deep Learning with INT8 Optimization on Xilinx Devices").
MACS_PER_DSP = 2
#: Bytes of one per-channel constant (requant multiplier, shift, bias, A, LUT entry) as streamed:
#: hls/include/edgec_kernels.h reads every constant as int64.
CONST_BYTES = 8
#: Width of one SSM state element (passes/quantize.py STATE_BITS).
STATE_BITS = 32
#: Fill/drain latency of one II = 1 loop: load, multiply, requant multiply, round-shift, saturate, store.
PIPELINE_DEPTH = 8
#: Latency of the scan pipeline: the degree-5 Q30 exp2 polynomial (5 chained products) and the update.
SCAN_DEPTH = 24
#: RMSNorm's scalar tail: a bit-serial isqrt (32 steps) and one 64-bit division (~68 cycles).
NORM_SCALAR_CYCLES = 100
#: DSP48E2 per scan lane: dt*A (2), exp2 Horner 5 x 32x32 (20), dt*u*B (2), its requant (3),
#: requant(h, decay) 32x31 (4), h*C (2).
SCAN_DSP_PER_LANE = 33
#: DSP48E2 per element-wise lane (one shared unit: a 32x32 product for x^2 / y*g (4), a requant (2),
#: the conv taps (2)).
VECTOR_DSP_PER_LANE = 8
#: DSP48E2 outside the lanes: the scan's per-channel output requants (6), RMSNorm's scale/divide (6).
FIXED_DSP = 12
#: LUT rules of thumb (order of magnitude): AXI masters, DMA and control; per engine MAC (operand
#: packing/correction, adder tree, and the 2 x 32-beat SRL32 weight FIFO of P bytes); per Hadamard
#: element of width W (an adder of ~40 bits); per scan lane; per element-wise lane (requant, LUT tables).
LUT_BASE = 25_000
LUT_PER_MAC = 24
LUT_PER_HADAMARD_ELEMENT = 40
LUT_PER_SCAN_LANE = 1_500
LUT_PER_VECTOR_LANE = 600
#: Block shapes (width bits, depth) in simple dual-port mode: BRAM18, BRAM36, URAM.
_BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
_URAM_SHAPE = (72, 4096)
_LAYER_STAGES = ("rmsnorm", "in_proj", "conv1d", "x_proj", "dt_proj", "scan", "gate", "hadamard", "out_proj",
                 "residual")
_STAGES = ("embed", *_LAYER_STAGES, "norm_f", "lm_head")
_LUT_TABLE_ENTRIES = 256  # a one-input int8 nonlinearity is a 256-entry table


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _loop(trips: int, depth: int = PIPELINE_DEPTH) -> int:
    """Cycles of one pipelined II = 1 loop."""
    return trips + depth


def _matvec(rows: int, cols: int, p: int) -> int:
    """Cycles of the engine (2 rows x P/2 columns per cycle) on a rows x cols int8 matrix."""
    return _cdiv(rows, MACS_PER_DSP) * _cdiv(cols, p // MACS_PER_DSP) + PIPELINE_DEPTH


def _rmsnorm(d: int, lanes: int) -> int:
    return 2 * _loop(_cdiv(d, lanes)) + NORM_SCALAR_CYCLES


def _widest_reduction(spec: MambaSpec, plan: HadamardPlan) -> int:
    return max(spec.hidden_size, spec.intermediate_size, plan.padded_dim, spec.time_step_rank)


def _max_parallelism(spec: MambaSpec, plan: HadamardPlan) -> int:
    """The largest useful P: P/2 columns cover the widest reduction (rounded up to a power of two)."""
    return MACS_PER_DSP * (1 << (_widest_reduction(spec, plan) - 1).bit_length())


def default_lanes(spec: MambaSpec) -> int:
    """Scan / element-wise lanes: one per state element up to 16."""
    return min(spec.state_size, 16)


def _dsp_use(p: int, lanes: int) -> int:
    return p // MACS_PER_DSP + lanes * (SCAN_DSP_PER_LANE + VECTOR_DSP_PER_LANE) + FIXED_DSP


def _lut_use(p: int, lanes: int, hadamard_width: int) -> int:
    return (LUT_BASE + LUT_PER_MAC * p + LUT_PER_HADAMARD_ELEMENT * hadamard_width
            + lanes * (LUT_PER_SCAN_LANE + LUT_PER_VECTOR_LANE))


def default_parallelism(spec: MambaSpec, device: FpgaDevice, lanes: int | None = None) -> int:
    """The largest power of two P >= 2 whose DSP use stays within DSP_BUDGET of the device.

    Capped at the largest P the engine can use on this model (P/2 >= the widest reduction).
    """
    lanes = default_lanes(spec) if lanes is None else lanes
    cap = _max_parallelism(spec, plan_hadamard(spec.intermediate_size))
    p = 2
    while p * 2 <= cap and _dsp_use(p * 2, lanes) <= DSP_BUDGET * device.dsp:
        p *= 2
    return p


def _stage_cycles(spec: MambaSpec, plan: HadamardPlan, p: int, lanes: int) -> dict[str, int]:
    # The K taps of a conv channel are unrolled inside one conv1d pipeline iteration: K adds no cycles.
    d, e, n, r, v = spec.hidden_size, spec.intermediate_size, spec.state_size, spec.time_step_rank, spec.vocab_size
    w = min(p, plan.padded_dim)
    per_layer = {
        "rmsnorm": _rmsnorm(d, lanes),
        "in_proj": _matvec(2 * e, d, p),
        "conv1d": _loop(_cdiv(e, lanes)),
        "x_proj": _matvec(r + 2 * n, e, p),
        "dt_proj": _matvec(e, r, p),
        "scan": _loop(e * _cdiv(n, lanes), SCAN_DEPTH),
        "gate": _loop(_cdiv(e, lanes)),
        "hadamard": plan.m * _loop(_cdiv(plan.padded_dim, w)) + _loop(_cdiv(plan.padded_dim * plan.k, w)),
        "out_proj": _matvec(d, plan.padded_dim, p),
        "residual": _loop(_cdiv(d, lanes)),
    }
    layers = spec.num_hidden_layers
    cycles = {"embed": _loop(_cdiv(d, lanes))}
    cycles |= {name: layers * c for name, c in per_layer.items()}
    cycles |= {"norm_f": _rmsnorm(d, lanes), "lm_head": _matvec(v, d, p)}
    return cycles


def _stage_bytes(spec: MambaSpec, plan: HadamardPlan) -> tuple[dict[str, int], int]:
    """DRAM bytes per token by stage, and the int8-weight part of the total."""
    d, e, n, r, k, v = (spec.hidden_size, spec.intermediate_size, spec.state_size, spec.time_step_rank,
                        spec.conv_kernel, spec.vocab_size)
    cb, lut = CONST_BYTES, _LUT_TABLE_ENTRIES
    w8 = {  # int8 weights
        "embed": d, "in_proj": 2 * e * d, "conv1d": e * k, "x_proj": (r + 2 * n) * e, "dt_proj": e * r,
        "out_proj": d * plan.padded_dim, "lm_head": v * d,
    }
    consts = {  # per-channel constants and tables, in elements
        "embed": 2,  # the token's multiplier and shift
        "in_proj": 2 * e * (2 + spec.use_bias),
        "conv1d": e * (2 + spec.use_conv_bias) + lut,  # + silu(x) table
        "x_proj": (r + 2 * n) * 2,
        "dt_proj": e * 3 + lut,  # bias, multiplier, shift + softplus table
        "scan": e * n + 2 * e,  # A (quantized, per channel and state) + D's multiplier and shift
        "gate": lut,  # silu(z) table
        "hadamard": plan.k * plan.k,  # the K x K +-1 matrix
        "out_proj": d * (2 + spec.use_bias),
        "lm_head": 0,  # raw int32 accumulators go out; the per-row logit scale is applied by the host
    }
    layers = spec.num_hidden_layers
    out: dict[str, int] = {}
    int8_total = 0
    for name in _STAGES:
        times = layers if name in _LAYER_STAGES else 1
        out[name] = times * (w8.get(name, 0) + cb * consts.get(name, 0))
        int8_total += times * w8.get(name, 0)
    return out, int8_total


def _bram36(width_bits: int, depth: int) -> float:
    """BRAM36 equivalents of a width x depth buffer: the cheapest aspect ratio, 18 Kb halves allowed."""
    if width_bits <= 0 or depth <= 0:
        return 0.0
    half = min(_cdiv(width_bits, w) * _cdiv(depth, dd) for w, dd in _BRAM18_SHAPES) / 2
    full = min(_cdiv(width_bits, w) * _cdiv(depth, dd) for w, dd in _BRAM36_SHAPES)
    return min(half, float(full))


def _uram(width_bits: int, depth: int) -> int:
    if width_bits <= 0 or depth <= 0:
        return 0
    return _cdiv(width_bits, _URAM_SHAPE[0]) * _cdiv(depth, _URAM_SHAPE[1])


@dataclass(frozen=True)
class Estimate:
    """The analytic estimate of one decode step; see the module docstring for every formula."""

    device: FpgaDevice
    spec: MambaSpec
    parallelism: int
    lanes: int
    hadamard: HadamardPlan
    stage_cycles: dict[str, int]
    cycles_per_token: int
    compute_tokens_per_s: float
    stage_bytes: dict[str, int]
    bytes_per_token: int
    int8_weight_bytes: int
    const_bytes: int
    dram_efficiency: float
    dram_tokens_per_s: float
    tokens_per_s: float
    bound: str  # "compute" or "dram": the smaller of the two bounds
    balanced_parallelism: int | None  # smallest power-of-two P whose compute bound reaches the DRAM bound
    dsp_used: int
    lut_used: int
    bram_used: float  # BRAM36 equivalents
    uram_used: int
    ssm_state_bytes: int
    conv_state_bytes: int
    buffer_bytes: int  # activation buffers
    ssm_layers_in_uram: int
    fits: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def state_bytes(self) -> int:
        """On-chip recurrent state: SSM + conv state of every layer."""
        return self.ssm_state_bytes + self.conv_state_bytes

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
            "hadamard": {"k": self.hadamard.k, "m": self.hadamard.m, "padded_dim": self.hadamard.padded_dim},
            "stage_cycles": dict(self.stage_cycles),
            "cycles_per_token": self.cycles_per_token,
            "compute_tokens_per_s": self.compute_tokens_per_s,
            "stage_bytes": dict(self.stage_bytes),
            "bytes_per_token": self.bytes_per_token,
            "int8_weight_bytes": self.int8_weight_bytes,
            "const_bytes": self.const_bytes,
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
            "onchip": {
                "ssm_state_bytes": self.ssm_state_bytes,
                "conv_state_bytes": self.conv_state_bytes,
                "buffer_bytes": self.buffer_bytes,
                "ssm_layers_in_uram": self.ssm_layers_in_uram,
                "capacity_bytes": dev.bram_bytes + dev.uram_bytes,
            },
            "fits": self.fits,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "assumptions": {
                "macs_per_dsp": MACS_PER_DSP, "dsp_budget": DSP_BUDGET, "const_bytes": CONST_BYTES,
                "state_bits": STATE_BITS, "pipeline_depth": PIPELINE_DEPTH, "scan_depth": SCAN_DEPTH,
                "norm_scalar_cycles": NORM_SCALAR_CYCLES,
            },
        }


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f} MB"


def estimate(spec: MambaSpec, device: FpgaDevice, parallelism: int | None = None,
             lanes: int | None = None) -> Estimate:
    """Estimate one decode step of ``spec`` on ``device`` with a P-MAC engine and L scan lanes.

    ``parallelism`` defaults to :func:`default_parallelism`; ``lanes`` to ``min(state_size, 16)``.
    """
    lanes = default_lanes(spec) if lanes is None else int(lanes)
    if lanes < 1:
        raise EdgecError(f"FPGA lanes must be >= 1, got {lanes}")
    p = default_parallelism(spec, device, lanes) if parallelism is None else int(parallelism)
    if p < MACS_PER_DSP or p % MACS_PER_DSP:
        raise EdgecError(f"FPGA parallelism must be an even number >= {MACS_PER_DSP} (2 int8 MACs per DSP), got {p}")
    plan = plan_hadamard(spec.intermediate_size)
    d, e, n, r, k, layers = (spec.hidden_size, spec.intermediate_size, spec.state_size, spec.time_step_rank,
                             spec.conv_kernel, spec.num_hidden_layers)

    # -- time ------------------------------------------------------------------------------------
    stage_cycles = _stage_cycles(spec, plan, p, lanes)
    cycles = sum(stage_cycles.values())
    compute_tps = device.clock_hz / cycles
    stage_bytes, int8_bytes = _stage_bytes(spec, plan)
    nbytes = sum(stage_bytes.values())
    dram_tps = device.dram_bytes_per_s * DRAM_EFFICIENCY / nbytes
    bound = "compute" if compute_tps <= dram_tps else "dram"
    balanced = None
    q = 2
    while q <= _max_parallelism(spec, plan):
        if device.clock_hz / sum(_stage_cycles(spec, plan, q, lanes).values()) >= dram_tps:
            balanced = q
            break
        q *= 2

    # -- on-chip memory --------------------------------------------------------------------------
    # SSM state: L lanes of 32 bits per word (array_reshape), E * ceil(N / L) words per layer. It goes
    # to URAM first, layer by layer; the remaining layers go to BRAM. Conv state: L channels x (K - 1)
    # int8 taps per word, ceil(E / L) words per layer; URAM if what is left there holds it, else BRAM.
    ssm_width, ssm_depth = lanes * STATE_BITS, e * _cdiv(n, lanes)
    conv_width, conv_depth = lanes * (k - 1) * 8, _cdiv(e, lanes)
    ssm_bytes = layers * e * n * STATE_BITS // 8
    conv_bytes = layers * e * (k - 1)
    in_uram = 0
    while in_uram < layers and _uram(ssm_width, (in_uram + 1) * ssm_depth) <= device.uram:
        in_uram += 1
    uram_used = _uram(ssm_width, in_uram * ssm_depth)
    bram_used = _bram36(ssm_width, (layers - in_uram) * ssm_depth)
    conv_uram = _uram(conv_width, layers * conv_depth)
    if k > 1 and uram_used + conv_uram <= device.uram:
        uram_used += conv_uram
    else:
        bram_used += _bram36(conv_width, layers * conv_depth)
    # Activation buffers, banked L-wide, (elements, bits): residual (32-bit), normed x, xz, u, x_proj
    # output (int8), dt and the scan output y (16-bit, passes/quantize.py WIDE_BITS). The Hadamard
    # working vector (W wide) sits in registers, the weight FIFO in SRL32 LUTs, the nonlinearity
    # tables in LUTRAM: none of them takes BRAM.
    buffers = ((d, 32), (d, 8), (2 * e, 8), (e, 8), (r + 2 * n, 8), (e, 16), (e, 16))
    buffer_bytes = sum(cnt * bits // 8 for cnt, bits in buffers)
    bram_used += sum(_bram36(lanes * bits, _cdiv(cnt, lanes)) for cnt, bits in buffers)

    # -- compute resources -----------------------------------------------------------------------
    w = min(p, plan.padded_dim)
    dsp = _dsp_use(p, lanes)
    lut = _lut_use(p, lanes, w)

    reasons: list[str] = []
    notes: list[str] = []
    state = ssm_bytes + conv_bytes
    capacity = device.bram_bytes + device.uram_bytes
    if state > capacity:
        reasons.append(
            f"on-chip state needs {_mb(state)} (SSM state {layers} layers x {e} x {n} x 4 B = {_mb(ssm_bytes)}, "
            f"conv state {_mb(conv_bytes)}) but {device.name} has {_mb(capacity)} of BRAM+URAM; the recurrent "
            "state must stay on chip between tokens (DRAM streaming covers weights only)"
        )
    elif bram_used > device.bram_36k or uram_used > device.uram:
        reasons.append(
            f"on-chip state and buffers need {bram_used:g} BRAM36 + {uram_used} URAM (state {_mb(state)}, "
            f"{lanes} lanes wide) but {device.name} has {device.bram_36k} BRAM36 + {device.uram} URAM; "
            "fewer lanes pack the state more tightly"
        )
    if dsp > device.dsp:
        reasons.append(f"{dsp} DSP48E2 needed (P = {p}: {p // MACS_PER_DSP} for the engine) but {device.name} "
                       f"has {device.dsp}; lower the parallelism")
    if lut > device.lut:
        reasons.append(f"about {lut} LUTs needed but {device.name} has {device.lut}; lower the parallelism")
    if not reasons:
        for label, used, avail in (("DSP", dsp, device.dsp), ("BRAM36", bram_used, device.bram_36k),
                                   ("URAM", uram_used, device.uram), ("LUT", lut, device.lut)):
            if avail and used > DSP_BUDGET * avail:
                notes.append(f"{label} use {used:g} is {used / avail:.0%} of {avail}: timing closure may be hard")
    if bound == "dram" and balanced is not None and balanced < p:
        notes.append(f"DRAM-bound: P = {balanced} already reaches the bandwidth bound; a larger P buys nothing")
    if plan.pad:
        notes.append(f"d_inner {e} is zero-padded to {plan.padded_dim} = {plan.k} * 2^{plan.m} for the Hadamard")

    return Estimate(
        device=device, spec=spec, parallelism=p, lanes=lanes, hadamard=plan,
        stage_cycles=stage_cycles, cycles_per_token=cycles, compute_tokens_per_s=compute_tps,
        stage_bytes=stage_bytes, bytes_per_token=nbytes, int8_weight_bytes=int8_bytes,
        const_bytes=nbytes - int8_bytes, dram_efficiency=DRAM_EFFICIENCY, dram_tokens_per_s=dram_tps,
        tokens_per_s=min(compute_tps, dram_tps), bound=bound, balanced_parallelism=balanced,
        dsp_used=dsp, lut_used=lut, bram_used=bram_used, uram_used=uram_used,
        ssm_state_bytes=ssm_bytes, conv_state_bytes=conv_bytes, buffer_bytes=buffer_bytes,
        ssm_layers_in_uram=in_uram, fits=not reasons, reasons=tuple(reasons), notes=tuple(notes),
    )


def format_estimate(e: Estimate) -> str:
    """A short text table: cycles by stage, the two bounds, resources against capacity, fit."""
    dev, s = e.device, e.spec
    lines = [
        f"FPGA estimate: {dev.name} ({dev.part}) at {dev.clock_mhz:g} MHz; P = {e.parallelism} int8 MACs/cycle, "
        f"L = {e.lanes} lanes; {s.num_hidden_layers} layers, D {s.hidden_size}, E {s.intermediate_size}, "
        f"N {s.state_size}, V {s.vocab_size}",
        f"{'stage':<10} {'cycles/token':>13} {'share':>6} {'DRAM bytes':>12}",
    ]
    for name, c in e.stage_cycles.items():
        lines.append(f"{name:<10} {c:>13,} {c / e.cycles_per_token:>6.1%} {e.stage_bytes.get(name, 0):>12,}")
    lines.append(f"{'total':<10} {e.cycles_per_token:>13,} {1:>6.0%} {e.bytes_per_token:>12,}")
    lines += [
        f"compute bound: {e.compute_tokens_per_s:,.1f} tok/s ({e.cycles_per_token:,} cycles at {dev.clock_mhz:g} MHz)",
        f"DRAM bound:    {e.dram_tokens_per_s:,.1f} tok/s ({_mb(e.bytes_per_token)}/token at "
        f"{e.dram_efficiency:g} x {dev.dram_gbps:g} GB/s)",
        f"active bound:  {e.bound} -> {e.tokens_per_s:,.1f} tok/s ({e.latency_ms:.3f} ms/token)",
        f"{'resource':<10} {'used':>10} {'available':>10} {'use':>6}",
    ]
    util = e.utilization()
    for label, key, used, avail in (("DSP48E2", "dsp", e.dsp_used, dev.dsp),
                                    ("BRAM36", "bram_36k", e.bram_used, dev.bram_36k),
                                    ("URAM", "uram", e.uram_used, dev.uram),
                                    ("LUT (~)", "lut", e.lut_used, dev.lut)):
        lines.append(f"{label:<10} {used:>10,g} {avail:>10,} {util[key]:>6.0%}")
    lines.append(f"on-chip state: {_mb(e.state_bytes)} (SSM {_mb(e.ssm_state_bytes)}, conv {_mb(e.conv_state_bytes)})")
    lines.append("fits: yes" if e.fits else f"fits: NO: {e.reason}")
    lines += [f"note: {n}" for n in e.notes]
    lines.append("note: an analytic model (trip counts x II, weights read at full AXI burst width, activation "
                 "buffers at their declared widths); not a synthesis report")
    return "\n".join(lines)
