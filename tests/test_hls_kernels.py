"""Each HLS kernel alone against its twin in the simulator, on random and edge-case inputs."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edgec.runtime.int_ops as int_ops
import edgec.runtime.mlstm_int as mlstm_int
import edgec.runtime.sim_int as sim_int
from edgec.hls.toolchain import HLS_INCLUDE_DIR, ap_types_dir, compile_program
from edgec.ir import Graph, Node, Op, Value
from edgec.numerics.fixed import quantize_multiplier, requant, saturate
from edgec.numerics.hadamard import hadamard_base, hadamard_transform_int, plan_hadamard
from edgec.numerics.lut import build_interp_lut, build_lut, lookup
from edgec.runtime.float_ref import sigmoid, silu
from edgec.runtime.int_ops import int_matmul, rmsnorm_int, signed_multiplier
from edgec.runtime.sim_int import IntSimulator, MlstmConstants, ScanConstants

from helpers import run_kernel as run

V, D, K, N, E, KT, NS, HD, HK, HM = 40, 64, 48, 36, 24, 4, 16, 90, 12, 3
NH, DH, QH, DQK, DV, KB, NI = 3, 16, 2, 8, 12, 10, 600  # head norm, mLSTM cell, interpolated table
RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kernels") / "kernel_driver"
    return compile_program([Path(__file__).parent / "cpp" / "kernel_driver.cpp"], out,
                           [HLS_INCLUDE_DIR, ap_types_dir()])


def multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    return quantize_multiplier(np.asarray(reals, dtype=np.float64))


def test_embed(driver, tmp_path):
    table = RNG.integers(-127, 128, (V, D))
    table[3] = 0
    table[5] = 127  # extreme row
    m, shift = multipliers(RNG.uniform(1e-3, 2e4, V))
    tokens = np.array([0, 3, 5, V - 1, 7, 7, 12, 1])
    got = run(driver, tmp_path, "embed", table, m, shift, [24], tokens).reshape(8, D)
    want = requant(table[tokens], m[tokens][:, None], shift[tokens][:, None], 24)
    assert np.array_equal(got, want)


def test_rmsnorm(driver, tmp_path):
    x = RNG.integers(-(1 << 21), 1 << 21, (8, D))
    x[1] = 0  # all zero: rms clamps to 1
    x[2] = (1 << 23) - 1  # saturated residual
    x[3, :] = RNG.integers(-3, 4, D)  # tiny values: rms of a few codes
    m, shift = multipliers(1 / 0.03)
    got = run(driver, tmp_path, "rmsnorm", [4000, m, shift], x).reshape(8, D)
    assert np.array_equal(got, rmsnorm_int(x, 4000, m, shift))


@pytest.mark.parametrize("bits", [8, 24, 0, -8])  # -8: int8 output without a bias
def test_linear(driver, tmp_path, bits):
    x = RNG.integers(-128, 128, K)
    x[:4] = [-128, 127, -128, 127]
    w = RNG.integers(-127, 128, (N, K))
    w[0] = 127
    bias = RNG.integers(-(1 << 20), 1 << 20, N)
    m, shift = multipliers(RNG.uniform(1e-6, 1e-2, N))
    got = run(driver, tmp_path, "linear", x, w, bias, m, shift, [bits])
    acc = int_matmul(x, w) + (bias if bits >= 0 else 0)
    assert np.array_equal(got, requant(acc, m, shift, abs(bits)) if bits else acc)


def test_conv1d_step_three_steps(driver, tmp_path):
    state = RNG.integers(-128, 128, (E, KT - 1))
    taps = RNG.integers(-127, 128, (E, KT))
    bias = RNG.integers(-5000, 5000, E)
    m, shift = multipliers(RNG.uniform(1e-3, 0.1, E))
    xs = RNG.integers(-128, 128, (3, E))
    got = run(driver, tmp_path, "conv1d_step", state, taps, bias, m, shift, xs)
    want, s = [], state.copy()
    for x in xs:
        window = np.concatenate([s, x[:, None]], axis=1)
        want.append(requant((window * taps).sum(1) + bias, m, shift, 8))
        s = window[:, 1:]
    assert np.array_equal(got, np.concatenate([*want, s.reshape(-1)]))


@pytest.mark.parametrize("fn", [silu, sigmoid])
def test_lut_every_code(driver, tmp_path, fn):
    table = build_lut(fn, 0.05, 1e-4, 16)
    codes = np.arange(-128, 128)
    assert np.array_equal(run(driver, tmp_path, "lut", table, codes), lookup(table, codes))


def test_scan_step_against_simulator_update(driver, tmp_path):
    a = -np.exp(RNG.uniform(0, 3, (E, NS))) / math.log(2) * 3e-6  # A * log2(e) * s_dt
    a_frac = 19 - math.floor(math.log2(np.abs(a).max()))
    d_m, d_shift = signed_multiplier(RNG.normal(0, 1, E) * 1e-2)
    d_m[0], d_shift[0] = 0, 0  # D = 0 on one channel
    k = ScanConstants(a_frac, np.rint(np.ldexp(a, a_frac)).astype(np.int64), *multipliers(3e-5),
                      *multipliers(2e-4), d_m, d_shift, 16)
    h = RNG.integers(-(1 << 30), 1 << 30, (E, NS))
    h[0, 0], h[1, 1] = (1 << 31) - 1, -(1 << 31)  # saturated state
    steps = [(RNG.integers(-128, 128, E), RNG.integers(0, 1 << 23, E), RNG.integers(-128, 128, NS),
              RNG.integers(-128, 128, NS)) for _ in range(3)]
    steps[1][1][:] = 0  # dt = 0: no decay, no input
    got = run(driver, tmp_path, "scan_step", h, k.a_q, [k.a_frac, k.bu_m, k.bu_shift, k.y_m, k.y_shift],
              k.d_m, k.d_shift, [k.y_bits], *[p for s in steps for p in s])
    want, state = [], h[None]
    sim = IntSimulator.__new__(IntSimulator)
    for u, dt, b, c in steps:
        y, state = sim._scan_update(k, u[None], dt[None], b[None], c[None], state)
        want.append(y[0])
    assert np.array_equal(got, np.concatenate([*want, state.reshape(-1)]))


def test_hadamard_with_padding(driver, tmp_path):
    plan = plan_hadamard(HD)
    assert (plan.k, plan.m) == (HK, HM) and plan.pad == 6  # 90 -> 96 = 12 * 2^3: three butterfly stages
    x = RNG.integers(-(1 << 30), 1 << 30, HD)
    m, shift = multipliers(1e-9)
    got = run(driver, tmp_path, "hadamard", hadamard_base(HK), [m, shift], x)
    assert np.array_equal(got, requant(hadamard_transform_int(x, plan), m, shift, 8))


def test_mul_and_residual_add(driver, tmp_path):
    a = RNG.integers(-(1 << 15), 1 << 15, D)
    b = RNG.integers(-(1 << 15), 1 << 15, D)
    a[:2], b[:2] = [-(1 << 15), (1 << 15) - 1], [-(1 << 15), (1 << 15) - 1]
    m, shift = multipliers(1e-7)
    got = run(driver, tmp_path, "mul_add", [m, shift], a, b).reshape(3, D)
    assert np.array_equal(got[0], requant(a * b, m, shift, 8))
    assert np.array_equal(got[1], a * b)
    assert np.array_equal(got[2], saturate(requant(a, m, shift, 32) + b, 24))


def simulator(node: Node, consts: dict, **qm) -> IntSimulator:
    """An IntSimulator over a stub model: the handler of ``node`` runs on the constants given."""
    sim = IntSimulator.__new__(IntSimulator)
    sim.qm = SimpleNamespace(**({"scales": {}, "bits": {}, "state_scales": {}, "graphs": {}} | qm))
    sim._const = {(node.name, key): value for key, value in consts.items()}
    return sim


def test_header_constants_match_the_simulator():
    code = (HLS_INCLUDE_DIR / "edgec_kernels.h").read_text()
    header = {name: int(v) for name, v in re.findall(r"static const int (\w+) = (\d+);", code)}
    assert header == {"INV_BITS": int_ops.INV_BITS, "NORM_BITS": sim_int.NORM_BITS,
                      "LOG_FRAC_BITS": mlstm_int.LOG_FRAC_BITS, "DEN_BITS": mlstm_int.DEN_BITS}
    names = re.search(r"struct mlstm_constants \{\s*int64_t ([^;]*);", code).group(1).replace(" ", "").split(",")
    assert names == [f.name for f in fields(MlstmConstants) if f.name != "logf"]


def test_interp_lut_softcap(driver, tmp_path):
    knots = build_interp_lut(lambda t: 30 * np.tanh(t / 30), 2e-3, 16, 1e-3, 16, KB)
    x = np.concatenate([[-(1 << 15), (1 << 15) - 1, 0, -1, 63, 64, 65], RNG.integers(-(1 << 15), 1 << 15, NI - 7)])
    node = Node(Op.SOFTCAP, ("x",), ("y",), attrs={"cap": 30.0}, name="cap")
    sim = simulator(node, {"knots": knots}, bits={"x": 16, "y": 16})
    got = run(driver, tmp_path, "interp_lut", [16], knots, x)
    assert np.array_equal(got, sim.op_softcap(node, x))


def test_head_layernorm(driver, tmp_path):
    x = RNG.integers(-(1 << 31), 1 << 31, (4, NH * DH))
    x[1] = 0  # all zero: the rms clamps to 1
    x[2, :DH] = 7  # a constant head centres to zero
    x[3] = RNG.integers(-3, 4, NH * DH)  # tiny values: no block shift
    m, shift = signed_multiplier(RNG.uniform(-1.5, 1.5, NH * DH) / 5e-4)
    m[0], shift[0] = 0, 0  # a zero gain
    node = Node(Op.HEAD_LAYERNORM, ("h",), ("hn",), attrs={"heads": NH, "eps": 1e-6}, name="norm")
    eps_q = 123456789
    sim = simulator(node, {"inv": (m.reshape(NH, DH), shift.reshape(NH, DH)), "eps": eps_q}, bits={"hn": 16})
    got = run(driver, tmp_path, "head_layernorm", [eps_q, 16], m, shift, x).reshape(4, -1)
    assert np.array_equal(got, sim.op_head_layernorm(node, x))


def mlstm_node_and_constants(eps: float = 1e-6, s_out: float = 1e-7) -> tuple[Node, MlstmConstants]:
    """An mLSTM step node and constants built by MlstmConstants.build from plausible scales."""
    names = ("q", "k", "v", "i", "f", "C", "n", "m")
    node = Node(Op.MLSTM_STEP, names, ("h", "C_out", "n_out", "m_out"), attrs={"heads": QH, "eps": eps}, name="cell")
    qm = SimpleNamespace(
        scales={"q": 0.03, "k": 0.02, "v": 0.04, "i": 15 / 32767, "f": 15 / 32767, "h": s_out},
        state_scales={"cell/C": 2e-8, "cell/n": 1e-8}, bits={"f": 16, "h": 32},
        graphs={"prefill": Graph("prefill", [], {"q": Value("q", ("B", "L", QH * DQK))}, [], [])})
    return node, MlstmConstants.build(qm, node)


@pytest.mark.parametrize("eps", [1e-6, 1e-30])  # 1e-30: a degenerate eps, the denominator below its unit
def test_mlstm_step_three_steps(driver, tmp_path, eps):
    node, kc = mlstm_node_and_constants(eps)
    c = RNG.integers(-(1 << 31), 1 << 31, (1, QH, DQK, DV))
    c[0, 0, 0, :2] = [(1 << 31) - 1, -(1 << 31)]  # saturated state
    n = RNG.integers(-(1 << 31), 1 << 31, (1, QH, DQK)) >> RNG.integers(0, 31, (1, QH, DQK))
    n[0, 0] = 0  # with a large m, head 0 keeps q.n = 0: the denominator is the floor 2^(log_inv_qn - m) + eps
    m = np.array([[45 << 20, -(1 << 24)]])
    steps = [(RNG.integers(-128, 128, (1, QH * DQK)), RNG.integers(-128, 128, (1, QH * DQK)),
              RNG.integers(-128, 128, (1, QH * DV)), RNG.integers(-(1 << 15), 1 << 15, (1, QH)),
              RNG.integers(-(1 << 15), 1 << 15, (1, QH))) for _ in range(3)]
    steps[1][3][:] = (1 << 15) - 1  # the input gate at its cap: the stabilizer jumps
    steps[2][0][:] = 0  # q = 0: the denominator is the floor exp(-m) + eps
    scalars = [int(getattr(kc, f.name)) for f in fields(kc) if f.name != "logf"]
    got = run(driver, tmp_path, "mlstm_step", scalars, kc.logf, c, n, m, *[p for st in steps for p in st])
    sim = simulator(node, {"cell": kc})
    want, state = [], (c, n, m)
    for q, k, v, i, f in steps:
        h, *state = sim.op_mlstm_step(node, q, k, v, i, f, *state)
        want.append(h)
    assert np.array_equal(got, np.concatenate([np.ravel(a) for a in (*want, *state)]))
    assert np.abs(want[0][0, :DV]).min() > 0  # head 0's first output did not vanish (degenerate eps: shifted up)
