"""Mamba-2 as ONNX: step.onnx against the qdq simulator, prefill.onnx (the SSD's closed chunk form) against
step.onnx, the TensorRT lint, the Orin roofline, and the cpu / orin builds end to end (the bundled mamba2-tiny
and random-init Mamba-2 with 1 and 2 groups; the 2-group one with a finite dt_max, so that Clip has a max)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import edgec
from edgec.data import calibration_batches, model_tokens, windows
from edgec.frontends.mamba2_graph import build_graphs
from edgec.frontends.mamba2_spec import Mamba2Spec
from edgec.targets.onnx.build import LOGITS_RTOL
from edgec.targets.onnx.export import OPSET, dequantized_weights, export_step, export_step_float, fp32_layers
from edgec.targets.onnx.prefill import export_prefill, export_prefill_float
from edgec.targets.onnx.verify import compare_prefill, compare_with_simulator, onnx_perplexity
from edgec.targets.orin.jetpack import TRT_8_5, TRT_8_6, TRT_10_3
from edgec.targets.orin.lint import lint
from edgec.targets.orin.ranges import value_ranges
from edgec.targets.orin.roofline import decode_roofline, decode_traffic
from edgec.zoo import BUNDLED

from conftest import make_hf_mamba2
from helpers import check_first_layers_twins

ENTRY = BUNDLED["mamba2-tiny"]
MODELS = ["bundled", "groups1", "groups2"]
CHUNK = 16


def _quantized(which: str):
    if which == "bundled":
        model = edgec.load_checkpoint(ENTRY.folder)
        return edgec.quantize(model, calibration_batches(model, ENTRY.calib))
    groups = int(which[-1])
    limit = {} if groups == 1 else {"time_step_limit": (1e-3, 0.08)}  # a finite dt_max: Clip with both bounds
    model = edgec.from_torch(make_hf_mamba2(30 + groups, n_groups=groups, **limit))
    return edgec.quantize(model, [np.random.default_rng(0).integers(0, 256, (4, 128))])


@pytest.fixture(scope="module", params=MODELS)
def exported(request):
    """(quantized model, step.onnx, its int8 tensors, prefill.onnx) of each model."""
    qm = _quantized(request.param)
    step, quantized = export_step(qm)
    return qm, step, quantized, export_prefill(qm, chunk=CHUNK)[0]


@pytest.fixture(scope="module")
def eval_batches():
    tiny = edgec.load_checkpoint(ENTRY.folder)
    return windows(model_tokens(tiny, ENTRY.eval), 256, 32, 8192)


def test_graphs_follow_tensorrt_rules_and_lint_clean(exported):
    qm, step, quantized, prefill = exported
    assert step.opset_import[0].version == OPSET
    layers = qm.spec.num_hidden_layers
    for model in (step, prefill):
        ops = {n.op_type for n in model.graph.node}
        assert not ops & {"Loop", "Scan", "CumSum", "NonZero", "If", "Expand", "Tile"}
        for trt in (TRT_8_5, TRT_8_6, TRT_10_3):
            assert lint(model, trt) == [], trt
        clips = [n for n in model.graph.node if n.op_type == "Clip"]
        assert len(clips) == layers and all(len(n.input) == (2 if np.isinf(qm.spec.time_step_limit[1]) else 3)
                                            for n in clips)
        pinned = set(fp32_layers(model))  # the SSD (its state, exp of segment sums) stays fp32 under --fp16
        assert all(f"l{i}.y.hnew" in pinned for i in range(layers))
        ranges = value_ranges(model)  # dt through Clip: bounded, so exp(dt A) is in (0, 1]
        assert all(ranges[f"l{i}.y.dt"][0] >= 0 and ranges[f"l{i}.y.dt"][1] < 1e3 for i in range(layers))
    # per layer: in_proj's input, the conv's input, dt_raw, out_proj's input; then lm_head's input
    assert len(quantized) == 4 * layers + 1 and all(f"l{i}.dt_raw.q" in quantized for i in range(layers))
    seg = [n for n in prefill.graph.node if n.name == "l0.y.band"]
    assert seg and seg[0].op_type == "MatMul"  # segment sums by a constant band matrix


def test_step_onnx_within_one_lsb_of_the_qdq_simulator(exported):
    qm, step, quantized, _ = exported
    tokens = np.frombuffer(ENTRY.eval.read_bytes()[:32], np.uint8).astype(np.int64)
    cpu, cpu_quantized = export_step(qm, integer_matmul=True)  # MatMulInteger: int32 sums, as the simulator
    for model, names in ((step, quantized), (cpu, cpu_quantized)):
        pinned = compare_with_simulator(model, names, qm, tokens, pin_int8=True)
        assert pinned.max_lsb <= 1 and pinned.logits_max_rel < LOGITS_RTOL, pinned


def test_prefill_onnx_matches_step_onnx(exported):
    qm, step, _, prefill = exported
    tokens = np.frombuffer(ENTRY.eval.read_bytes()[:64], np.uint8).astype(np.int64)
    weights = dequantized_weights(qm)  # float twins: the closed form alone, no int8 code flipped by float order
    twins = compare_prefill(export_step_float(qm, weights), export_prefill_float(qm, weights, chunk=CHUNK), tokens)
    assert twins.tokens == 64 and twins.state_max_rel < 1e-5 and twins.logits_max_rel < 1e-5, twins
    unrolled = export_prefill_float(qm, weights, chunk=CHUNK, ssd_form="unrolled")  # the form bench_prefill weighs
    twins = compare_prefill(export_step_float(qm, weights), unrolled, tokens)
    assert twins.state_max_rel < 1e-5 and twins.logits_max_rel < 1e-5, twins
    agreement = compare_prefill(step, prefill, tokens)  # the int8 graphs, the state carried across 4 chunks
    assert agreement.argmax_agreement >= 0.95, agreement
    check_first_layers_twins(qm, tokens[:32], CHUNK, layers=1)  # the build's check, cut to its layers


def test_prefill_and_step_perplexity_agree_on_mamba2_tiny(eval_batches):
    """The issue's acceptance: prefill.onnx (chunk 64, the default) against step.onnx within 0.1%."""
    qm = _quantized("bundled")
    step = export_step(qm, integer_matmul=True)[0]
    prefill = export_prefill(qm, integer_matmul=True)[0]
    ratio = onnx_perplexity(prefill, eval_batches) / onnx_perplexity(step, eval_batches)
    assert abs(ratio - 1) < 1e-3, ratio


def test_roofline_counts_the_ssd_state():
    tiny = edgec.load_checkpoint(ENTRY.folder).spec
    big = Mamba2Spec(vocab_size=50288, hidden_size=2560, state_size=128, num_hidden_layers=64, num_heads=80,
                     head_dim=64, n_groups=1)  # mamba2-2.7b widths
    for spec in (tiny, big):
        h, p, n = spec.num_heads, spec.intermediate_size // spec.num_heads, spec.state_size
        traffic = decode_traffic(build_graphs(spec)["step"])
        conv = spec.conv_dim * (spec.conv_kernel - 1)
        assert traffic.state_bytes == 8 * spec.num_hidden_layers * (h * p * n + conv)  # fp32, read + written
        rows = decode_roofline(build_graphs(spec)["step"])
        assert all(1.0 < r["speedup"] <= 2.0 for r in rows)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True, timeout=900)


def test_cpu_and_orin_builds_from_a_qdir_verify_and_run(tmp_path):
    qdir, cpu, orin = tmp_path / "q", tmp_path / "cpu", tmp_path / "orin"
    assert _cli("quantize", "mamba2-tiny", "-o", str(qdir)).returncode == 0
    res = _cli("build", str(qdir), "--target", "cpu", "-o", str(cpu))
    assert res.returncode == 0, res.stderr
    assert "within 0 LSB" in res.stdout and "prefill.onnx vs step.onnx over 64 tokens" in res.stdout
    assert json.loads((cpu / "manifest.json").read_text())["state"]["l0.ssm_state"] == [8, 32, 16]
    assert _cli("verify", str(cpu)).returncode == 0
    res = _cli("run", str(cpu), "--prompt", "The ", "--max-new-tokens", "32")
    assert res.returncode == 0 and res.stdout.startswith("The ") and len(res.stdout) >= 32, res.stderr
    res = _cli("build", str(qdir), "--target", "orin", "--jetpack", "5", "--engine", "never", "-o", str(orin))
    assert res.returncode == 0, res.stderr
    assert "TensorRT 8.5 lint: 0 errors" in res.stdout
    script = (orin / "build_engine.sh").read_text()
    assert "--shapes=tokens:1,l0.conv_state:1x320x3,l0.ssm_state:1x8x32x16," in script
    assert "--precisionConstraints=obey" in script and "l0.y.dA:fp32" in script
    assert _cli("verify", str(orin)).returncode == 0
