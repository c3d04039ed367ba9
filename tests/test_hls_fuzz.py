"""Differential fuzzing: every HLS kernel of edgec_kernels.h against the simulator handler it mirrors.

Each case is one kernel invocation with its own random shape (drawn from a seeded menu of template
instantiations, compiled into tests/cpp/fuzz_driver.cpp through a generated X-macro list), constants
and inputs, with saturation edges mixed in. Cases of one shape form a group: NumPy generates a group at
once, the IntSimulator handler (op_embed, op_linear, ..., with the constants injected into its cache)
evaluates it in one batched call, and one driver process runs thousands of cases from one binary file.
``EDGEC_FUZZ_SEED`` overrides the seed; the slow variant runs 10^5 cases per kernel, the fast 2,000.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgec.hls.toolchain import (
    HLS_INCLUDE_DIR,
    ToolchainError,
    ap_types_dir,
    compile_program,
    find_compiler,
    run_program,
)
from edgec.ir import Graph, Node, Op
from edgec.numerics.fixed import isqrt
from edgec.numerics.hadamard import KNOWN_ORDERS, HadamardPlan, hadamard_base, plan_hadamard
from edgec.numerics.lut import build_interp_lut, build_lut
from edgec.runtime.float_ref import sigmoid, silu, softplus
from edgec.runtime.mlstm_float import logsigmoid
from edgec.runtime.mlstm_int import DEN_BITS, LOG_FRAC_BITS
from edgec.runtime.sim_int import LOG2E, IntSimulator, MlstmConstants, ScanConstants

SEED = int(os.environ.get("EDGEC_FUZZ_SEED", "20240917"))
SLOW_CASES, FAST_CASES = 100_000, 2_000
GROUP = 256  # cases per group (one shape, one batched handler call)
CHUNK = 25_000  # cases per driver run (bounds the memory of one input file)
LINEAR_BLOCK = 16  # cases per op_linear call (stacked weights, see _linear)
MAGIC = 0x0102030405060708
GUARD = 8  # clear_state: words after the cleared range, which must survive (fuzz_driver.cpp)
DRIVER_SOURCE = Path(__file__).parent / "cpp" / "fuzz_driver.cpp"
KERNELS = ("embed", "rmsnorm", "linear8", "linear24", "linear0", "conv1d_step", "lut", "scan_step", "hadamard",
           "mul", "residual_add", "slice", "clear_state", "interp_lut", "head_layernorm", "mlstm_step")
RESULTS: dict[str, tuple[int, int, float]] = {}  # test id -> (cases, mismatches, seconds)


# ---- shape menus: the template instantiations of the driver --------------------------------------

@dataclass(frozen=True)
class Variant:
    """One template instantiation of a kernel; ``id`` is its case label in the driver."""

    id: int
    kernel: str
    params: tuple

    def macro(self) -> str:
        name = "LINEAR" if self.kernel.startswith("linear") else self.kernel.upper()
        args = [str(p).lower() if isinstance(p, bool) else str(p) for p in self.params]
        return f"{name}({', '.join([str(self.id), *args])})"


def _hadamard_shapes(rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(DIM, K, M): every reachable base order K, padded and exact, plus unplanned K x 2^M (K = 40)."""
    plans: dict[tuple[int, int], list[int]] = {}
    for dim in range(1, 1400):
        p = plan_hadamard(dim)
        plans.setdefault((p.k, p.m), []).append(dim)
    shapes = {(1, 1, 0), (2, 1, 1), (90, 12, 3), (1024, 1, 10), (40, 40, 0), (100, 40, 2), (13, 12, 1)}
    for k in KNOWN_ORDERS:
        keys = [key for key in plans if key[0] == k]
        for i in rng.permutation(len(keys))[:2]:
            k_, m = keys[i]
            dims = plans[keys[i]]
            if k_ << m in dims:
                shapes.add((k_ << m, k_, m))  # no padding
            padded = [d for d in dims if d < k_ << m]
            if padded:
                shapes.add((int(rng.choice(padded)), k_, m))
    return sorted(shapes)


def build_menus(seed: int) -> dict[str, list[Variant]]:
    """Fixed edge shapes plus seeded random ones, per kernel."""
    rng = np.random.default_rng([seed, 7])

    def r(lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi, endpoint=True))

    def linear(bits: int) -> list[tuple]:
        fixed = [(1, 1, 1, True), (1, 1, 8, False), (48, 36, 4, True), (5, 3, 8, False), (64, 16, 8, True)]
        rand = [(r(1, 96), r(1, 40), int(rng.choice([1, 2, 3, 4, 8, 16])), bool(r(0, 1))) for _ in range(5)]
        return [(*s, bits) for s in fixed + rand]

    shapes: dict[str, list[tuple]] = {
        "embed": [(1, 1), (1, 13), (2, 64), (7, 3)] + [(r(1, 12), r(1, 80)) for _ in range(6)],
        "rmsnorm": [(1,), (2,), (3,), (64,), (768,)] + [(r(1, 200),) for _ in range(6)],
        "linear8": linear(8),
        "linear24": linear(24),
        "linear0": linear(0),
        "conv1d_step": [(1, 2, True), (1, 2, False), (3, 3, False), (24, 4, True), (5, 4, False)]
                       + [(r(1, 32), r(2, 6), bool(r(0, 1))) for _ in range(5)],
        "lut": [(1,), (3,), (256,)] + [(r(1, 300),) for _ in range(4)],
        "scan_step": [(1, 1), (1, 16), (24, 16), (5, 3)] + [(r(1, 12), r(1, 16)) for _ in range(5)],
        "hadamard": _hadamard_shapes(rng),
        "mul": [(1,), (2,), (64,)] + [(r(1, 200),) for _ in range(5)],
        "residual_add": [(1,), (2,), (64,)] + [(r(1, 200),) for _ in range(5)],
        "slice": [(1, 1), (1, 9), (8, 8), (5, 40)] + [(n, n + r(0, 40)) for n in (r(1, 64) for _ in range(4))],
        "clear_state": [("int8_t", 1), ("int8_t", 33), ("int32_t", 1), ("int32_t", 48)]
                       + [(str(rng.choice(["int8_t", "int32_t"])), r(1, 400)) for _ in range(4)],
        "interp_lut": [(1, 10), (3, 10), (256, 10), (4, 0), (5, 4), (9, 16)]
                      + [(r(1, 300), r(1, 12)) for _ in range(4)],
        "head_layernorm": [(1, 1), (1, 2), (2, 3), (4, 16), (8, 64)] + [(r(1, 8), r(1, 96)) for _ in range(5)],
        "mlstm_step": [(1, 1, 1, 10), (1, 2, 3, 10), (4, 16, 32, 10), (2, 5, 7, 4)]
                      + [(r(1, 4), r(1, 24), r(1, 32), 10) for _ in range(4)],
    }
    menus, next_id = {}, 0
    for kernel in KERNELS:
        menus[kernel] = []
        for params in dict.fromkeys(shapes[kernel]):  # unique, in order
            menus[kernel].append(Variant(next_id, kernel, params))
            next_id += 1
    return menus


MENUS = build_menus(SEED)


# ---- random data with saturation edges ------------------------------------------------------------

def ints(rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int, edge: float = 0.03,
         whole: float = 0.06) -> np.ndarray:
    """Integers in [lo, hi] of every magnitude; some elements, and some whole cases (axis 0), at the edges."""
    x = rng.integers(lo, hi, size=shape, endpoint=True)
    spread = rng.random(shape) < 0.4  # log-uniform magnitudes too, not only large ones
    x = np.where(spread, x >> rng.integers(0, max(abs(lo), abs(hi)).bit_length() + 1, size=shape), x)
    specials = np.unique(np.clip([lo, hi, 0, 1, -1, lo + 1, hi - 1], lo, hi))
    e = rng.random(shape) < edge
    x[e] = rng.choice(specials, int(e.sum()))
    if len(shape) > 1:  # all-min, all-max or all-zero cases (saturated state, zero rows) and tiny ones
        w = rng.random(shape[0]) < whole
        fill = rng.choice(np.unique(np.clip([lo, hi, 0], lo, hi)), int(w.sum()))
        x[w] = fill.reshape(-1, *([1] * (len(shape) - 1)))
        t = rng.random(shape[0]) < whole
        x[t] = rng.integers(max(lo, -4), min(hi, 4), size=(int(t.sum()), *shape[1:]), endpoint=True)
    return x


def edge_rows(rng: np.random.Generator, a: np.ndarray, lo: int, hi: int, share: float = 0.05) -> np.ndarray:
    """Set ``share`` of the rows (last axis) to all-zero, all-min or all-max (zero and extreme weight rows)."""
    pick = rng.random(a.shape[:-1]) < share
    return np.where(pick[..., None], rng.choice([0, lo, hi], a.shape[:-1])[..., None], a)


def signed(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int = 8, **kw: float) -> np.ndarray:
    return ints(rng, shape, *signed(bits), **kw)


def mults(rng: np.random.Generator, shape: tuple[int, ...], sign: bool = False) -> np.ndarray:
    """15-bit multipliers: normalised [2^14, 2^15), often the largest or smallest, some anywhere below, and
    a quarter odd * 2^j (many trailing zeros: products that end in exactly half an LSB, i.e. rounding ties)."""
    m = rng.integers(1 << 14, 1 << 15, size=shape)
    u = rng.random(shape)
    m = np.where(u < 0.1, (1 << 15) - 1, np.where(u < 0.15, 1 << 14, m))
    m = np.where((u >= 0.15) & (u < 0.22), rng.integers(0, 1 << 15, size=shape), m)
    odd = 2 * rng.integers(0, 32, size=shape) + 1
    m = np.where((u >= 0.22) & (u < 0.47), odd << (14 - np.frexp(odd.astype(np.float64))[1] + 1), m)
    if sign:  # signed_multiplier: m carries the sign of D, and D = 0 gives m = 0
        m = np.where(rng.random(shape) < 0.5, -m, m)
        m = np.where(rng.random(shape) < 0.05, 0, m)
    return m


def bitlen(a: np.ndarray) -> np.ndarray:
    """Bit length of |a| elementwise (0 for 0); only steers the random shifts."""
    return np.frexp(np.abs(np.asarray(a)).astype(np.float64))[1].astype(np.int64)


def trailing_zeros(m: np.ndarray) -> np.ndarray:
    """Trailing zero bits of |m| (-1 for m = 0)."""
    m = np.abs(np.asarray(m, dtype=np.int64))
    return np.frexp((m & -m).astype(np.float64))[1].astype(np.int64) - 1


def shifts(rng: np.random.Generator, shape: tuple[int, ...], center: np.ndarray | int, hi: np.ndarray | int = 62,
           spread: tuple[int, int] = (-3, 6), m: np.ndarray | None = None) -> np.ndarray:
    """Shifts from ``center`` (outputs fill the output range) up, some uniform, some at 0 and ``hi``; with
    ``m``, some just above its trailing zeros, where small inputs round ties."""
    hi = np.broadcast_to(np.asarray(hi), shape)
    s = np.asarray(center) + rng.integers(*spread, size=shape, endpoint=True)
    u = rng.random(shape)
    s = np.where(u < 0.05, 0, np.where(u < 0.1, hi, s))
    s = np.where((u >= 0.1) & (u < 0.25), (rng.random(shape) * (hi + 1)).astype(np.int64), s)
    if m is not None:
        zeros = np.broadcast_to(trailing_zeros(m), shape)
        s = np.where((u >= 0.25) & (u < 0.4), zeros + 1 + rng.integers(0, 4, size=shape), s)
    return np.clip(s, 0, hi)


def tie_values(rng: np.random.Generator, m: np.ndarray, shift: np.ndarray, lo: np.ndarray | int,
               hi: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Values v = +-odd * 2^(shift - 1 - tz(m)) in [lo, hi], so that v * m / 2^shift is exactly k + 1/2; and
    where such a value exists."""
    m, shift = np.broadcast_arrays(np.asarray(m), np.asarray(shift))
    p = np.clip(shift - 1 - trailing_zeros(m), 0, 62)
    ok = (m != 0) & (shift - 1 - trailing_zeros(m) >= 0)
    room = np.minimum(hi, -np.asarray(lo)) >> p  # odd * 2^p within both bounds
    odd = 2 * (rng.random(m.shape) * ((room + 1) // 2)).astype(np.int64) + 1
    return np.where(rng.random(m.shape) < 0.5, -1, 1) * (odd << p), ok & (room >= 1)


def plant_ties(rng: np.random.Generator, x: np.ndarray, m: np.ndarray, shift: np.ndarray, lo: int, hi: int,
               share: float = 0.1) -> np.ndarray:
    """Replace ``share`` of x (where possible) by values whose requant is a rounding tie."""
    m, shift = np.broadcast_to(m, x.shape), np.broadcast_to(shift, x.shape)
    tie, ok = tie_values(rng, m, shift, lo, hi)
    return np.where(ok & (rng.random(x.shape) < share), tie, x)


def plant_bias_ties(rng: np.random.Generator, bias: np.ndarray, dot: np.ndarray, m: np.ndarray,
                    shift: np.ndarray, bits: int, share: float = 0.2) -> np.ndarray:
    """Bias such that dot + bias is a rounding tie of a non-saturated output, for ``share`` of the outputs."""
    reach = np.minimum(np.ldexp(1.0, bits - 1 + shift) / np.maximum(np.abs(m), 1), 2.0**30).astype(np.int64)
    tie, ok = tie_values(rng, m, shift, -reach, reach)
    return np.where(ok & (rng.random(bias.shape) < share), tie - dot, bias)


def pack8(a: np.ndarray) -> np.ndarray:
    """[G, ...] int8 codes -> [G, ceil(n / 8)] int64 words, 8 codes per word (little-endian)."""
    flat = a.reshape(a.shape[0], -1).astype(np.int8)
    pad = -flat.shape[1] % 8
    return np.ascontiguousarray(np.pad(flat, ((0, 0), (0, pad)))).view("<i8").astype(np.int64)


def pack32(a: np.ndarray) -> np.ndarray:
    """[G, n] int32 values -> [G, ceil(n / 2)] int64 words."""
    flat = a.astype(np.int32)
    pad = -flat.shape[1] % 2
    return np.ascontiguousarray(np.pad(flat, ((0, 0), (0, pad)))).view("<i8").astype(np.int64)


def rows(g: int, *parts: np.ndarray | int) -> np.ndarray:
    """One record per case: scalars (repeated) and [G, ...] arrays (flattened), side by side."""
    cols = [np.full((g, 1), a) if a.ndim == 0 else a.reshape(g, -1)
            for a in (np.asarray(p, dtype=np.int64) for p in parts)]
    return np.concatenate(cols, axis=1)


# ---- the simulator side: real IntSimulator handlers with injected constants ----------------------

class Twin:
    """An IntSimulator over a stub QuantizedModel: handlers run unchanged on constants we choose."""

    def __init__(self) -> None:
        self.qm = SimpleNamespace(qweights={}, wscales={}, scales={}, bits={}, graphs={}, fparams={},
                                  state_scales={})
        self.sim = IntSimulator.__new__(IntSimulator)
        self.sim.qm = self.qm
        self.sim._const = {}

    def __call__(self, node: Node, consts: dict[str, Any], *inputs: np.ndarray) -> Any:
        self.sim._const.clear()
        self.sim._const.update({(node.name, k): v for k, v in consts.items()})
        return self.sim.handler(node)(node, *inputs)


TWIN = Twin()


@dataclass
class Batch:
    """One group: shared prefix (e.g. H_K), records [G, L] for the driver, expected outputs [G, Lout]."""

    records: np.ndarray
    expected: np.ndarray
    prefix: np.ndarray


def _batch(records: np.ndarray, expected: np.ndarray, prefix: np.ndarray | None = None) -> Batch:
    return Batch(records, np.asarray(expected, dtype=np.int64).reshape(len(records), -1),
                 np.zeros(0, np.int64) if prefix is None else np.asarray(prefix, dtype=np.int64).ravel())


def _embed(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    v, d = params
    bits = int(rng.choice([8, 16, 24, 32], p=[0.2, 0.15, 0.55, 0.1]))
    token = np.where(rng.random(g) < 0.2, rng.choice([0, v - 1], g), rng.integers(0, v, g))
    table = edge_rows(rng, codes(rng, (g, v, d)), -128, 127)
    m = mults(rng, (g, v))
    shift = shifts(rng, (g, v), bitlen(np.abs(table).max(axis=2)) + 15 - (bits - 1), m=m)
    table = plant_ties(rng, table, m[..., None], shift[..., None], *signed(8))
    node = Node(Op.EMBED, ("tokens",), ("x",), {"weight": "emb"}, name="embed")
    TWIN.qm.qweights["emb"], TWIN.qm.bits["x"] = table.reshape(g * v, d), bits  # case i's rows at i * V
    want = TWIN(node, {"rows": (m.ravel(), shift.ravel())}, token + v * np.arange(g))
    return _batch(rows(g, token, bits, m, shift, pack8(table)), want)


def _rmsnorm(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    (d,) = params
    x = codes(rng, (g, d), 24)
    eps = np.where(rng.random((g, 1)) < 0.3, rng.choice([0, 0, 1, 1 << 40], (g, 1)),
                   rng.integers(0, 1 << 40, (g, 1), endpoint=True) >> rng.integers(0, 41, (g, 1)))
    tiny = rng.random(g) < 0.1  # a few codes, scaled: rms near perfect squares, floor(sum / D) matters
    x[tiny] = rng.integers(-3, 4, (int(tiny.sum()), d)) << np.where(rng.random((int(tiny.sum()), 1)) < 0.5, 0,
                                                                    rng.integers(0, 21, (int(tiny.sum()), 1)))
    eps[tiny & (rng.random(g) < 0.5)] = 0
    pow2 = rng.random(g) < 0.1  # +-2^q rows with eps = 0: rms = 2^q and inv = 2^17 exactly
    x[pow2] = rng.choice([-1, 1], (int(pow2.sum()), d)) << rng.integers(0, 23, (int(pow2.sum()), 1))
    eps[pow2] = 0
    # the requant shift is shift + b + 16 with b = bit length of rms: keep it within [0, 62]
    rms = np.maximum(isqrt(np.sum(x * x, axis=1, keepdims=True) // d + eps), 1)
    m = mults(rng, (g, 1))
    shift = shifts(rng, (g, 1), 9, hi=62 - 16 - bitlen(rms), m=m)
    tie = pow2[:, None] & (rng.random((g, 1)) < 0.5)  # then the output is +-m / 2^shift: a tie at tz(m) + 1
    shift = np.where(tie, np.clip(trailing_zeros(m) + 1, 0, 62 - 16 - bitlen(rms)), shift)
    node = Node(Op.RMSNORM, ("x",), ("y",), name="norm")
    TWIN.qm.scales |= {"x": 1.0, "y": 1.0}
    TWIN.qm.bits |= {"x": 24, "y": 8}  # a stored-format input (the residual stream) to int8
    want = TWIN(node, {"inv": (m, shift), "eps": eps}, x)
    return _batch(rows(g, eps, m, shift, x), want)


def _linear(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    k, n, _p, has_bias, bits = params
    x, w = codes(rng, (g, k)), edge_rows(rng, codes(rng, (g, n, k)), -128, 127)
    bias = codes(rng, (g, n), 32) if has_bias else None
    bound = np.einsum("gk,gnk->gn", np.abs(x), np.abs(w)) + (0 if bias is None else np.abs(bias))
    m = mults(rng, (g, n))
    shift = shifts(rng, (g, n), bitlen(bound) - k.bit_length() // 2 + 15 - max(bits - 1, 0), m=m)
    if bias is not None and bits:
        bias = plant_bias_ties(rng, bias, np.einsum("gk,gnk->gn", x, w), m, shift, bits)
    node = Node(Op.LINEAR, ("x",), ("y",), {"weight": "w"}, name="lin")
    TWIN.qm.bits["y"] = bits
    want = np.empty((g, n), np.int64)
    for s in range(0, g, LINEAR_BLOCK):  # stacked weights of `blk` cases: one call, keep the diagonal blocks
        blk = min(LINEAR_BLOCK, g - s)
        TWIN.qm.qweights["w"] = w[s:s + blk].reshape(blk * n, k)
        consts = {"bias": 0 if bias is None else bias[s:s + blk].ravel(),
                  "out": (m[s:s + blk].ravel(), shift[s:s + blk].ravel())}
        y = TWIN(node, consts, x[s:s + blk]).reshape(blk, blk, n)
        want[s:s + blk] = y[np.arange(blk), np.arange(blk)]
    parts = [x, pack8(w)] + ([bias] if has_bias else []) + ([m, shift] if bits else [])
    return _batch(rows(g, *parts), want)


def _conv1d_step(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    e, kt, has_bias = params
    bits = int(rng.choice([8, 16, 24], p=[0.8, 0.1, 0.1]))
    x, state, taps = codes(rng, (g, e)), codes(rng, (g, e, kt - 1)), edge_rows(rng, codes(rng, (g, e, kt)), -128, 127)
    state = edge_rows(rng, state, -128, 127)
    bias = codes(rng, (g, e), 32) if has_bias else None
    bound = (np.abs(state) * np.abs(taps[..., :-1])).sum(axis=2) + np.abs(x) * np.abs(taps[..., -1])
    m = mults(rng, (g, e))
    shift = shifts(rng, (g, e), bitlen(bound + (0 if bias is None else np.abs(bias))) + 14 - (bits - 1), m=m)
    if bias is not None:
        dot = (state * taps[..., :-1]).sum(axis=2) + x * taps[..., -1]
        bias = plant_bias_ties(rng, bias, dot, m, shift, bits)
    node = Node(Op.CONV1D_STEP, ("x", "s"), ("y", "s_out"), {"weight": "taps"}, name="conv")
    TWIN.qm.qweights["taps"], TWIN.qm.bits["y"] = taps.reshape(g * e, 1, kt), bits  # channels side by side
    consts = {"bias": 0 if bias is None else bias.ravel(), "out": (m.ravel(), shift.ravel())}
    y, s = TWIN(node, consts, x.reshape(1, g * e), state.reshape(1, g * e, kt - 1))
    parts = [bits, x, pack8(state), pack8(taps)] + ([bias] if has_bias else []) + [m, shift]
    return _batch(rows(g, *parts), np.concatenate([y.reshape(g, e), s.reshape(g, -1)], axis=1))


def _lut(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    (n,) = params
    x = codes(rng, (g, n))
    bits = int(rng.choice([8, 16, 24, 32]))
    if rng.random() < 0.3:  # tables as the compiler builds them
        fn = (silu, softplus, sigmoid)[int(rng.integers(0, 3))]
        ins, outs = 10.0 ** rng.uniform(-3, 0, g), 10.0 ** rng.uniform(-6, 0, g)
        tables = np.stack([build_lut(fn, a, b, bits) for a, b in zip(ins, outs, strict=True)])
    else:
        tables = codes(rng, (g, 256), bits, edge=0.1)
    node = Node(Op.SILU, ("x",), ("y",), name="act")
    want = np.stack([TWIN(node, {"lut": tables[i]}, x[i]) for i in range(g)])
    return _batch(rows(g, pack32(tables), x), want)


def _scan_step(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    e, ns = params
    a_frac = int(rng.integers(20, 46) if rng.random() < 0.6 else rng.integers(0, 63))
    y_bits = int(rng.choice([16, 8, 24, 32], p=[0.7, 0.1, 0.1, 0.1]))
    u, b, c = codes(rng, (g, e)), codes(rng, (g, ns)), codes(rng, (g, ns))
    dt = ints(rng, (g, e), 0, (1 << 23) - 1, whole=0.1)  # softplus codes: dt >= 0, dt = 0 in some cases
    h = codes(rng, (g, e, ns), 32, edge=0.05, whole=0.1)  # state at saturation in some cases
    a_q = -ints(rng, (g, e, ns), 0, 1 << 20)  # A < 0, at most A_BITS bits
    bu_m, y_m, d_m = mults(rng, (g, 1, 1)), mults(rng, (g, 1)), mults(rng, (g, e), sign=True)
    dub = (np.abs(dt * u)[:, :, None] * np.abs(b)[:, None, :]).max(axis=(1, 2))
    hc = (np.abs(h) * np.abs(c)[:, None, :]).sum(axis=2).max(axis=1)
    bu_shift = shifts(rng, (g, 1, 1), bitlen(dub).reshape(g, 1, 1) + 15 - 31, m=bu_m)
    y_shift = shifts(rng, (g, 1), bitlen(hc).reshape(g, 1) + 15 - (y_bits - 1), m=y_m)
    d_shift = np.where(d_m == 0, 0, shifts(rng, (g, e), bitlen(u) + 15 - (y_bits - 1), m=d_m))
    u = plant_ties(rng, u, d_m, d_shift, *signed(8))
    k = ScanConstants(a_frac, a_q, bu_m, bu_shift, y_m, y_shift, d_m, d_shift, y_bits)  # per-case, batched
    node = Node(Op.SCAN_STEP, ("u", "dt", "b", "c", "h"), ("y", "h_out"), name="scan")
    y, h_new = TWIN(node, {"scan": k}, u, dt, b, c, h)
    record = rows(g, a_frac, bu_m, bu_shift, y_m, y_shift, y_bits, u, dt, b, c, h, a_q, d_m, d_shift)
    return _batch(record, np.concatenate([y, h_new.reshape(g, -1)], axis=1))


def _hadamard(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    dim, kh, hm = params
    padded = kh << hm
    x_bits = int(rng.choice([b for b in (8, 16, 24, 31, 32) if b - 1 + padded.bit_length() <= 47]))
    x = codes(rng, (g, dim), x_bits)
    m = mults(rng, (g, 1))
    norm = np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=1, keepdims=True))
    shift = shifts(rng, (g, 1), bitlen(norm.astype(np.int64)) + 15 - 7, m=m)
    one = rng.random(g) < 0.1  # one-hot inputs: every output is +-v, and v is a rounding tie
    shift[one] = np.clip(trailing_zeros(m[one]) + 1 + rng.integers(0, 9, (int(one.sum()), 1)), 0, 62)
    reach = np.minimum(np.ldexp(1.0, 7 + shift[one, 0]) / np.maximum(m[one, 0], 1), 2.0 ** (x_bits - 1) - 1)
    v, ok = tie_values(rng, m[one, 0], shift[one, 0], -reach.astype(np.int64), reach.astype(np.int64))
    x[one] = 0
    x[np.flatnonzero(one), rng.integers(0, dim, int(one.sum()))] = np.where(ok, v, 1)
    plan = HadamardPlan(dim, kh, hm, padded, padded - dim)
    node = Node(Op.HADAMARD, ("p",), ("o",), attrs={"plan": plan}, name="rot")
    TWIN.qm.graphs["prefill"] = Graph("prefill", [Node(Op.MUL, ("a", "b"), ("p",), name="gate")], {}, [], [])
    TWIN.qm.scales |= {"a": 1.0, "b": 1.0, "o": 1.0}
    want = TWIN(node, {"out": (m, shift)}, x)
    return _batch(rows(g, m, shift, x), want, hadamard_base(kh))


def _mul(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    (n,) = params
    bits = int(rng.choice([0, 8, 16], p=[0.45, 0.45, 0.1]))  # 0: the wide product for the rotation
    a_bits = int(rng.choice([8, 16, 24]))
    b_bits = int(rng.choice([b for b in (8, 16, 24) if a_bits + b <= 48]))
    a, b = codes(rng, (g, n), a_bits), codes(rng, (g, n), b_bits)
    m = mults(rng, (g, 1))
    shift = shifts(rng, (g, 1), bitlen(np.abs(a * b).max(axis=1, keepdims=True)) + 15 - max(bits - 1, 0), m=m)
    pick = rng.random((g, n)) < 0.3  # b = +-2^q and a planted so that a * b * m is a rounding tie
    q = np.minimum(rng.integers(0, b_bits - 1, (g, n)), np.maximum(shift - 1 - trailing_zeros(m), 0))
    b = np.where(pick, rng.choice([-1, 1], (g, n)) << q, b)
    a = np.where(pick, plant_ties(rng, a, m, shift - q, *signed(a_bits), share=1.0), a)
    out = "y" if bits else "wide"
    node = Node(Op.MUL, ("a", "b"), (out,), name="gate")
    TWIN.qm.scales |= {"a": 1.0, "b": 1.0, "y": 1.0}
    TWIN.qm.bits["y"] = bits
    want = TWIN(node, {"out": (m, shift)}, a, b)
    if not bits:
        m, shift = np.zeros_like(m), np.zeros_like(shift)  # as the emitter passes them
    return _batch(rows(g, m, shift, bits, a, b), want)


def _residual_add(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    (d,) = params
    bits = int(rng.choice([24, 8, 16, 32], p=[0.7, 0.1, 0.1, 0.1]))
    skip_bits = int(rng.choice([24, 32]))
    skip, b = codes(rng, (g, d), skip_bits), codes(rng, (g, d), int(rng.choice([8, 24, 32])))
    m = mults(rng, (g, 1))
    shift = shifts(rng, (g, 1), bitlen(np.abs(skip).max(axis=1, keepdims=True)) + 15 - (bits - 1), m=m)
    skip = plant_ties(rng, skip, m, shift, *signed(skip_bits))
    node = Node(Op.ADD, ("skip", "b"), ("h",), name="add")
    TWIN.qm.bits["h"] = bits
    want = TWIN(node, {"skip": (m, shift)}, skip, b)
    return _batch(rows(g, m, shift, bits, skip, b), want)


def _slice(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    n, w = params
    start = np.where(rng.random(g) < 0.3, rng.choice([0, w - n], g), rng.integers(0, w - n, g, endpoint=True))
    src = rng.integers(-(1 << 63), (1 << 63) - 1, (g, w), endpoint=True)
    want = np.empty((g, n), np.int64)
    for s0 in np.unique(start):  # op_split with sizes (start, N, rest): the middle segment
        sel = start == s0
        node = Node(Op.SPLIT, ("x",), ("pre", "mid", "post"), attrs={"sizes": (int(s0), n, w - n - int(s0))})
        want[sel] = TWIN(node, {}, src[sel])[1]
    return _batch(rows(g, start, src), want)


def _clear_state(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    ctype, nmax = params
    count = np.where(rng.random(g) < 0.3, rng.choice([0, nmax], g), rng.integers(0, nmax, g, endpoint=True))
    values = codes(rng, (g, nmax + GUARD), 8 if ctype == "int8_t" else 32)
    # the simulator's state before the first step is all zeros (targets/fpga/csim.simulate_steps)
    want = np.where(np.arange(nmax + GUARD) < count[:, None], 0, values)
    return _batch(rows(g, count, values), want)


def _knots(rng: np.random.Generator, fn: Callable[[np.ndarray], np.ndarray], in_bits: int, out_scale: float,
           out_bits: int, knot_bits: int, bound: tuple[int, int]) -> np.ndarray:
    """Knots as the compiler builds them (``fn`` at a random input scale), or random ones within ``bound``."""
    if rng.random() < 0.5:
        return build_interp_lut(fn, 10.0 ** rng.uniform(-5, 0), in_bits, out_scale, out_bits, knot_bits)
    return ints(rng, ((1 << knot_bits) + 1,), *bound, edge=0.1)


def _interp_lut(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    n, kb = params
    in_bits = int(rng.choice([b for b in (8, 12, 16, 24) if b >= kb]))
    out_bits = int(rng.choice([16, 32]))
    knots = _knots(rng, lambda t: 30 * np.tanh(t / 30), in_bits, 30 / 2 ** (out_bits - 1), out_bits, kb,
                   signed(out_bits))
    x = codes(rng, (g, n), in_bits)
    on_knot = rng.random((g, n)) < 0.1  # exactly on a knot, or one code either side
    x = np.where(on_knot, np.clip(((x >> (in_bits - kb)) << (in_bits - kb)) + rng.integers(-1, 2, (g, n)),
                                  *signed(in_bits)), x)
    node = Node(Op.SOFTCAP, ("x",), ("y",), attrs={"cap": 30.0}, name="cap")
    TWIN.qm.bits["x"] = in_bits
    want = TWIN(node, {"knots": knots}, x)
    return _batch(rows(g, x), want, np.concatenate([[in_bits], knots]))


def _head_layernorm(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    heads, dh = params
    bits = int(rng.choice([16, 8, 32], p=[0.7, 0.15, 0.15]))
    x = codes(rng, (g, heads, dh), 32, whole=0.1)
    flat = rng.random((g, heads)) < 0.05  # a constant head: it centres to zero
    x = np.where(flat[..., None], x[..., :1], x)
    x = x.reshape(g, heads * dh)
    eps = np.where(rng.random((g, 1)) < 0.2, rng.choice([0, 1, 1 << 60], (g, 1)),
                   rng.integers(0, 1 << 60, (g, 1), endpoint=True) >> rng.integers(0, 61, (g, 1)))
    m = mults(rng, (g, heads * dh), sign=True)
    rms_max = isqrt(np.minimum((1 << 48) + eps, (1 << 62) - 1))  # centred values stay below 2^24 (+1)
    shift = shifts(rng, (g, heads * dh), max(0, 16 + dh.bit_length() // 2 - bits), hi=46 - bitlen(rms_max), m=m)
    shift = np.where(m == 0, 0, shift)
    node = Node(Op.HEAD_LAYERNORM, ("h",), ("hn",), attrs={"heads": heads, "eps": 1e-6}, name="hnorm")
    TWIN.qm.bits["hn"] = bits
    consts = {"inv": (m.reshape(g, heads, dh), shift.reshape(g, heads, dh)), "eps": eps[:, :, None]}
    want = TWIN(node, consts, x)
    return _batch(rows(g, eps, bits, m, shift, x), want)


def _mlstm_step(rng: np.random.Generator, params: tuple, g: int) -> Batch:
    heads, dqk, dv, kb = params
    gate_bits = int(rng.choice([b for b in (16, 12, 10) if b >= kb]))
    h_bits = int(rng.choice([32, 16, 8], p=[0.7, 0.15, 0.15]))
    logf = _knots(rng, lambda t: logsigmoid(t) * LOG2E, gate_bits, 2.0 ** -LOG_FRAC_BITS, 32, kb, (-(1 << 31), 0))
    col = (g, 1)
    i_m, k_m, kv_m, r_m = (mults(rng, col) for _ in range(4))
    qn_bits = 7 + 31 + max(dqk - 1, 1).bit_length()  # MlstmConstants.build: |q.n| << guard < 2^(DEN_BITS - 1)
    guard = rng.integers(0, max(0, DEN_BITS - 1 - qn_bits), col, endpoint=True)
    eps = np.where(rng.random(col) < 0.3, rng.choice([0, 0, 1, 1 << 59], col),
                   rng.integers(0, 1 << 59, col, endpoint=True) >> rng.integers(0, 60, col))
    # r_shift < 0 (h = num / den * r_m * 2^|r_shift|); with a tiny denominator the output is shifted up
    r_shift = np.where(rng.random(col) < 0.2, rng.integers(-40, -10, col), rng.integers(-24, 40, col, endpoint=True))
    consts = (i_m, shifts(rng, col, 6, m=i_m), kv_m, shifts(rng, col, 28, m=kv_m), k_m, shifts(rng, col, 21, m=k_m),
              guard, rng.integers(10 << LOG_FRAC_BITS, 62 << LOG_FRAC_BITS, col), eps, r_m, r_shift)
    q, k = codes(rng, (g, heads * dqk)), codes(rng, (g, heads * dqk))
    v, i, f = codes(rng, (g, heads * dv)), codes(rng, (g, heads), gate_bits), codes(rng, (g, heads), gate_bits)
    c = codes(rng, (g, heads, dqk, dv), 32, edge=0.05, whole=0.1)
    n = codes(rng, (g, heads, dqk), 32, edge=0.05, whole=0.1)
    m = np.where(rng.random((g, heads)) < 0.8, ints(rng, (g, heads), -(1 << 26), 1 << 26), codes(rng, (g, heads), 32))
    quiet = rng.random((g, heads)) < 0.1  # q.n = 0: the denominator is the floor 2^(log_inv_qn - m) + eps
    n = np.where(quiet[..., None], 0, n)
    k = np.where(np.repeat(quiet, dqk, axis=1), 0, k)
    # each constant broadcast against the array it scales in mlstm_step_int: [B, H], [B, H, dqk, dv], ...
    shapes = ((g, 1), (g, 1), (g, 1, 1, 1), (g, 1, 1, 1), (g, 1, 1), (g, 1, 1), (g, 1), (g, 1), (g, 1), (g, 1, 1),
              (g, 1))
    names = [fld for fld in MlstmConstants.__dataclass_fields__ if fld not in ("logf", "gate_bits", "h_bits")]
    kc = MlstmConstants(**{name: a.reshape(shape) for name, a, shape in zip(names, consts, shapes, strict=True)},
                        logf=logf, gate_bits=gate_bits, h_bits=h_bits)
    node = Node(Op.MLSTM_STEP, ("q", "k", "v", "i", "f", "C", "n", "m"), ("h", "C_out", "n_out", "m_out"),
                attrs={"heads": heads, "eps": 1e-6}, name="cell")
    h, c_new, n_new, m_new = TWIN(node, {"cell": kc}, q, k, v, i, f, c, n, m)
    want = np.concatenate([a.reshape(g, -1) for a in (h, c_new, n_new, m_new)], axis=1)
    return _batch(rows(g, *consts, q, k, v, i, f, c, n, m), want, np.concatenate([[gate_bits, h_bits], logf]))


GENERATORS: dict[str, Callable[[np.random.Generator, tuple, int], Batch]] = {
    "embed": _embed, "rmsnorm": _rmsnorm, "linear8": _linear, "linear24": _linear, "linear0": _linear,
    "conv1d_step": _conv1d_step, "lut": _lut, "scan_step": _scan_step, "hadamard": _hadamard, "mul": _mul,
    "residual_add": _residual_add, "slice": _slice, "clear_state": _clear_state, "interp_lut": _interp_lut,
    "head_layernorm": _head_layernorm, "mlstm_step": _mlstm_step,
}


# ---- the driver ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kernel -> compiled driver; the kernels are split over one executable per core, built in parallel."""
    try:
        find_compiler()
        ap_types = ap_types_dir()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    jobs = max(1, min(os.cpu_count() or 1, 4))
    root = tmp_path_factory.mktemp("hls_fuzz")
    buckets = [KERNELS[i::jobs] for i in range(jobs)]

    def build(i: int) -> Path:
        folder = root / f"bucket{i}"
        folder.mkdir()
        lines = [v.macro() for kernel in buckets[i] for v in MENUS[kernel]]
        (folder / "fuzz_variants.inc").write_text("\n".join(lines) + "\n")
        return compile_program([DRIVER_SOURCE], folder / "fuzz_driver", [HLS_INCLUDE_DIR, ap_types, folder])

    with ThreadPoolExecutor(jobs) as pool:
        exes = list(pool.map(build, range(jobs)))
    return {kernel: exes[i] for i in range(jobs) for kernel in buckets[i]}


def _encode(groups: list[tuple[Variant, Batch]]) -> bytes:
    words = [np.array([MAGIC], np.int64)]
    for variant, batch in groups:
        words += [np.array([variant.id, len(batch.records), batch.prefix.size], np.int64), batch.prefix,
                  batch.records.ravel()]
    return np.concatenate(words).astype("<i8").tobytes()


def _describe(variant: Variant, batch: Batch, i: int, got: np.ndarray, driver: Path, tmp: Path) -> str:
    """The first mismatch, with a one-case input file that reproduces it."""
    want = batch.expected[i]
    j = int(np.flatnonzero(got != want)[0])
    repro = tmp / f"repro_{variant.kernel}.bin"
    repro.write_bytes(_encode([(variant, Batch(batch.records[i:i + 1], want[None], batch.prefix))]))
    return (f"{variant.macro()} case {i}: output[{j}] C++ {int(got[j])} != simulator {int(want[j])}; "
            f"record {batch.records[i].tolist()[:48]}; reproduce: {driver} {repro} OUT")


def fuzz(kernel: str, n_cases: int, driver: Path, tmp: Path) -> tuple[int, int, str]:
    """Run ``n_cases`` cases of ``kernel``: (cases, mismatching cases, first mismatch or '')."""
    rng = np.random.default_rng([SEED, KERNELS.index(kernel), n_cases])
    menu = MENUS[kernel]
    order = rng.permutation(len(menu))
    group = int(np.clip(n_cases // (2 * len(menu)), 8, GROUP))
    done = bad = turn = 0
    first = ""
    while done < n_cases:
        groups, size = [], 0
        while size < CHUNK and done + size < n_cases:  # every shape in turn, GROUP cases each
            variant = menu[order[turn % len(menu)]]
            turn += 1
            g = min(group, n_cases - done - size)
            groups.append((variant, GENERATORS[kernel](rng, variant.params, g)))
            size += g
        (tmp / "in.bin").write_bytes(_encode(groups))
        run_program(driver, [tmp / "in.bin", tmp / "out.bin"], timeout=600)
        out = np.fromfile(tmp / "out.bin", "<i8")
        assert out.size == sum(b.expected.size for _, b in groups), "driver output has the wrong length"
        pos = 0
        for variant, batch in groups:
            got = out[pos:pos + batch.expected.size].reshape(batch.expected.shape)
            pos += batch.expected.size
            wrong = np.flatnonzero((got != batch.expected).any(axis=1))
            bad += wrong.size
            if wrong.size and not first:
                first = _describe(variant, batch, int(wrong[0]), got[wrong[0]], driver, tmp)
        done += size
    return done, bad, first


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the per-kernel counts at the end of the module (also without -s)."""
    yield
    if RESULTS:
        lines = [f"{name:<34} {n:>8} cases {bad:>4} mismatches {sec:7.2f} s"
                 for name, (n, bad, sec) in sorted(RESULTS.items())]
        text = "\nHLS kernel fuzzing (seed {}):\n{}\n".format(SEED, "\n".join(lines))
        plugins = request.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(text)
        else:
            print(text)
        RESULTS.clear()


def _run(kernel: str, n_cases: int, drivers: dict[str, Path], tmp_path: Path, record_property: Callable[..., None],
         label: str) -> None:
    start = time.perf_counter()
    n, bad, first = fuzz(kernel, n_cases, drivers[kernel], tmp_path)
    RESULTS[f"{label}[{kernel}]"] = (n, bad, time.perf_counter() - start)
    record_property("cases", n)
    record_property("mismatches", bad)
    print(f"{kernel}: {n} cases, {bad} mismatches (seed {SEED})")
    assert n >= n_cases
    assert bad == 0, f"{bad} of {n} cases differ (EDGEC_FUZZ_SEED={SEED}); first: {first}"


@pytest.mark.parametrize("kernel", KERNELS)
def test_fuzz_fast(kernel: str, drivers: dict[str, Path], tmp_path: Path, record_property: Callable[..., None]) -> None:
    _run(kernel, FAST_CASES, drivers, tmp_path, record_property, "fast")


@pytest.mark.slow
@pytest.mark.parametrize("kernel", KERNELS)
def test_fuzz_slow(kernel: str, drivers: dict[str, Path], tmp_path: Path, record_property: Callable[..., None]) -> None:
    _run(kernel, SLOW_CASES, drivers, tmp_path, record_property, "slow")


def test_menus_cover_the_edges() -> None:
    """The shape menus hold the edge shapes the kernels must handle."""
    ks = {v.params[1] for v in MENUS["hadamard"]}
    assert ks >= set(KNOWN_ORDERS)  # every base order, K = 40 through an explicit plan
    assert any(d < k << m for d, k, m in (v.params for v in MENUS["hadamard"]))  # padded
    assert any(m == 0 for _, _, m in (v.params for v in MENUS["hadamard"]))  # K x K stage only
    assert any(v.params[1] == 2 for v in MENUS["conv1d_step"])  # one-tap state
    assert {v.params[:2] for v in MENUS["linear8"]} >= {(1, 1)}
