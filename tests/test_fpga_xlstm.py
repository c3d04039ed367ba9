"""`edgec build --target fpga` on xLSTM: C simulation bit-exact with the int simulator, where the mLSTM state
lives (on chip or streamed from DRAM), the estimate of the new stages, and `edgec verify` on the build."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hostile import run_cli

import edgec
from edgec.frontends.hf_checkpoint import from_torch
from edgec.frontends.xlstm_spec import XlstmSpec
from edgec.targets.fpga import memory
from edgec.targets.fpga.blob import read_blob
from edgec.targets.fpga.build import build_fpga, golden_tokens
from edgec.targets.fpga.csim import run_csim
from edgec.targets.fpga.devices import DEVICES, get_device
from edgec.targets.fpga.emit import emit_design
from edgec.targets.fpga.estimate import CONST_BYTES, estimate, format_estimate, step_graph
from edgec.targets.fpga.verify import verify_fpga
from edgec.zoo import BUNDLED

from conftest import make_hf_xlstm
from helpers import quantize_bundled

ENTRY = BUNDLED["xlstm-tiny"]
XLSTM_7B = {"model_type": "xlstm", "vocab_size": 50304, "hidden_size": 4096, "num_hidden_layers": 32, "num_heads": 8,
            "gate_soft_cap": 15.0, "output_logit_soft_cap": 30.0}  # NX-AI/xLSTM-7b: dqk 256, dv 512, ffn 10944


@pytest.fixture(scope="module")
def bundled_qm():
    return quantize_bundled("xlstm-tiny")[1]


def _random_qm(seed: int, **sizes):
    model = from_torch(make_hf_xlstm(seed, **sizes))
    return edgec.quantize(model, [np.random.default_rng(seed).integers(0, model.spec.vocab_size, (2, 64))])


def _where(report: dict) -> dict[str, str]:
    return {s["kind"]: s["where"] for s in report["estimate"]["state"]}


@pytest.mark.parametrize("which", ["bundled", "random_h128_4heads", "alt_fused_weights"])
def test_csim_is_bit_exact_on_128_tokens(tmp_path, bundled_qm, which):
    if which == "bundled":
        qm = bundled_qm
    elif which == "random_h128_4heads":
        qm = _random_qm(41, hidden_size=128, num_heads=4)
    else:  # the second trained checkpoint: fused projections (SPLITs), 2 heads of 24 / 48, a 12 x 8 rotation
        model = edgec.load_checkpoint(Path(__file__).parent / "assets" / "xlstm_alt")
        qm = edgec.quantize(model, [np.random.default_rng(0).integers(0, 256, (4, 128))])
    report = build_fpga(qm, tmp_path / "prj", "zcu102", tokens=128)
    csim = report["csim"]
    assert csim["bit_exact"] and csim["tokens"] == 128
    assert csim["logits_equal"] == csim["logits_total"] == 128 * qm.spec.vocab_size
    assert report["estimate"]["fits"] and _where(report)["C"] == "BRAM"  # small: on chip
    assert "#define EDGEC_STATE_WORDS 0" in (tmp_path / "prj" / "firmware" / "edgec_top.h").read_text()


@pytest.mark.slow  # 2.5-5 min on 2 busy cores: quantizing 185M parameters, 128 tokens through both simulations
def test_csim_is_bit_exact_at_xlstm_7b_widths(tmp_path):
    """One block of xLSTM-7B's widths (hidden 4096, 8 heads of dqk 256 and dv 512, ffn 10944 padded to 11008
    for the rotation), vocab 512: its C (4.2 MB) does not fit the ZCU102 and is streamed from DRAM."""
    qm = _random_qm(31, vocab_size=512, hidden_size=4096, num_heads=8, num_hidden_layers=1)
    report = build_fpga(qm, tmp_path / "prj", "zcu102", tokens=128)
    csim = report["csim"]
    assert csim["bit_exact"] and csim["logits_equal"] == 128 * 512
    assert _where(report) == {"C": "DRAM", "n": "BRAM", "m": "BRAM"}
    assert report["estimate"]["state_traffic_bytes"] == 2 * 8 * 256 * 512 * 4


def test_c_streamed_from_dram_is_bit_exact_and_verifies(tmp_path, bundled_qm, monkeypatch):
    monkeypatch.setattr(memory, "ONCHIP_BUDGET", 0.0)  # the size rule then sends every C matrix to DRAM
    report = build_fpga(bundled_qm, tmp_path / "prj", "kv260", tokens=32)
    assert report["csim"]["bit_exact"] and report["csim"]["logits_equal"] == 32 * 256
    assert _where(report) == {"C": "DRAM", "n": "URAM", "m": "URAM"}
    words = 3 * 4 * 16 * 32  # 3 blocks x [4 heads, dqk 16, dv 32]
    assert report["estimate"]["state_traffic_bytes"] == 2 * 4 * words
    top = (tmp_path / "prj" / "firmware" / "edgec_top.cpp").read_text()
    assert f"int32_t state[{words}]" in top and "port = state" in top and "state + 2048" in top
    readme = (tmp_path / "prj" / "README.md").read_text()
    assert "b2.C: int32_t [4, 16, 32] in DRAM (state port, int32 offset 4096)" in readme
    monkeypatch.undo()
    res = verify_fpga(tmp_path / "prj")  # edgec verify recompiles the project's testbench, state port included
    assert res["logits_equal"] == res["logits_total"] == 32 * 256


def test_trace_names_the_cell_that_differs(tmp_path, bundled_qm):
    build_fpga(bundled_qm, tmp_path / "prj", csim=False, tokens=4)
    design = emit_design(bundled_qm)
    weights = tmp_path / "prj" / "data" / "weights.bin"
    _, w64 = read_blob(weights)
    _, offset, size = design.blob.offsets["blocks.1.mlstm/cell/logf"]
    w64 = w64.copy()
    w64[offset:offset + size] -= 1 << 20  # the forget gate one octave lower in block 1
    raw = bytearray(weights.read_bytes())
    raw[len(raw) - 8 * len(w64):] = w64.astype("<i8").tobytes()
    weights.write_bytes(bytes(raw))
    result = run_csim(tmp_path / "prj", bundled_qm, golden_tokens(256, 4), design.traced, trace=True)
    assert not result.bit_exact
    assert re.match(r"token \d: %b1\.h of node blocks\.1\.mlstm \(mlstm_step\)", result.first_difference)


def test_cli_build_and_verify_xlstm_tiny(tmp_path):
    out = run_cli("build", "xlstm-tiny", "--target", "fpga", "-o", tmp_path / "fpga")
    assert out.code == 0, out.err
    assert "csim: 32768/32768 logits bit-exact over 128 tokens" in out.out and "state C 3 x [4, 16, 32]" in out.out
    res = run_cli("verify", tmp_path / "fpga")
    assert res.code == 0, res.err
    assert "bit-exact with the golden logits: 32768/32768" in res.out
    golden = np.fromfile(tmp_path / "fpga" / "data" / "golden_logits.bin", "<i8")
    assert json.loads((tmp_path / "fpga" / "report.json").read_text())["csim"]["logits_total"] == golden.size


# ---- the estimate ------------------------------------------------------------------------------------

def test_step_graph_of_a_spec_is_the_quantized_step_graph(bundled_qm):
    """The spec-only estimate sees the graph the build emits: same nodes, same rotations, same widths."""
    graph, quantized = step_graph(bundled_qm.spec), bundled_qm.graphs["step"]
    assert [(n.op, n.name, n.inputs, n.outputs) for n in graph.nodes] == \
           [(n.op, n.name, n.inputs, n.outputs) for n in quantized.nodes]
    assert {k: v.shape for k, v in graph.values.items()} == {k: v.shape for k, v in quantized.values.items()}


def test_estimate_xlstm_tiny_by_hand(bundled_qm):
    """xlstm-tiny (D 128, 3 blocks, 4 heads of dqk 16 and dv 32, ffn 384, V 256) at P = 64, L = 16, depth 8."""
    e = estimate(bundled_qm.spec, get_device("zcu102"), parallelism=64, lanes=16)
    per_head = (16 // 16 + 8) + (16 * (32 // 16) + 16) + (32 // 16 + 8) + 80  # n, C sweep, h, scalar work
    assert e.stage_cycles["mlstm"] == 3 * 4 * per_head == 1764
    assert e.stage_cycles["head_layernorm"] == 3 * (4 * (128 // 16 + 8) + 4 * 100)
    assert e.stage_cycles["rmsnorm"] == 3 * 2 * (2 * (128 // 16 + 8) + 100)  # two norms per block
    assert e.stage_cycles["q"] == 3 * ((64 // 2) * (128 // 32) + 8)  # 64 rows x 128 columns
    knots = 1025
    assert e.stage_bytes["mlstm"] == 3 * CONST_BYTES * knots  # the log-sigmoid knots
    assert e.stage_bytes["igate_preact"] == 3 * (4 * 128 + CONST_BYTES * (3 * 4 + knots))  # m, shift, bias; cap
    assert e.stage_bytes["lm_head"] == 256 * 128 + CONST_BYTES * (2 * 256 + knots)  # 16-bit logits, soft cap
    assert e.stage_bytes["head_layernorm"] == 3 * CONST_BYTES * 2 * 128  # per-channel multipliers
    assert e.bytes_per_token == sum(e.stage_bytes.values()) and e.state_traffic_bytes == 0
    assert {s.kind: s.where for s in e.states} == {"C": "BRAM", "n": "BRAM", "m": "BRAM"}
    assert e.state_bytes == 3 * 4 * (16 * 32 + 16 + 1) * 4 and e.fits
    assert e.stage_cycles == estimate(bundled_qm.spec, get_device("zcu102"), 64, 16, bundled_qm.graphs["step"],
                                      bundled_qm.bits).stage_cycles


def test_xlstm_7b_streams_c_from_dram_on_every_device():
    spec = XlstmSpec.from_config(XLSTM_7B)
    c_bytes = 32 * 8 * 256 * 512 * 4
    for device in DEVICES.values():
        e = estimate(spec, device)
        where = {s.kind: s.where for s in e.states}
        assert where["C"] == "DRAM" and where["n"] != "DRAM" and where["m"] != "DRAM", (device.name, where)
        assert e.dram_state_bytes == c_bytes and e.state_traffic_bytes == 2 * c_bytes
        assert e.stage_bytes["mlstm"] == 2 * c_bytes + 32 * CONST_BYTES * 1025
        assert e.bytes_per_token == e.int8_weight_bytes + e.const_bytes + e.state_traffic_bytes
        assert e.bound == "dram" and e.dram_states == {f"b{b}.C" for b in range(32)}
        text = format_estimate(e)
        assert "state C 32 x [8, 256, 512] x 4 B = 134.22 MB in DRAM" in text and "read and written back" in text
    one_block = XlstmSpec.from_config(XLSTM_7B | {"num_hidden_layers": 1})
    assert {s.kind: s.where for s in estimate(one_block, get_device("u250")).states}["C"] == "URAM"  # 4.2 MB fits
    assert {s.kind: s.where for s in estimate(one_block, get_device("zcu102")).states}["C"] == "DRAM"
