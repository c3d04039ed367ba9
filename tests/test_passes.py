"""Passes keep the float function; the recipe's structure and scales are what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.frontends.hf_checkpoint import from_torch
from edgec.ir import Op
from edgec.passes.base import run_passes
from edgec.passes.calibrate import calibrate
from edgec.passes.fold_norm import fold_norm_gains
from edgec.passes.hadamard import rotate_gated_products
from edgec.passes.pipeline import quantize
from edgec.passes.quantize import QuantOptions
from edgec.runtime.float_ref import FloatInterpreter

from conftest import make_hf_mamba
from helpers import decode, rel_err

TOKENS = np.random.default_rng(3).integers(0, 256, (2, 48))


def _logits(model, graph="prefill"):
    interp = FloatInterpreter(model.weights, dtype=np.float64)
    if graph == "step":
        return decode(interp, model.graphs["step"], model.spec, TOKENS, np.float64)
    return interp.run(model.graphs["prefill"], {"tokens": TOKENS})["logits"]


def test_fold_norm_is_exact_and_strips_gains(tiny_hf):
    model = from_torch(tiny_hf)
    for name in model.weights:  # non-trivial gains, so folding has something to do
        if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
            model.weights[name] = np.linspace(0.5, 1.5, model.weights.shape(name)[0], dtype=np.float32)
    folded = fold_norm_gains(model)
    assert folded.modified
    assert all(not n.weights for n in folded.model.graphs["prefill"] if n.op is Op.RMSNORM)
    assert rel_err(_logits(folded.model), _logits(model)) < 1e-6


@pytest.mark.parametrize("d_inner", [128, 192, 100])  # 2^7, 12 * 2^4, and one that must be padded
def test_hadamard_rotation_is_exact_for_prefill_and_step(d_inner):
    model = from_torch(make_hf_mamba(2, intermediate_size=d_inner))
    result = rotate_gated_products(model)
    rotated = result.model
    had = [n for n in rotated.graphs["prefill"] if n.op is Op.HADAMARD]
    assert len(had) == model.spec.num_hidden_layers
    plan = had[0].attrs["plan"]
    assert plan.padded_dim >= d_inner and plan.padded_dim == plan.k * 2**plan.m
    assert (len(result.notes) > 0) == (plan.pad > 0)
    if plan.pad:
        assert "padded to" in result.notes[0]
    for graph in ("prefill", "step"):
        assert rel_err(_logits(rotated, graph), _logits(model, graph)) < 1e-6


def test_pass_failure_names_the_pass_and_history(tiny_hf):
    from edgec.errors import PassError

    def broken(model):
        raise RuntimeError("boom")

    with pytest.raises(PassError, match=r"pass broken failed: boom \(passes run before it: fold_norm\)"):
        run_passes(from_torch(tiny_hf), [("fold_norm", fold_norm_gains), ("broken", broken)])


def test_calibration_records_segments_and_percentile(tiny_hf):
    model = from_torch(tiny_hf)
    stats = calibrate(model, [TOKENS], alpha=0.999)
    assert stats.absmax["l0.xz"].shape == (256,)
    assert stats.quantile["l0.u"] < stats.absmax["l0.u"].max()
    assert set(stats.state_absmax) == {"layers.0.scan", "layers.1.scan"}
    assert stats.tokens == TOKENS.size


def test_quantize_segments_per_channel_and_clipping(tiny_hf):
    model = from_torch(tiny_hf)
    qm = quantize(model, [TOKENS])
    s = qm.scales
    assert s["l0.x"] != s["l0.z"] and len({s["l0.dtr"], s["l0.B"], s["l0.C"]}) == 3
    w = qm.qweights["backbone.layers.0.mixer.in_proj.weight@gain_folded"]
    assert w.dtype == np.int8 and np.abs(w.astype(int)).max() == 127 and w.min() >= -127
    ws = qm.wscales["backbone.layers.0.mixer.in_proj.weight@gain_folded"]
    assert ws.shape == (256,) and len(np.unique(ws)) > 1
    flat = quantize(model, [TOKENS], QuantOptions(per_channel=False, percentile=False, hadamard=False))
    assert len(np.unique(flat.wscales["backbone.layers.0.mixer.in_proj.weight@gain_folded"])) == 1
    assert flat.scales["l0.u"] > s["l0.u"]  # without percentile clipping the range is the full max
    assert not any(n.op is Op.HADAMARD for n in flat.graphs["prefill"])
    assert "l0.yg" in flat.scales and "l0.yg_rot" in s


def test_verifier_names_the_broken_node(tiny_hf):
    from dataclasses import replace

    from edgec.errors import PassError
    from edgec.ir.verify import verify_graph

    model = from_torch(tiny_hf)
    graph = model.graphs["prefill"].copy()
    verify_graph(graph, model.weights)
    node = graph.find("layers.1.in_proj")
    graph.replace_node(node, replace(node, inputs=("l1.nowhere",)))
    with pytest.raises(PassError, match=r"node layers.1.in_proj .*%l1.nowhere is used before it is defined"):
        verify_graph(graph)
    graph.replace_node(graph.find("layers.1.in_proj"), replace(node, weights={"weight": "missing"}))
    with pytest.raises(PassError, match="weight @missing is not in the weight store"):
        verify_graph(graph, model.weights)
