"""The int and qdq simulators: prefill == step, integer-only datapath, QDIR round trip."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.frontends.hf_checkpoint import from_torch
from edgec.passes.pipeline import quantize
from edgec.passes.quantize import QuantOptions
from edgec.qdir import load_qdir, save_qdir
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.sim_int import IntSimulator
from edgec.runtime.sim_qdq import QdqSimulator, quantize_linear

from conftest import make_hf_mamba
from helpers import decode, rel_err

RNG = np.random.default_rng(7)
CALIB = [RNG.integers(0, 256, (4, 64))]
TOKENS = RNG.integers(0, 256, (2, 40))


@pytest.fixture(scope="module", params=[128, 192], ids=["d128", "d192"])
def quantized(request):
    model = from_torch(make_hf_mamba(4, intermediate_size=request.param))
    return model, quantize(model, CALIB)


def test_int_prefill_equals_step_by_step_bit_exactly(quantized):
    _, qm = quantized
    sim = IntSimulator(qm)
    prefill = sim.run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"]
    step = decode(sim, qm.graphs["step"], qm.spec, TOKENS, np.int64)
    assert prefill.dtype == np.int64 and np.array_equal(prefill, step)


def test_int_datapath_holds_only_integers(quantized):
    _, qm = quantized
    env = IntSimulator(qm).run(qm.graphs["prefill"], {"tokens": TOKENS}, keep_all=True)
    assert all(np.issubdtype(v.dtype, np.integer) for v in env.values())
    for name, bits in {"l0.y": 16, "h1": 24, "h2": 24}.items():  # calibrated with headroom
        top = 1 << (bits - 1)
        assert -top <= env[name].min() and env[name].max() < top, name
        assert np.mean(np.abs(env[name]) >= top - 1) == 0, f"{name} saturates"  # headroom above calibration
        assert np.abs(env[name]).max() >= top >> 7, f"{name} wastes more than 6 of its {bits} bits"
    assert env["l0.dt"].max() < 1 << 23 and np.median(env["l0.dt"]) >= 1 << 10  # small dt keeps 10+ bits


def test_qdq_prefill_equals_step_and_inputs_are_on_the_int8_grid(quantized):
    _, qm = quantized
    sim = QdqSimulator(qm)
    prefill = sim.run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"]
    step = decode(sim, qm.graphs["step"], qm.spec, TOKENS)
    assert rel_err(step, prefill) < 1e-5
    env = sim.run(qm.graphs["prefill"], {"tokens": TOKENS}, keep_all=True)
    for name in sim.q_points:
        codes = env[name] / np.float32(qm.scales[name])
        assert np.abs(codes - np.rint(codes)).max() < 1e-3 and np.abs(codes).max() <= 128, name


def test_both_profiles_track_the_float_model(quantized):
    model, qm = quantized
    ref = FloatInterpreter(model.weights).run(model.graphs["prefill"], {"tokens": TOKENS})["logits"]
    isim = IntSimulator(qm)
    got_int = isim.run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"] * isim.logits_scale()
    got_qdq = QdqSimulator(qm).run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"]
    assert rel_err(got_int, ref) < 0.05 and rel_err(got_qdq, ref) < 0.05


def test_qdir_round_trip_is_bit_exact_and_deterministic(quantized, tmp_path):
    model, qm = quantized
    save_qdir(qm, tmp_path / "a")
    save_qdir(quantize(model, CALIB), tmp_path / "b")
    for name in ("weights.safetensors", "graphs.json", "scales.json", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    loaded = load_qdir(tmp_path / "a")
    a = IntSimulator(qm).run(qm.graphs["step"], {"tokens": TOKENS[:, 0], **_zeros(qm)})["logits"]
    b = IntSimulator(loaded).run(loaded.graphs["step"], {"tokens": TOKENS[:, 0], **_zeros(loaded)})["logits"]
    assert np.array_equal(a, b)


def test_qdir_tampering_is_detected(quantized, tmp_path):
    from edgec.errors import ArtifactError

    save_qdir(quantized[1], tmp_path / "q")
    (tmp_path / "q" / "scales.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"scales\.json: does not match its hash"):
        load_qdir(tmp_path / "q")


def test_quantize_linear_is_onnx_semantics():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 200.0, -200.0], np.float32)
    assert quantize_linear(x, 1.0).tolist() == [0, 2, 2, 0, -2, 127, -128]


def test_passes_can_be_switched_off(quantized):
    model, _ = quantized
    qm = quantize(model, CALIB, QuantOptions(hadamard=False, percentile=False, per_channel=False))
    sim = IntSimulator(qm)
    prefill = sim.run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"]
    assert np.array_equal(prefill, decode(sim, qm.graphs["step"], qm.spec, TOKENS, np.int64))


def _zeros(qm):
    from helpers import zero_state

    return zero_state(qm.graphs["step"], TOKENS.shape[0], np.int64)


def test_residual_sqnr_report(quantized):
    from edgec.runtime.compare import residual_sqnr

    model, qm = quantized
    report = residual_sqnr(model, qm, TOKENS[:1])
    assert list(report) == ["h0", "h1", "h2", "logits"]
    assert all(row["int"] > 20 and row["qdq"] > 20 for row in report.values()), report


def test_unseen_and_zero_embedding_rows_stay_representable(tmp_path):
    import torch

    hf = make_hf_mamba(5)
    with torch.no_grad():
        hf.backbone.embeddings.weight[7] = 0.0  # an all-zero row
        hf.backbone.embeddings.weight[200] *= 50.0  # a row far outside anything calibration sees
    model = from_torch(hf)
    qm = quantize(model, [np.full((1, 32), 65)])  # calibration never touches rows 7 or 200
    tokens = np.array([[7, 200, 7, 200, 65]])
    got = IntSimulator(qm).run(qm.graphs["prefill"], {"tokens": tokens}, keep_all=True)
    assert not got["h0"][0, 0].any()
    table = next(n for n in qm.graphs["prefill"] if n.op.value == "embed").weights["weight"]
    row = qm.qweights[table][200] * np.float64(qm.wscales[table][200])  # the int8 row, dequantized
    assert rel_err(got["h0"][0, 1] * qm.scales["h0"], row) < 1e-5  # carried into the residual exactly


def test_qdir_round_trip_over_a_sequence(quantized, tmp_path):
    _, qm = quantized
    loaded = load_qdir(save_qdir(qm, tmp_path / "q"))
    a = IntSimulator(qm).run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"]
    b = IntSimulator(loaded).run(loaded.graphs["prefill"], {"tokens": TOKENS})["logits"]
    c = QdqSimulator(loaded).run(loaded.graphs["prefill"], {"tokens": TOKENS})["logits"]
    assert np.array_equal(a, b)
    assert np.array_equal(c, QdqSimulator(qm).run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"])


def test_int_path_at_mamba_2_8b_widths():
    """One layer with mamba-2.8b's widths: Hadamard over 5120, RMSNorm over 2560, 160-rank dt."""
    hf = make_hf_mamba(6, hidden_size=2560, intermediate_size=5120, time_step_rank=160, num_hidden_layers=1,
                       initializer_range=0.02)  # the default 0.1 explodes at this width (|y| ~ 4e5)
    model = from_torch(hf)
    tokens = np.random.default_rng(1).integers(0, 256, (1, 12))
    qm = quantize(model, [np.random.default_rng(2).integers(0, 256, (2, 32))])
    sim = IntSimulator(qm)
    prefill = sim.run(qm.graphs["prefill"], {"tokens": tokens})["logits"]
    assert np.array_equal(prefill, decode(sim, qm.graphs["step"], qm.spec, tokens, np.int64))
    ref = FloatInterpreter(model.weights).run(model.graphs["prefill"], {"tokens": tokens})["logits"]
    assert rel_err(prefill * sim.logits_scale(), ref) < 0.05


def test_lowered_constants_are_complete_persisted_and_used(quantized, tmp_path):
    from edgec.runtime.sim_int import export_constants, import_constants

    _, qm = quantized
    names = set(qm.int_constants)
    assert {"layers.0.conv_act/lut", "layers.0.scan/scan/a_q", "layers.0.in_proj/out/0", "embed/rows/1"} <= names
    assert export_constants(import_constants(qm.int_constants)).keys() == names
    sim = IntSimulator(qm)
    sim.run(qm.graphs["step"], {"tokens": TOKENS[:, 0], **_zeros(qm)})
    assert set(sim.export_constants()) == names  # the step graph needs nothing the prefill run missed
    loaded = load_qdir(save_qdir(qm, tmp_path / "q"))
    assert all(np.array_equal(loaded.int_constants[k], v) for k, v in qm.int_constants.items())
    loaded.int_constants["layers.0.conv_act/lut"] = np.zeros(256, np.int64)  # the stored table is what runs
    a = IntSimulator(qm).run(qm.graphs["prefill"], {"tokens": TOKENS})["logits"]
    assert not np.array_equal(a, IntSimulator(loaded).run(loaded.graphs["prefill"], {"tokens": TOKENS})["logits"])
