"""`edgec build --target fpga` on Mamba-2: C simulation bit-exact with the int simulator (the bundled mamba2-tiny and
a random-init model, both 2 groups), the SSD state on chip or streamed from DRAM, the new kernels (ssd_step, the
grouped block-floating-point RMSNorm) against their simulator handlers, and the estimate by hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hostile import run_cli

import edgec
from edgec.frontends.hf_checkpoint import from_torch
from edgec.frontends.mamba2_spec import Mamba2Spec
from edgec.hls.toolchain import HLS_INCLUDE_DIR, ap_types_dir, compile_program
from edgec.ir import Node, Op
from edgec.numerics.fixed import quantize_multiplier
from edgec.runtime.sim_int import IntSimulator, norm_bits
from edgec.runtime.ssd_int import SsdConstants
from edgec.targets.fpga import memory
from edgec.targets.fpga.build import build_fpga
from edgec.targets.fpga.costs import CONST_BYTES, NORM_SCALAR_CYCLES, PIPELINE_DEPTH, SSD_DEPTH, SSD_HEAD_CYCLES
from edgec.targets.fpga.devices import get_device
from edgec.targets.fpga.estimate import estimate, format_estimate, step_graph
from edgec.targets.fpga.verify import verify_fpga

from conftest import make_hf_mamba2
from helpers import quantize_bundled
from helpers import run_kernel as run

SH, SG, SP, SN, STEPS, ND, NG, NROWS = 6, 2, 5, 8, 4, 64, 4, 6  # tests/cpp/mamba2_kernel_driver.cpp
RNG = np.random.default_rng(13)
#: state-spaces/mamba2-2.7b: hidden 2560, 64 layers, expand 2 (inner 5120), 80 heads of 64, state 128, 1 group
MAMBA2_2P7B = {"model_type": "mamba2", "vocab_size": 50288, "hidden_size": 2560, "state_size": 128,
               "num_hidden_layers": 64, "num_heads": 80, "head_dim": 64, "n_groups": 1, "expand": 2, "conv_kernel": 4}


@pytest.fixture(scope="module")
def bundled_qm():
    return quantize_bundled("mamba2-tiny")[1]


def _random_qm(seed: int, **sizes):
    model = from_torch(make_hf_mamba2(seed, **sizes))
    return edgec.quantize(model, [np.random.default_rng(seed).integers(0, model.spec.vocab_size, (2, 64))])


def _where(report: dict) -> dict[str, str]:
    return {s["kind"]: s["where"] for s in report["estimate"]["state"]}


@pytest.mark.parametrize("which", ["bundled", "random_groups2"])
def test_csim_is_bit_exact_on_128_tokens(tmp_path, bundled_qm, which):
    qm = bundled_qm if which == "bundled" else _random_qm(51, n_groups=2, num_heads=8, head_dim=16, state_size=16)
    assert qm.spec.n_groups == 2
    report = build_fpga(qm, tmp_path / "prj", "zcu102", tokens=128)
    csim = report["csim"]
    assert csim["bit_exact"] and csim["tokens"] == 128
    assert csim["logits_equal"] == csim["logits_total"] == 128 * qm.spec.vocab_size
    assert report["estimate"]["fits"] and _where(report) == {"ssm": "BRAM", "conv": "BRAM"}
    top = (tmp_path / "prj" / "firmware" / "edgec_top.cpp").read_text()
    assert "edgec::ssd_step<" in top and "edgec::rmsnorm_groups<" in top and "edgec::rmsnorm<" in top
    assert "#define EDGEC_STATE_WORDS 0" in (tmp_path / "prj" / "firmware" / "edgec_top.h").read_text()


def test_ssd_state_streamed_from_dram_is_bit_exact_and_verifies(tmp_path, bundled_qm, monkeypatch):
    monkeypatch.setattr(memory, "ONCHIP_BUDGET", 0.0)  # the size rule then sends every SSD state to DRAM
    report = build_fpga(bundled_qm, tmp_path / "prj", "zcu102", tokens=32)
    assert report["csim"]["bit_exact"] and report["csim"]["logits_equal"] == 32 * 256
    assert _where(report) == {"ssm": "DRAM", "conv": "BRAM"}
    words = 4 * 8 * 32 * 16  # 4 layers x [8 heads, head_dim 32, state 16]
    assert report["estimate"]["state_traffic_bytes"] == 2 * 4 * words
    top = (tmp_path / "prj" / "firmware" / "edgec_top.cpp").read_text()
    assert f"int32_t state[{words}]" in top and "port = state" in top
    monkeypatch.undo()
    res = verify_fpga(tmp_path / "prj")
    assert res["logits_equal"] == res["logits_total"] == 32 * 256


def test_cli_build_on_a_mamba2_qdir(tmp_path, bundled_qm):
    edgec.save_qdir(bundled_qm, tmp_path / "q")
    out = run_cli("build", tmp_path / "q", "--target", "fpga", "-o", tmp_path / "fpga", "--tokens", "16")
    assert out.code == 0, out.err
    assert "csim: 4096/4096 logits bit-exact over 16 tokens" in out.out and "state ssm 4 x [8, 32, 16]" in out.out


# ---- the kernels against their simulator handlers --------------------------------------------------

@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mamba2_kernels") / "mamba2_kernel_driver"
    return compile_program([Path(__file__).parent / "cpp" / "mamba2_kernel_driver.cpp"], out,
                           [HLS_INCLUDE_DIR, ap_types_dir()])


def simulator(node: Node, consts: dict, **qm) -> IntSimulator:
    """An IntSimulator over a stub model: the handler of ``node`` runs on the constants given."""
    sim = IntSimulator.__new__(IntSimulator)
    sim.qm = SimpleNamespace(**({"scales": {}, "bits": {}, "state_scales": {}, "graphs": {}} | qm))
    sim._const = {(node.name, key): value for key, value in consts.items()}
    return sim


def ssd_constants(node: Node, s_h: float, s_y: float, dt_max: float = float("inf")) -> SsdConstants:
    a_log, d, bias = np.log(RNG.uniform(1, 16, SH)), RNG.normal(size=SH), RNG.uniform(-6, 1, SH)
    d[0] = 0.0  # D = 0 on one head
    qm = SimpleNamespace(scales={"x": 0.02, "dt": 0.05, "B": 0.015, "C": 0.01, "y": s_y}, bits={"dt": 8, "y": 16},
                         state_scales={"ssd": s_h}, fparams={"a": a_log, "d": d, "b": bias})
    node = Node(node.op, node.inputs, node.outputs, node.weights, node.attrs | {"dt_max": dt_max}, node.name)
    return SsdConstants.build(qm, node)


@pytest.mark.parametrize("case", ["random", "extreme", "clamped_dt"])
def test_ssd_step_against_the_simulator(driver, tmp_path, case):
    """Four tokens of the kernel against op_ssd_step (state carried): random codes; extreme ones (every dt code's
    end, x, B, C at +-127/-128, a saturated state, a state scale so small that the update saturates); a clamped dt."""
    node = Node(Op.SSD_STEP, ("x", "dt", "B", "C", "h"), ("y", "h_out"), {"A_log": "a", "D": "d", "dt_bias": "b"},
                {"heads": SH, "groups": SG, "dt_min": 0.0, "dt_max": float("inf")}, "ssd")
    s_h = 1e-9 if case == "extreme" else 1e-7
    k = ssd_constants(node, s_h, 2e-5 if case == "extreme" else 2e-3, 0.3 if case == "clamped_dt" else float("inf"))
    h = RNG.integers(-(1 << 31), 1 << 31, (1, SH, SP, SN)) >> RNG.integers(0, 20, (1, SH, SP, SN))
    steps = [(RNG.integers(-128, 128, (1, SH * SP)), RNG.integers(-128, 128, (1, SH)),
              RNG.integers(-128, 128, (1, SG * SN)), RNG.integers(-128, 128, (1, SG * SN))) for _ in range(STEPS)]
    if case == "extreme":
        h[0, 0, 0, :2], h[0, 1, 1, :2] = [(1 << 31) - 1, -(1 << 31)], [-(1 << 31), (1 << 31) - 1]
        for t, (x, dt, b, c) in enumerate(steps):
            x[:] = [-128, -128, 127, 127][t]  # two tokens down to -2^31, two back up to 2^31 - 1
            dt[:] = 127  # the largest dt: the strongest decay and input
            dt[0, -1] = -128  # the last head at the smallest dt code
            b[:], c[:] = 127, [-128, 127][t // 2]
    sim = simulator(node, {"ssd": k})
    got = run(driver, tmp_path, "ssd_step", h, k.dt_q, k.decay, k.bu_m, k.bu_shift, [k.y_m, k.y_shift], k.d_m,
              k.d_shift, [k.y_bits], *[p for s in steps for p in s])
    want, state, states = [], h, []
    for x, dt, b, c in steps:
        y, state = sim.op_ssd_step(node, x, dt, b, c, state)
        want.append(y)
        states.append(state)
    assert np.array_equal(got, np.concatenate([np.ravel(a) for a in (*want, state)]))
    if case == "extreme":  # the state and y saturated on the way
        assert (np.stack(states) == (1 << 31) - 1).any() and (np.stack(states) == -(1 << 31)).any()
        assert np.abs(np.concatenate(want)).max() >= (1 << 15) - 1


@pytest.mark.parametrize("wide", [True, False])
def test_grouped_rmsnorm_against_the_simulator(driver, tmp_path, wide):
    """The grouped norm of a wide product (block floating point per group) and of stored 24-bit codes, on rows
    whose groups differ in magnitude: zero groups, +-2^30 products, a few codes, one huge and one tiny group."""
    node = Node(Op.RMSNORM, ("p",), ("n",), {}, {"eps": 1e-5, "groups": NG}, "norm")
    top = 1 << 30 if wide else 1 << 23
    x = RNG.integers(-top, top, (NROWS, ND)) >> RNG.integers(0, 12, (NROWS, 1))
    x[1] = 0  # every group zero: the rms clamps to 1
    x[2, :ND // NG] = top - 1
    x[2, ND // NG:2 * ND // NG] = -top
    x[3] = RNG.integers(-3, 4, ND)  # tiny values: no block shift
    x[4, :ND // NG] = RNG.integers(-top, top, ND // NG)
    x[4, ND // NG:] = RNG.integers(-2, 3, ND - ND // NG)
    m, shift = quantize_multiplier(1 / 1e-4)
    eps_q = min(round(1e-5 / (2e-7 if wide else 1e-4) ** 2), 1 << (60 if wide else 40))
    bits = {"n": 16} if wide else {"n": 16, "p": 24}
    sim = simulator(node, {"inv": (m, shift), "eps": eps_q}, scales={"p": 2e-7, "n": 1e-4}, bits=bits)
    width = norm_bits(ND // NG)
    got = run(driver, tmp_path, "rmsnorm_groups", [eps_q, m, shift, width, 16, int(wide)], x).reshape(NROWS, ND)
    assert np.array_equal(got, sim.op_rmsnorm(node, x))


# ---- the estimate -----------------------------------------------------------------------------------

def test_step_graph_of_a_spec_is_the_quantized_step_graph(bundled_qm):
    """The spec-only estimate sees the graph the build emits: the gated norm's output rotated before out_proj."""
    graph, quantized = step_graph(bundled_qm.spec), bundled_qm.graphs["step"]
    assert [(n.op, n.name, n.inputs, n.outputs) for n in graph.nodes] == \
           [(n.op, n.name, n.inputs, n.outputs) for n in quantized.nodes]


def test_estimate_mamba2_tiny_by_hand(bundled_qm):
    """mamba2-tiny (D 128, 4 layers, inner 256 = 8 heads of 32, state 16, 2 groups, conv 4, V 256, tied head) at
    P = 64, L = 16, depth 8: cycles and DRAM bytes of the new stages, the SSD state on chip."""
    e = estimate(bundled_qm.spec, get_device("zcu102"), parallelism=64, lanes=16)
    layers, heads, hp, n, inner = 4, 8, 32, 16, 256
    assert e.stage_cycles["ssd"] == layers * (heads * hp * (n // 16) + SSD_DEPTH + heads * SSD_HEAD_CYCLES) == 2368
    norm = 2 * (128 // 16 + PIPELINE_DEPTH) + NORM_SCALAR_CYCLES  # the residual norms: 2 passes, 1 group
    gated = 3 * (inner // 16 + PIPELINE_DEPTH) + 2 * NORM_SCALAR_CYCLES  # max, shift and sum of squares, scale
    assert e.stage_cycles["rmsnorm"] == layers * (norm + gated)
    assert e.stage_bytes["ssd"] == layers * CONST_BYTES * 6 * heads  # dt_q and decay entries, bu and D requants
    conv_dim = inner + 2 * 2 * n
    assert e.stage_bytes["conv1d"] == layers * (conv_dim * 4 + CONST_BYTES * (3 * conv_dim + 3 * 256))  # + 3 SiLUs
    assert e.stage_bytes["in_proj"] == layers * (128 * (inner + conv_dim + heads) + CONST_BYTES * 2 * 584)
    assert e.state_traffic_bytes == 0 and {s.kind: s.where for s in e.states} == {"ssm": "BRAM", "conv": "BRAM"}
    assert e.state_bytes == layers * (heads * hp * n * 4 + conv_dim * 3) and e.fits
    assert e.stage_cycles == estimate(bundled_qm.spec, get_device("zcu102"), 64, 16, bundled_qm.graphs["step"],
                                      bundled_qm.bits).stage_cycles


def test_mamba2_2p7b_state_placement():
    """At mamba2-2.7b's widths the SSD state of one layer, [80, 64, 128] int32 = 2.6 MB, stays on a ZCU102 (4.1 MB
    of BRAM, no URAM) within the on-chip budget; all 64 layers (168 MB) are streamed from DRAM, read and written
    back every token."""
    one = Mamba2Spec.from_config(MAMBA2_2P7B | {"num_hidden_layers": 1})
    e = estimate(one, get_device("zcu102"))
    ssm = 80 * 64 * 128 * 4
    text = format_estimate(e)
    assert e.fits and {s.kind: s.where for s in e.states} == {"ssm": "BRAM", "conv": "BRAM"}, text
    assert e.state_traffic_bytes == 0 and e.state_bytes == ssm + 5376 * 3  # + the conv window, [5376, 3] int8
    assert "state ssm 1 x [80, 64, 128] x 4 B = 2.62 MB in BRAM" in text
    full = estimate(Mamba2Spec.from_config(MAMBA2_2P7B), get_device("zcu102"))
    assert {s.kind: s.where for s in full.states}["ssm"] == "DRAM" and full.state_traffic_bytes == 2 * 64 * ssm
    assert "state ssm 64 x [80, 64, 128] x 4 B = 167.77 MB in DRAM" in format_estimate(full)


@pytest.mark.slow  # minutes on 2 busy cores: quantizing a 40M-parameter layer, 128 tokens through both simulations
def test_csim_is_bit_exact_at_mamba2_2p7b_widths(tmp_path):
    """One layer of mamba2-2.7b's widths (hidden 2560, 80 heads of 64, state 128, 1 group), vocab 512."""
    sizes = {k: v for k, v in MAMBA2_2P7B.items() if k not in ("model_type", "vocab_size", "num_hidden_layers")}
    qm = _random_qm(61, vocab_size=512, num_hidden_layers=1, chunk_size=64, **sizes)
    report = build_fpga(qm, tmp_path / "prj", "zcu102", tokens=128)
    csim = report["csim"]
    assert csim["bit_exact"] and csim["logits_equal"] == 128 * 512
