"""The qdq step graph as ONNX: ONNX Runtime agrees with the qdq simulator."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import edgec
from edgec.targets.onnx.export import OPSET, export_step
from edgec.targets.onnx.verify import compare_with_simulator
from edgec.zoo import BUNDLED

from conftest import make_hf_mamba
from helpers import check_first_layers_twins


@pytest.fixture(scope="module")
def bundled():
    model = edgec.load_checkpoint(BUNDLED["mamba-tiny"].folder)
    ids = np.frombuffer(BUNDLED["mamba-tiny"].calib.read_bytes(), np.uint8).astype(np.int64)
    qm = edgec.quantize(model, [ids[: 8 * 256].reshape(8, 256)])
    return qm, *export_step(qm)


def test_graph_follows_tensorrt_qdq_rules(bundled):
    _, model, quantized = bundled
    assert model.opset_import[0].version == OPSET == 17
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Loop", "Scan", "CumSum", "NonZero", "If"}
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert len(node.input) == 3, node.name  # explicit int8 zero point
            assert inits[node.input[2]].data_type == onnx.TensorProto.INT8
            assert not onnx.numpy_helper.to_array(inits[node.input[2]]).any()
            assert inits[node.input[1]].data_type == onnx.TensorProto.FLOAT
            activation = node.input[0] not in inits
            assert not activation or onnx.numpy_helper.to_array(inits[node.input[1]]).ndim == 0, node.name
    # every MatMul reads a Q/DQ'd activation and a per-channel (axis 1) int8 weight
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in (n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in producers):
        weight_dq = producers[node.input[1]]
        if weight_dq.op_type == "DequantizeLinear":
            assert {a.name: a.i for a in weight_dq.attribute}["axis"] == 1
    assert len(quantized) == 4 * 5 + 1  # per layer: norm, x, u, dtr, yh; plus the final norm


def test_ort_matches_qdq_simulator_on_bundled_model(bundled):
    qm, model, quantized = bundled
    tokens = np.frombuffer(BUNDLED["mamba-tiny"].eval.read_bytes()[:48], np.uint8).astype(np.int64)
    free = compare_with_simulator(model, quantized, qm, tokens, teacher_forcing=False)
    assert free.max_lsb <= 1 and free.logits_max_rel < 1e-4, free
    optimized = compare_with_simulator(model, quantized, qm, tokens, optimize=True)
    assert optimized.logits_max_rel < 1e-3, optimized  # ORT's fused QDQ kernels: documented tolerance


def test_ort_matches_on_a_padded_hadamard_model():
    hf = make_hf_mamba(12, intermediate_size=100, initializer_range=0.02)  # 100 -> 104 = 52 * 2
    model = edgec.from_torch(hf)
    qm = edgec.quantize(model, [np.random.default_rng(0).integers(0, 256, (4, 64))])
    onnx_model, quantized = export_step(qm)
    result = compare_with_simulator(onnx_model, quantized, qm, np.random.default_rng(1).integers(0, 256, 24))
    assert result.max_lsb <= 1 and result.logits_max_rel < 1e-4, result


def test_ort_qdq_fusion_bug_reproducer_and_workaround():
    """ORT's QDQ fusion mis-scales a per-channel Q/DQ MatMul; edgec's runner disables that fusion."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgec.targets.onnx.verify import ort_session

    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (64, 48)).astype(np.int8)
    ws = rng.uniform(0.001, 0.01, 48).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(ws, "ws"),
             numpy_helper.from_array(np.zeros(48, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(0, np.int8), "xz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["W", "ws", "wz"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rng.normal(0, 2, (1, 64)).astype(np.float32)
    ref = (np.clip(np.rint(x / 0.05), -128, 127) * 0.05) @ (w.astype(np.float32) * ws)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    fused = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rel = np.abs(fused.run(None, {"x": x})[0] - ref).max() / np.abs(ref).max()
    ours = np.abs(ort_session(model, optimize=True).run(None, {"x": x})[0] - ref).max() / np.abs(ref).max()
    assert ours < 1e-5
    if rel < 1e-5:
        pytest.skip(f"onnxruntime {ort.__version__} no longer has the QDQ fusion bug; drop the workaround")


def test_cpu_build_verify_and_run(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True, timeout=600)

    out = tmp_path / "cpu"
    res = cli("build", "--target", "cpu", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "within 0 LSB" in res.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["reference"]["max_lsb"] == 0 and report["optimized"]["logits_max_rel"] < 1e-4
    assert cli("verify", str(out)).returncode == 0
    polygraphy = str(Path(sys.executable).with_name("polygraphy"))  # the console script beside this python
    poly = subprocess.run([polygraphy, "run", "step.onnx", "--onnxrt", "--load-inputs",
                           "golden_inputs.json", "--load-outputs", "golden_outputs.json", "--rtol", "1e-4", "--atol",
                           "1e-4"], cwd=out, capture_output=True, text=True, timeout=300)
    assert poly.returncode == 0 and "Passed: 4/4 iterations" in poly.stdout + poly.stderr, poly.stdout[-2000:]
    res = cli("run", str(out), "--prompt", "The ", "--max-new-tokens", "40")
    assert res.returncode == 0 and res.stdout.startswith("The ") and len(res.stdout.strip()) >= 40
    sampled = cli("run", str(out), "--prompt", "The ", "--max-new-tokens", "20", "--temperature", "0.8", "--seed", "3")
    assert sampled.returncode == 0
    model = onnx.load(out / "step.onnx")  # tampering is caught by verify
    model.graph.initializer[0].raw_data = bytes(len(model.graph.initializer[0].raw_data))
    onnx.save(model, out / "step.onnx")
    res = cli("verify", str(out))
    assert res.returncode == 2 and "step.onnx: does not match its hash in manifest.json" in res.stderr
    res = cli("run", str(tmp_path), "--prompt", "x")
    assert res.returncode == 2 and "no step.onnx" in res.stderr


def test_perplexity_through_step_onnx_matches_the_qdq_simulator(bundled):
    from edgec.data import load_tokens, windows
    from edgec.evaluate import perplexities
    from edgec.targets.onnx.verify import onnx_perplexity

    qm, model, _ = bundled
    batches = windows(load_tokens(BUNDLED["mamba-tiny"].eval, 256), 512, 64)
    onnx_ppl = onnx_perplexity(model, batches)
    sim_ppl = perplexities(None, qm, batches, ("qdq",))["qdq"]
    assert abs(onnx_ppl / sim_ppl - 1) < 0.005, (onnx_ppl, sim_ppl)


def test_ort_within_one_lsb_at_mamba_130m_widths():
    hf = make_hf_mamba(13, vocab_size=512, hidden_size=768, intermediate_size=1536, time_step_rank=48,
                       initializer_range=0.02)
    model = edgec.from_torch(hf)
    qm = edgec.quantize(model, [np.random.default_rng(0).integers(0, 512, (4, 128))])
    onnx_model, quantized = export_step(qm)
    tokens = np.random.default_rng(1).integers(0, 512, 32)
    pinned = compare_with_simulator(onnx_model, quantized, qm, tokens, pin_int8=True)
    assert pinned.max_lsb <= 1 and pinned.off_by_one < 1e-3 * pinned.elements, pinned
    assert pinned.logits_max_rel < 1e-4, pinned


def test_prefill_chunks_equal_step_by_step_decoding(bundled):
    from edgec.targets.onnx.prefill import export_prefill
    from edgec.targets.onnx.verify import compare_prefill

    qm, step_model, _ = bundled
    prefill_model, _ = export_prefill(qm, chunk=16)
    assert not {n.op_type for n in prefill_model.graph.node} & {"Loop", "Scan", "CumSum"}
    tokens = np.frombuffer(BUNDLED["mamba-tiny"].eval.read_bytes()[:64], np.uint8).astype(np.int64)
    agreement = compare_prefill(step_model, prefill_model, tokens)
    # Same math in another float order (closed-form scan): a few int8 codes may flip by one step.
    assert agreement.tokens == 64 and agreement.logits_max_rel < 2e-2, agreement
    assert agreement.argmax_agreement >= 0.98 and agreement.state_max_rel < 1e-4, agreement


def test_twins_cut_to_the_first_layers_keep_their_state_bit_for_bit(bundled):
    tokens = np.frombuffer(BUNDLED["mamba-tiny"].eval.read_bytes()[:32], np.uint8)
    check_first_layers_twins(bundled[0], tokens, chunk=16)


def test_cpu_graph_uses_integer_matmul_and_is_exact(bundled):
    qm = bundled[0]
    model, quantized = export_step(qm, integer_matmul=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") == 4 * 4 + 1  # in_proj, x_proj, dt_proj, out_proj per layer; lm_head
    tokens = np.random.default_rng(2).integers(0, 256, 24)
    exact = compare_with_simulator(model, quantized, qm, tokens, teacher_forcing=False)
    assert exact.max_lsb == 0 and exact.logits_max_rel < 1e-6, exact  # int32 accumulation, as the simulator


def test_prefill_and_step_give_the_same_perplexity(bundled):
    from edgec.data import load_tokens, windows
    from edgec.targets.onnx.prefill import export_prefill
    from edgec.targets.onnx.verify import onnx_perplexity

    qm, step_model, _ = bundled
    batches = windows(load_tokens(BUNDLED["mamba-tiny"].eval, 256), 512, 64)
    prefill_ppl = onnx_perplexity(export_prefill(qm, chunk=16)[0], batches)
    assert abs(prefill_ppl / onnx_perplexity(step_model, batches) - 1) < 1e-3


def test_folding_weight_dequantize_changes_no_bit(bundled, tmp_path, monkeypatch):
    """The exact reference folds each constant weight's DequantizeLinear once (fold_weight_dequantize, the weights
    handed to ONNX Runtime from memory) and runs with prepacking off: every output and every int8 tensor equals the
    graph as written, bit for bit; graphs that dequantize the same codes share one folded array; above FOLD_BUDGET
    nothing is folded and the int8 weights are handed over from memory, shared too."""
    import edgec.targets.onnx.verify as verify

    _, model, quantized = bundled
    folds = verify.WeightFolds()
    reference = verify.exact_reference(model, folds)
    assert isinstance(reference, verify.FoldedGraph) and reference.folded
    folded = reference.proto
    assert sum(n.op_type == "DequantizeLinear" for n in folded.graph.node) < \
        sum(n.op_type == "DequantizeLinear" for n in model.graph.node)
    assert not any(n.op_type == "DequantizeLinear" and n.input[0].endswith(".int8") for n in folded.graph.node)
    assert folded.ByteSize() < model.ByteSize() / 4  # the folded weights are not in the proto
    again = verify.exact_reference(model, folds)
    assert all(again.weights[k] is v for k, v in reference.weights.items())
    rescaled = onnx.ModelProto.FromString(model.SerializeToString())  # the same names, every scale doubled
    for init in rescaled.graph.initializer:
        if init.name.endswith(".scale"):
            init.CopyFrom(onnx.numpy_helper.from_array(2 * onnx.numpy_helper.to_array(init), init.name))
    other = verify.exact_reference(rescaled, folds)
    assert all(np.array_equal(other.weights[k], 2 * v) for k, v in reference.weights.items())
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim][1:] for i in model.graph.input}
    state = {name: np.random.default_rng(1).normal(0, 1, [1, *shape]).astype(np.float32)
             for name, shape in shapes.items() if name != "tokens"}
    feeds = {"tokens": np.array([65], np.int64), **state}
    once = verify.ort_session(reference, extra_outputs=quantized).run(None, feeds)
    unfolded = verify.ort_session(model, extra_outputs=quantized).run(None, feeds)
    for got, want in zip(once, unfolded, strict=True):
        assert np.array_equal(got, want)
    monkeypatch.setattr(verify, "FOLD_BUDGET", 1000)  # above the budget: the int8 weights handed over as they are
    assert verify.fold_weight_dequantize(model) is model
    external = verify.exact_reference(model, folds)
    assert isinstance(external, verify.FoldedGraph) and not external.folded
    assert external.proto.ByteSize() < model.ByteSize()
    assert all(len(i.raw_data) < verify.HANDOVER_MIN_BYTES for i in external.proto.graph.initializer)
    assert np.dtype(np.int8) in {v.dtype for v in external.weights.values()}
    assert verify.exact_reference(model, folds).weights.keys() == external.weights.keys()
    assert all(verify.exact_reference(model, folds).weights[k] is v for k, v in external.weights.items())
    for got, want in zip(verify.ort_session(external, extra_outputs=quantized).run(None, feeds), unfolded, strict=True):
        assert np.array_equal(got, want)
    plain = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "plain",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 512])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 512])],
        [onnx.numpy_helper.from_array(np.ones((512, 512), np.float32), "w")]))
    assert verify.exact_reference(plain) is plain  # nothing to dequantize: as it is, whatever the budget


def test_verification_above_the_fold_budget_agrees_the_same(bundled, tmp_path, monkeypatch):
    """Above FOLD_BUDGET (a multi-GB model) the references run on the int8 weights handed over from memory, without
    the arena, one session at a time: the same agreement, bit for bit, as the folded references; the optimized run
    is skipped and said so."""
    import edgec.targets.onnx.build as build
    import edgec.targets.onnx.verify as verify

    qm = bundled[0]
    folded = build.export_verified(qm, tmp_path, tokens=4)
    assert not list(tmp_path.iterdir())  # below the budget the graphs stay in memory
    monkeypatch.setattr(verify, "FOLD_BUDGET", 1000)
    external = build.export_verified(qm, tmp_path, tokens=4)
    # written at once, their weights held once (in the arrays ONNX Runtime reads), and the same graphs
    assert external[:2] == (tmp_path / "step.onnx", tmp_path / "prefill.onnx")
    for saved, kept in zip(external[:2], folded[:2], strict=True):
        assert onnx.load(saved).SerializeToString() == kept.SerializeToString()
    folded, external = folded[3], external[3]
    assert external["optimized"] is None and folded["optimized"]["logits_max_rel"] < 1e-4
    for key in ("reference", "free_running", "prefill", "prefill_float"):
        assert external[key] == folded[key], key
    assert "optimized: not run above the fold budget" in build.summarize(external, tmp_path)


def test_a_wrong_prefill_fails_the_build(bundled, tmp_path, monkeypatch):
    """A prefill graph whose first layer computes something else (its out_proj scales 1% off) is refused by the
    float twins' check of the first layers' state; the same build with the right graph passes."""
    import edgec.targets.onnx.build as build
    from edgec.errors import VerificationError

    qm = bundled[0]
    report = build.export_verified(qm, tmp_path, tokens=4)[3]
    assert report["prefill_float"]["state_max_rel"] <= build.PREFILL_RTOL
    assert report["prefill_float"]["logits_max_rel"] is None  # the twins are cut to the first layers

    right = build.export_prefill_float

    def wrong(*args, **kwargs):
        model = right(*args, **kwargs)
        for init in model.graph.initializer:
            if init.name.startswith("backbone.layers.0.mixer.out_proj") and init.name.endswith(".scale"):
                init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 1.01, init.name))
                return model
        raise AssertionError("no out_proj scale in layer 0")

    monkeypatch.setattr(build, "export_prefill_float", wrong)
    with pytest.raises(VerificationError, match="state of the first 2 layers off by"):
        build.export_verified(qm, tmp_path, tokens=4)
