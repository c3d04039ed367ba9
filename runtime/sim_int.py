"""The bit-accurate simulator of the ``int`` profile: integers only, from input token to logits.

Every value is an int64 NumPy array of codes; its real value is code * scale, with the scale fixed
at compile time (QuantizedModel.scales). All arithmetic goes through edgec.numerics, which the HLS
kernels mirror. The only float in this module builds compile-time constants (multipliers, LUTs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from edgec.ir import Node, Op
from edgec.numerics.fixed import (
    LOG2E,
    bit_length,
    exp2_fixed,
    quantize_multiplier,
    requant,
    rshift_round,
    saturate,
)
from edgec.numerics.hadamard import hadamard_transform_int
from edgec.numerics.layernorm import LayerNormConstants
from edgec.numerics.lut import build_interp_lut, build_lut, interp_lookup, lookup
from edgec.passes.quantize import QuantizedModel, merged_graph
from edgec.runtime.base import Interpreter
from edgec.runtime.float_ref import sigmoid, silu, softplus
from edgec.runtime.int_ops import INV_BITS, Float32Weights, int_matmul, rmsnorm_int, signed_multiplier
from edgec.runtime.mlstm_int import KNOT_BITS, MlstmConstants, mlstm_step_int
from edgec.runtime.ssd_int import SsdConstants, ssd_step_int
from edgec.runtime.vit_int import VitIntOps

__all__ = ["IntSimulator", "MlstmConstants", "ScanConstants", "SsdConstants", "export_constants", "import_constants",
           "norm_bits"]

T = TypeVar("T")
DECAY_BITS = 30  # exp(dt * A) in Q30
A_BITS = 20  # |A * log2(e) * s_dt| is held as an integer of at most 20 bits
NORM_BITS = 24  # per-head norm, grouped norm of a wide product: values brought below 2^24 per head / group


def norm_bits(width: int) -> int:
    """The block-floating-point width of a norm over ``width`` values: NORM_BITS, fewer for a group so wide that
    the sum of squares would pass 2^60."""
    return min(NORM_BITS, (60 - (width - 1).bit_length()) // 2)


@dataclass(frozen=True)
class ScanConstants:
    """Integer constants of one selective-scan node (derived from scales and float A, D)."""

    a_frac: int  # t = dt_q * a_q / 2^a_frac is dt * A * log2(e)
    a_q: np.ndarray  # [E, N], at most A_BITS bits
    bu_m: np.ndarray
    bu_shift: np.ndarray
    y_m: np.ndarray
    y_shift: np.ndarray
    d_m: np.ndarray  # [E], signed: D may be negative
    d_shift: np.ndarray
    y_bits: int

    @classmethod
    def build(cls, qm: QuantizedModel, node: Node) -> ScanConstants:
        u, dt, b, c = node.inputs[:4]
        s = qm.scales
        s_h = qm.state_scales[node.name]
        s_y = s[node.outputs[0]]
        a = -np.exp(qm.fparams[node.weights["A_log"]].astype(np.float64)) * LOG2E * s[dt]  # per dt code
        amax = float(np.abs(a).max())
        # exp2_fixed takes at most 62 fractional bits; a smaller |A| (no decay to speak of) keeps fewer bits
        a_frac = min(62, max(0, A_BITS - 1 - math.floor(math.log2(amax)))) if amax > 0 else 0
        return cls(a_frac, np.rint(np.ldexp(a, a_frac)).astype(np.int64),
                   *quantize_multiplier(s[dt] * s[u] * s[b] / s_h),
                   *quantize_multiplier(s[c] * s_h / s_y),
                   *signed_multiplier(qm.fparams[node.weights["D"]].astype(np.float64) * s[u] / s_y),
                   qm.bits[node.outputs[0]])


def _rmsnorm_multiplier(node: Node, s_out: float, in_bits: int) -> tuple[int, int]:
    """The output requant of an integer RMSNorm; its total shift (shift + rms bits + INV_BITS) must stay <= 62."""
    m, shift = quantize_multiplier(1.0 / s_out)
    if int(shift) + in_bits + INV_BITS > 62:
        raise ValueError(f"{node.name}: output scale {s_out:.3g} is too large for the 62-bit requant of the "
                         "integer RMSNorm (its input is not normalized as expected)")
    return m, shift


def _head_norm_multiplier(qm: QuantizedModel, node: Node, heads: int, in_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel output requant of an integer per-head norm: gain / s_out, as [heads, d] arrays."""
    s_out = qm.scales[node.outputs[0]]
    width = qm.graphs["prefill"].values[node.outputs[0]].shape[-1]
    gain = qm.fparams[node.weights["weight"]].astype(np.float64) if "weight" in node.weights else np.ones(width)
    m, shift = signed_multiplier(gain / s_out)
    if int(shift.max()) + in_bits + INV_BITS > 62:
        raise ValueError(f"{node.name}: output scale {s_out:.3g} is too large for the 62-bit requant of the "
                         "integer per-head norm")
    return m.reshape(heads, -1), shift.reshape(heads, -1)


def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """[..., H*d] -> [..., H, d]."""
    return x.reshape(*x.shape[:-1], heads, -1)


class IntSimulator(VitIntOps, Interpreter):
    """Executes a QuantizedModel's graphs with the integer semantics of the FPGA target."""

    def __init__(self, qm: QuantizedModel, weight_cache: int = 1 << 30) -> None:
        """``weight_cache``: bytes of float32 weight copies to keep (Float32Weights); 0 for a single pass."""
        self.qm = qm
        self._const: dict[tuple[str, str], Any] = import_constants(qm.int_constants)
        self._f32 = Float32Weights(weight_cache)

    @property
    def f32(self) -> Float32Weights:
        """float32 copies of the int8 weights within ``weight_cache`` bytes (made here on first use when a kernel test
        builds the handlers without __init__)."""
        if "_f32" not in self.__dict__:
            self._f32 = Float32Weights()
        return self._f32

    def export_constants(self) -> dict[str, np.ndarray]:
        """Every constant derived so far, flattened to ``node/key[/field]`` int64 arrays."""
        return export_constants(self._const)

    # ---- compile-time constants -------------------------------------------------------------
    def const(self, node: Node, key: str, make: Callable[[], T]) -> T:
        """A compile-time constant of ``node``, computed once (the HLS emitter reads the same values)."""
        k = (node.name, key)
        if k not in self._const:
            self._const[k] = make()
        return self._const[k]

    @cached_property
    def _channel_scales(self) -> dict[str, np.ndarray]:
        """Per-channel output scale of each LINEAR output, built from its split segments."""
        out: dict[str, np.ndarray] = {}
        for node in merged_graph(self.qm.graphs).nodes:
            if node.op is Op.SPLIT:
                parts = [np.full(n, self.qm.scales[o]) for o, n in zip(node.outputs, node.attrs["sizes"],
                                                                     strict=True)]
                out[node.inputs[0]] = np.concatenate(parts)
        return out

    def out_scale(self, value: str) -> np.ndarray | float:
        return self._channel_scales.get(value, self.qm.scales.get(value, 1.0))

    def _acc_scale(self, node: Node) -> np.ndarray:
        return self.qm.scales[node.inputs[0]] * self.qm.wscales[node.weights["weight"]].astype(np.float64)

    def _bias_q(self, node: Node) -> np.ndarray | int:
        name = node.weights.get("bias")
        if name is None:
            return 0
        bias = np.rint(self.qm.fparams[name].astype(np.float64) / self._acc_scale(node))
        if np.abs(bias).max() >= 2**31:
            raise ValueError(f"bias of {node.name} does not fit int32 at its accumulator scale")
        return bias.astype(np.int64)

    def _requant_to_output(self, node: Node, acc: np.ndarray) -> np.ndarray:
        out = node.outputs[0]
        bits = self.qm.bits.get(out, 0)
        if not bits:  # natural accumulator (logits): no requantization
            return acc
        m, shift = self.const(node, "out", lambda: quantize_multiplier(self._acc_scale(node) / self.out_scale(out)))
        return requant(acc, m, shift, bits)

    # ---- handlers ---------------------------------------------------------------------------
    def op_embed(self, node: Node, tokens: np.ndarray) -> np.ndarray:
        name = node.weights["weight"]
        m, shift = self.const(node, "rows", lambda: quantize_multiplier(
            self.qm.wscales[name].astype(np.float64) / self.qm.scales[node.outputs[0]]))
        rows = self.qm.qweights[name][tokens].astype(np.int64)
        return requant(rows, m[tokens][..., None], shift[tokens][..., None], self.qm.bits[node.outputs[0]])

    @cached_property
    def _producers(self) -> dict[str, Node]:
        return {o: n for g in self.qm.graphs.values() for n in g.nodes for o in n.outputs}

    def in_scale(self, value: str) -> float:
        """The real value of one code of ``value``: its scale, or for a wide product (a MUL given no format, read
        by a Hadamard rotation or a norm) the product of its inputs' scales."""
        if value in self.qm.scales:
            return self.qm.scales[value]
        mul = self._producers[value]
        return self.qm.scales[mul.inputs[0]] * self.qm.scales[mul.inputs[1]]

    def op_rmsnorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        """Integer RMSNorm of each of ``groups`` equal slices of the last axis (the gain is folded downstream).

        Codes of a stored format (the residual stream) are normalized as they are; a wide product (Mamba-2's
        gated y * silu(z), up to 32 bits) is first brought below 2^norm_bits per group by a right shift per
        group (the norm is scale-free: this block floating point loses nothing but low bits), eps shifted alike.
        """
        src, out = node.inputs[0], node.outputs[0]
        s_in, s_out, bits = self.in_scale(src), self.qm.scales[out], self.qm.bits[out]
        groups = node.attrs.get("groups", 1)
        xg = x if groups == 1 else x.reshape(*x.shape[:-1], groups, -1)
        if src in self.qm.bits:
            m, shift = self.const(node, "inv", lambda: _rmsnorm_multiplier(node, s_out, self.qm.bits[src]))
            eps_q = self.const(node, "eps", lambda: min(round(node.attrs["eps"] / s_in**2), 1 << 40))
            return rmsnorm_int(xg, eps_q, m, shift, bits).reshape(x.shape)
        width = norm_bits(xg.shape[-1])
        block = np.maximum(bit_length(np.abs(xg).max(axis=-1, keepdims=True)) - width, 0)
        m, shift = self.const(node, "inv", lambda: _rmsnorm_multiplier(node, s_out, width))
        eps_q = self.const(node, "eps", lambda: min(round(node.attrs["eps"] / s_in**2), 1 << 60))
        y = rmsnorm_int(rshift_round(xg, block), rshift_round(eps_q, np.minimum(2 * block, 62)), m, shift, bits)
        return y.reshape(x.shape)

    def op_linear(self, node: Node, x: np.ndarray) -> np.ndarray:
        name = node.weights["weight"]
        acc = int_matmul(x, self.qm.qweights[name], self.f32.get(name, self.qm.qweights[name])) + self.const(
            node, "bias", lambda: self._bias_q(node))
        return self._requant_to_output(node, acc)

    def op_split(self, node: Node, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.split(x, np.cumsum(node.attrs["sizes"])[:-1], axis=-1))

    def _conv_taps(self, node: Node) -> np.ndarray:
        return self.qm.qweights[node.weights["weight"]][:, 0, :].astype(np.int64)  # [E, K]

    def op_conv1d_causal(self, node: Node, x: np.ndarray) -> np.ndarray:
        w = self._conv_taps(node)
        k, length = w.shape[1], x.shape[-2]
        padded = np.concatenate([np.zeros((*x.shape[:-2], k - 1, x.shape[-1]), np.int64), x], axis=-2)
        acc = sum(padded[..., j:j + length, :] * w[:, j] for j in range(k))
        return self._requant_to_output(node, acc + self.const(node, "bias", lambda: self._bias_q(node)))

    def op_conv1d_step(self, node: Node, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        window = np.concatenate([state, x[..., None]], axis=-1)
        acc = np.einsum("bek,ek->be", window, self._conv_taps(node))
        acc = acc + self.const(node, "bias", lambda: self._bias_q(node))
        return self._requant_to_output(node, acc), window[..., 1:]

    def _lut(self, node: Node, fn) -> np.ndarray:
        out = node.outputs[0]
        return self.const(node, "lut", lambda: build_lut(fn, self.qm.scales[node.inputs[0]], self.qm.scales[out],
                                                         self.qm.bits[out]))

    def op_silu(self, node: Node, x: np.ndarray) -> np.ndarray:
        return lookup(self._lut(node, silu), x)

    def op_sigmoid(self, node: Node, x: np.ndarray) -> np.ndarray:
        return lookup(self._lut(node, sigmoid), x)

    def op_softcap(self, node: Node, x: np.ndarray) -> np.ndarray:
        """cap * tanh(x / cap) of a wide input through an interpolated table."""
        src, out, cap = node.inputs[0], node.outputs[0], float(node.attrs["cap"])
        knots = self.const(node, "knots", lambda: build_interp_lut(
            lambda t: cap * np.tanh(t / cap), self.qm.scales[src], self.qm.bits[src], self.qm.scales[out],
            self.qm.bits[out], KNOT_BITS))
        return interp_lookup(knots, x, self.qm.bits[src])

    def op_head_layernorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        """LayerNorm of each head in integers: c = d * x - sum(x) (exact), brought below 2^NORM_BITS by a
        per-head right shift (the norm is scale-free, so this block floating point loses nothing but
        low bits), then the integer RMSNorm of c with eps shifted alike."""
        heads = node.attrs["heads"]
        xh = x.reshape(*x.shape[:-1], heads, -1)
        d = xh.shape[-1]
        c = xh * d - xh.sum(axis=-1, keepdims=True)
        block = np.maximum(bit_length(np.abs(c).max(axis=-1, keepdims=True)) - NORM_BITS, 0)
        c = rshift_round(c, block)
        m, shift = self.const(node, "inv", lambda: _head_norm_multiplier(self.qm, node, heads, NORM_BITS))
        eps_q = self.const(node, "eps", lambda: min(round(node.attrs["eps"] * d * d / self.qm.scales[node.inputs[0]]
                                                          ** 2), 1 << 60))
        y = rmsnorm_int(c, rshift_round(eps_q, np.minimum(2 * block, 62)), m, shift, self.qm.bits[node.outputs[0]])
        return y.reshape(x.shape)

    def _cell(self, node: Node) -> MlstmConstants:
        return self.const(node, "cell", lambda: MlstmConstants.build(self.qm, node))

    def op_mlstm_step(self, node: Node, q, k, v, i, f, c, n, m) -> tuple[np.ndarray, ...]:
        heads = node.attrs["heads"]
        h, c, n, m = mlstm_step_int(self._cell(node), *(_heads(x, heads) for x in (q, k, v)), i, f, c, n, m)
        return h.reshape(*h.shape[:-2], -1), c, n, m

    def op_mlstm_sequence(self, node: Node, q, k, v, i, f) -> np.ndarray:
        """Token by token with the step's arithmetic, so that prefill equals decoding bit for bit."""
        heads, kc = node.attrs["heads"], self._cell(node)
        q, k, v = (_heads(x, heads) for x in (q, k, v))
        lead = q.shape[:-3]
        c = np.zeros((*lead, heads, q.shape[-1], v.shape[-1]), np.int64)
        n = np.zeros((*lead, heads, q.shape[-1]), np.int64)
        m = np.zeros((*lead, heads), np.int64)
        out = np.empty(v.shape, np.int64)
        for t in range(q.shape[-3]):
            out[..., t, :, :], c, n, m = mlstm_step_int(kc, q[..., t, :, :], k[..., t, :, :], v[..., t, :, :],
                                                        i[..., t, :], f[..., t, :], c, n, m)
        return out.reshape(*out.shape[:-2], -1)

    def op_softplus(self, node: Node, x: np.ndarray) -> np.ndarray:
        return lookup(self._lut(node, softplus), x)

    def op_mul(self, node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        prod = a * b
        out = node.outputs[0]
        if out not in self.qm.scales:  # wide product, consumed by the Hadamard rotation
            return prod
        m, shift = self.const(node, "out", lambda: quantize_multiplier(
            self.qm.scales[node.inputs[0]] * self.qm.scales[node.inputs[1]] / self.qm.scales[out]))
        return requant(prod, m, shift, self.qm.bits[out])

    def op_hadamard(self, node: Node, x: np.ndarray) -> np.ndarray:
        """The exact unnormalized rotation of a wide value (a gated product, a 16-bit norm output), then int8."""
        plan = node.attrs["plan"]
        s_in = self.in_scale(node.inputs[0])
        m, shift = self.const(node, "out", lambda: quantize_multiplier(
            s_in / math.sqrt(plan.padded_dim) / self.qm.scales[node.outputs[0]]))
        return requant(hadamard_transform_int(x, plan), m, shift, 8)

    def op_add(self, node: Node, skip: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Residual add: ``b`` is already at the output scale; the skip input is rescaled to it."""
        out = node.outputs[0]
        m, shift = self.const(node, "skip", lambda: quantize_multiplier(
            self.qm.scales[node.inputs[0]] / self.qm.scales[out]))
        return saturate(requant(skip, m, shift, 32) + b, self.qm.bits[out])

    def _scan_update(self, k: ScanConstants, u, dt, b, c, h) -> tuple[np.ndarray, np.ndarray]:
        """One time step for all channels: returns (y codes, new state codes)."""
        decay = exp2_fixed(dt[..., None] * k.a_q, k.a_frac)  # Q30, [B, E, N]
        bu = requant((dt * u)[..., None] * b[..., None, :], k.bu_m, k.bu_shift, 32)
        h = saturate(requant(h, decay, DECAY_BITS, 32) + bu, 32)  # decay is a per-element Q30 multiplier
        y = requant(np.einsum("ben,bn->be", h, c), k.y_m, k.y_shift, 32) + requant(u, k.d_m, k.d_shift, 32)
        return saturate(y, k.y_bits), h

    def op_scan_step(self, node, u, dt, b, c, h) -> tuple[np.ndarray, np.ndarray]:
        return self._scan_update(self.const(node, "scan", lambda: ScanConstants.build(self.qm, node)), u, dt, b, c, h)

    def op_selective_scan(self, node, u, dt, b, c) -> np.ndarray:
        k = self.const(node, "scan", lambda: ScanConstants.build(self.qm, node))
        h = np.zeros((*u.shape[:-2], u.shape[-1], k.a_q.shape[-1]), np.int64)
        ys = np.empty_like(u)
        for t in range(u.shape[-2]):
            ys[..., t, :], h = self._scan_update(k, u[..., t, :], dt[..., t, :], b[..., t, :], c[..., t, :], h)
        return ys

    def _ssd(self, node: Node) -> SsdConstants:
        return self.const(node, "ssd", lambda: SsdConstants.build(self.qm, node))

    def op_ssd_step(self, node: Node, x, dt, b, c, h) -> tuple[np.ndarray, np.ndarray]:
        heads, groups = node.attrs["heads"], node.attrs["groups"]
        y, h = ssd_step_int(self._ssd(node), _heads(x, heads), dt, _heads(b, groups), _heads(c, groups), h)
        return y.reshape(x.shape), h

    def op_ssd_scan(self, node: Node, x, dt, b, c) -> np.ndarray:
        """Token by token with the step's arithmetic, so that prefill equals decoding bit for bit."""
        k, heads, groups = self._ssd(node), node.attrs["heads"], node.attrs["groups"]
        xh, bg, cg = _heads(x, heads), _heads(b, groups), _heads(c, groups)
        h = np.zeros((*xh.shape[:-3], heads, xh.shape[-1], bg.shape[-1]), np.int64)
        y = np.empty(xh.shape, np.int64)
        for t in range(xh.shape[-3]):
            y[..., t, :, :], h = ssd_step_int(k, xh[..., t, :, :], dt[..., t, :], bg[..., t, :, :], cg[..., t, :, :], h)
        return y.reshape(x.shape)

    # ---- outputs ----------------------------------------------------------------------------
    def logits_scale(self, graph_name: str = "prefill") -> np.ndarray:
        """Real value of one logit code of entry graph ``graph_name``, per vocabulary entry (or class)."""
        graph = self.qm.graphs[graph_name]
        producer = graph.producer("logits")
        if producer.op is Op.LINEAR and not self.qm.bits.get("logits"):  # int32 accumulators
            return self._acc_scale(producer)
        return np.full(graph.values["logits"].shape[-1], self.qm.scales["logits"])


# constant records by key, for import
_RECORDS = {"scan": ScanConstants, "cell": MlstmConstants, "ssd": SsdConstants, "ln": LayerNormConstants}


def export_constants(cache: Mapping[tuple[str, str], Any]) -> dict[str, np.ndarray]:
    """Flatten a constant cache: arrays and ints as is, (m, shift) pairs and ScanConstants by part."""
    flat: dict[str, np.ndarray] = {}
    for (node, key), value in sorted(cache.items()):
        if isinstance(value, tuple(_RECORDS.values())):
            parts = {f.name: getattr(value, f.name) for f in fields(value)}
        elif isinstance(value, tuple):
            parts = {str(i): v for i, v in enumerate(value)}
        else:
            flat[f"{node}/{key}"] = np.asarray(value, dtype=np.int64)
            continue
        flat |= {f"{node}/{key}/{part}": np.asarray(v, dtype=np.int64) for part, v in parts.items()}
    return flat


def import_constants(flat: Mapping[str, np.ndarray]) -> dict[tuple[str, str], Any]:
    """The inverse of export_constants."""
    grouped: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    cache: dict[tuple[str, str], Any] = {}
    for name, value in flat.items():
        node, key, *part = name.split("/")
        if part:
            grouped.setdefault((node, key), {})[part[0]] = value
        else:
            cache[(node, key)] = int(value) if value.ndim == 0 else value
    for k, parts in grouped.items():
        if k[1] in _RECORDS:
            record = _RECORDS[k[1]]
            cache[k] = record(**{f.name: int(parts[f.name]) if f.type == "int" else parts[f.name]
                                 for f in fields(record)})
        else:
            cache[k] = tuple(parts[str(i)] for i in range(len(parts)))
    return cache
