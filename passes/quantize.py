"""Choose every scale and quantize every weight: the model becomes a QuantizedModel.

- Weights: symmetric int8 in [-127, 127], one scale per output channel (or one per tensor when
  ``per_channel`` is off). Kept in float: biases, A_log and D (they become fixed-point constants
  in the int profile, derived deterministically from these floats and the scales).
- Activations: static, per tensor, scale = absmax / 127, with one scale per output segment of
  in_proj (x | z) and x_proj (dt | B | C); the SSM input u uses the alpha-quantile of |u|.
- Wider intermediates of the int profile get their own fixed formats: the residual stream
  (24-bit, one scale per layer boundary), softplus output dt (24-bit LUT output), silu gate g
  (16-bit LUT output), scan output y (16-bit) and
  the SSM state (32-bit, at least 24 bits of it below the calibrated maximum).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgec.errors import DataError
from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.model import Model
from edgec.ir import Graph, Op
from edgec.passes.calibrate import CalibrationStats
from edgec.runtime.float_ref import silu, softplus

__all__ = ["QuantOptions", "QuantizedModel", "quantize_model"]

RESIDUAL_BITS = 24  # the residual stream saturates at 2^23; its calibrated max sits at 2^21
STATE_BITS = 32  # SSM state; its calibrated max sits at 2^30
WIDE_BITS = 16  # scan output y and gate g
DT_BITS = 24  # softplus output dt: small dt (long memory) keeps >= 10 significant bits


@dataclass(frozen=True)
class QuantOptions:
    """Switches of the quantization recipe; each can be turned off to measure its effect."""

    hadamard: bool = True
    percentile: bool = True
    per_channel: bool = True
    alpha: float = 0.99999


@dataclass
class QuantizedModel:
    """Everything a simulator or emitter needs; saved to and loaded from a QDIR."""

    spec: MambaSpec
    graphs: dict[str, Graph]
    qweights: dict[str, np.ndarray]  # int8 weights by weight name
    wscales: dict[str, np.ndarray]  # float32 scale per output channel of each int8 weight
    fparams: dict[str, np.ndarray]  # float32 parameters kept in float (biases, A_log, D)
    scales: dict[str, float]  # activation scale by value name
    state_scales: dict[str, float]  # SSM state scale by scan node name
    bits: dict[str, int]  # storage width of each quantized value in the int profile
    options: QuantOptions = field(default_factory=QuantOptions)
    notes: list[str] = field(default_factory=list)
    calibration: dict[str, float | int] = field(default_factory=dict)
    source: str = ""
    int_constants: dict[str, np.ndarray] = field(default_factory=dict)  # lowered int profile, by node/key


def _quantize_weight(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    amax = np.abs(flat).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(flat).max())
    # An all-zero row takes a typical scale (its codes are 0 whatever it is), so that every
    # multiplier derived from it stays in the range of the others.
    typical = float(np.median(amax[amax > 0])) if np.any(amax > 0) else 127.0
    scale = (np.where(amax > 0, amax, typical) / 127.0).astype(np.float32)
    q = np.clip(np.rint(flat / scale[:, None].astype(np.float64)), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scale


def _int8_scale(amax: float, what: str) -> float:
    if not np.isfinite(amax):
        raise DataError(f"calibration range of %{what} is not finite")
    return float(np.float32(max(amax, 1e-8) / 127.0))


def quantize_model(model: Model, stats: CalibrationStats, options: QuantOptions,
                   notes: list[str] | None = None) -> QuantizedModel:
    """Quantize a (folded, optionally rotated) float model with calibration ``stats``."""
    prefill = model.graphs["prefill"]
    absmax = {k: float(v.max()) for k, v in stats.absmax.items()}
    scales: dict[str, float] = {}
    state_scales: dict[str, float] = {}
    qweights: dict[str, np.ndarray] = {}
    wscales: dict[str, np.ndarray] = {}
    fparams: dict[str, np.ndarray] = {}

    # The residual stream: one scale per layer boundary (it grows with depth, often by orders of
    # magnitude), calibrated maximum at 2^21 of 2^23. out_proj writes straight into the scale of the
    # sum it feeds; the skip input is rescaled by the ADD.
    residual: list[str] = []
    for node in prefill.nodes:
        if node.op is Op.EMBED:  # the whole table counts: rows unseen in calibration must fit too
            amax = max(absmax[node.outputs[0]], float(np.abs(model.weights[node.weights["weight"]]).max()))
        elif node.op is Op.ADD:
            amax = max(absmax[node.outputs[0]], absmax[node.inputs[1]])
        else:
            continue
        scale = float(np.float32(max(amax, 1e-8) / 2 ** (RESIDUAL_BITS - 3)))
        for v in node.outputs if node.op is Op.EMBED else (node.outputs[0], node.inputs[1]):
            scales[v] = scale
            residual.append(v)

    def feeds(value: str, op: Op) -> bool:
        return any(u.op is op for u in prefill.users(value))

    def made_by_conv(value: str) -> bool:
        producer = prefill.producer(value)
        return producer is not None and producer.op is Op.CONV1D_CAUSAL

    for node in prefill.nodes:
        out = node.outputs[0]
        if node.op in (Op.RMSNORM, Op.CONV1D_CAUSAL, Op.HADAMARD):
            scales[out] = _int8_scale(absmax[out], out)
        elif node.op is Op.SPLIT:
            for o in node.outputs:
                scales[o] = _int8_scale(absmax[o], o)
        elif node.op is Op.LINEAR and feeds(out, Op.SOFTPLUS):  # dt_proj: int8 index of the softplus LUT
            scales[out] = _int8_scale(absmax[out], out)
        elif node.op is Op.SILU and made_by_conv(node.inputs[0]):  # the SSM input u
            amax = stats.quantile[out] if options.percentile and out in stats.quantile else absmax[out]
            scales[out] = _int8_scale(amax, out)
        elif node.op is Op.SOFTPLUS:
            top = float(softplus(np.float64(127 * scales[node.inputs[0]])))
            scales[out] = float(np.float32(top / (2 ** (DT_BITS - 1) - 1)))
        elif node.op is Op.SILU:  # the gate silu(z): a 16-bit LUT output
            zs = np.arange(-128, 128) * np.float64(scales[node.inputs[0]])
            scales[out] = float(np.float32(np.abs(silu(zs)).max() / (2 ** (WIDE_BITS - 1) - 1)))
        elif node.op is Op.SELECTIVE_SCAN:
            scales[out] = float(np.float32(2 * max(absmax[out], 1e-8) / (2 ** (WIDE_BITS - 1) - 1)))
            state_max = max(stats.state_absmax[node.name], 1e-8)
            state_scales[node.name] = float(np.float32(2 * state_max / 2 ** (STATE_BITS - 2)))
            for role in ("A_log", "D"):
                fparams[node.weights[role]] = model.weights[node.weights[role]]
        elif node.op is Op.MUL and not feeds(out, Op.HADAMARD):
            scales[out] = _int8_scale(absmax[out], out)  # no rotation: out_proj reads y*g directly
        if node.op in (Op.EMBED, Op.LINEAR, Op.CONV1D_CAUSAL):
            name = node.weights["weight"]
            if name not in qweights:
                per_channel = options.per_channel or node.op is Op.EMBED
                qweights[name], wscales[name] = _quantize_weight(model.weights[name], per_channel)
            if "bias" in node.weights:
                fparams[node.weights["bias"]] = model.weights[node.weights["bias"]]
    wide = {n.outputs[0] for n in prefill.nodes
            if n.op is Op.SELECTIVE_SCAN or (n.op is Op.SILU and not made_by_conv(n.inputs[0]))}
    dts = {n.outputs[0] for n in prefill.nodes if n.op is Op.SOFTPLUS}
    bits = {v: RESIDUAL_BITS if v in residual else WIDE_BITS if v in wide else DT_BITS if v in dts else 8
            for v in scales}
    bits |= {n.inputs[0]: 8 for n in prefill.nodes if n.op is Op.SPLIT}  # segmented int8 outputs
    bits["logits"] = 0  # lm_head keeps its int32 accumulators; the runtime scales them per vocab row
    return QuantizedModel(
        spec=model.spec, graphs=model.graphs, qweights=qweights, wscales=wscales, fparams=fparams,
        scales=scales, state_scales=state_scales, bits=bits, options=options, notes=list(notes or []),
        calibration={"alpha": stats.alpha, "batches": stats.batches, "tokens": stats.tokens},
        source=model.source)
