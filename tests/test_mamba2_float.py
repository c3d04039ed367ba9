"""Mamba-2 (transformers' Mamba2ForCausalLM): the float interpreter against transformers' torch path.

Errors are max |edgec - transformers| / max |transformers| over the logits (helpers.rel_err).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hostile import assert_fails_cleanly, run_cli

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends.hf_checkpoint import from_torch, load_checkpoint
from edgec.frontends.mamba2_spec import Mamba2Spec, check_checkpoint
from edgec.frontends.validate import loads_json
from edgec.frontends.weights import WeightStore
from edgec.ir.serde import graph_from_json, graph_to_json
from edgec.ir.verify import verify_graph
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.ssd_float import ssd_sequence, ssd_step

from conftest import make_hf_mamba2
from helpers import decode, rel_err

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", params=[1, 2], ids=["groups1", "groups2"])
def saved(request, tmp_path_factory):
    """(transformers model, its save_pretrained folder): 2 layers, 8 heads of 16, state 16, chunk 8."""
    hf = make_hf_mamba2(request.param, n_groups=request.param)
    folder = tmp_path_factory.mktemp("mamba2") / f"groups{request.param}"
    hf.save_pretrained(folder, safe_serialization=True)
    return hf, folder


def _reference(hf, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return hf(torch.tensor(tokens)).logits.numpy()


def _prefill(model, tokens: np.ndarray, interp=None) -> np.ndarray:
    return (interp or FloatInterpreter(model.weights)).run(model.graphs["prefill"], {"tokens": tokens})["logits"]


def _with_attrs(graph, op_name: str, **attrs):
    """A copy of ``graph`` whose nodes named ``*op_name`` have ``attrs`` changed."""
    graph = graph.copy()
    graph.nodes = [dataclasses.replace(n, attrs={**n.attrs, **attrs}) if n.name.endswith(op_name) else n
                   for n in graph.nodes]
    return graph


def test_reference_is_transformers_torch_path():
    """No mamba_ssm / causal_conv1d kernel (CUDA-only) stands in for transformers' torch code (conftest blocks
    them before modeling_mamba2 is imported)."""
    from edgec.zoo.mamba2_torch_path import kernel_functions

    make_hf_mamba2(0)
    assert kernel_functions() == []


def test_prefill_and_decode_match_transformers(saved):
    """21 tokens = two chunks of 8 and a partial one; decoding runs the step graph token by token."""
    hf, folder = saved
    model = load_checkpoint(folder)
    for graph in model.graphs.values():
        verify_graph(graph, model.weights)
    tokens = np.random.default_rng(1).integers(0, 256, (2, 21))
    want = _reference(hf, tokens)
    prefill = _prefill(model, tokens)
    step = decode(FloatInterpreter(model.weights), model.graphs["step"], model.spec, tokens)
    assert rel_err(prefill, want) <= 1e-4
    assert rel_err(step, want) <= 1e-4
    assert rel_err(step, prefill) <= 1e-5


@pytest.mark.parametrize("length", [1, 7, 8, 21])
def test_chunk_length_does_not_change_the_prefill(saved, length):
    """Chunks of 1, 3, 8 or 64 tokens and the token-by-token form (calibration's) agree, in float64."""
    _, folder = saved
    model = load_checkpoint(folder)
    tokens = np.random.default_rng(length).integers(0, 256, (2, length))
    interp = FloatInterpreter(model.weights, np.float64)
    want = _prefill(model, tokens, interp)
    for chunk in (1, 3, 64):
        graph = _with_attrs(model.graphs["prefill"], ".ssd", chunk=chunk)
        assert rel_err(interp.run(graph, {"tokens": tokens})["logits"], want) <= 1e-12, chunk
    interp.stepwise_cells = True
    assert rel_err(_prefill(model, tokens, interp), want) <= 1e-12


def test_ssd_sequence_equals_the_recurrence():
    """The chunked SSD (any chunk, an entering state) against h' = exp(dt A) h + dt x B^T, y = C h' + D x."""
    rng = np.random.default_rng(0)
    batch, length, heads, p, groups, n = 2, 11, 6, 4, 3, 5
    x = rng.normal(size=(batch, length, heads, p))
    dt = rng.uniform(0.001, 0.5, (batch, length, heads))
    a = -rng.uniform(0.1, 4, heads)
    b, c = rng.normal(size=(2, batch, length, groups, n))
    d = rng.normal(size=heads)
    h0 = rng.normal(size=(batch, heads, p, n))
    h, ys = h0, []
    for t in range(length):
        y, h = ssd_step(x[:, t], dt[:, t], a, b[:, t], c[:, t], d, h)
        ys.append(y)
    for chunk in (1, 4, 11, 32):
        y, final = ssd_sequence(x, dt, a, b, c, d, chunk, h0)
        np.testing.assert_allclose(y, np.stack(ys, axis=1), rtol=0, atol=1e-12)
        np.testing.assert_allclose(final, h, rtol=0, atol=1e-12)


def test_live_module_equals_the_checkpoint_folder(saved):
    hf, folder = saved
    live, stored = from_torch(hf), load_checkpoint(folder)
    assert live.spec == stored.spec and live.spec.family == "mamba2"
    tokens = np.random.default_rng(2).integers(0, 256, (1, 13))
    np.testing.assert_array_equal(_prefill(live, tokens), _prefill(stored, tokens))


def test_graph_and_config_round_trip(saved):
    """to_config and graphs.json are strict JSON (dt_max = inf as {"__float__": "Infinity"}) and read back equal."""
    _, folder = saved
    model = load_checkpoint(folder)
    spec = model.spec
    assert spec.time_step_limit == (0.0, math.inf)
    assert Mamba2Spec.from_config(loads_json(json.dumps(spec.to_config()).encode(), "cfg")) == spec
    for graph in model.graphs.values():
        back = graph_from_json(loads_json(json.dumps(graph_to_json(graph)).encode(), "graphs.json"))
        assert str(back) == str(graph)
        assert [n.attrs for n in back.nodes] == [n.attrs for n in graph.nodes]
    step = model.graphs["step"]
    assert step.inputs == ["tokens", "l0.conv_state", "l0.ssm_state", "l1.conv_state", "l1.ssm_state"]
    assert str(step.values["l0.ssm_state"]) == "f32[B,8,16,16]"
    assert str(step.values["l0.conv_state"]) == f"f32[B,{128 + 2 * 16 * spec.n_groups},3]"


def test_time_step_limit_and_tied_embeddings(tmp_path):
    """A clamped dt (transformers clamps in its chunked path only; edgec in both) and a tied lm_head."""
    hf = make_hf_mamba2(3, time_step_limit=(0.02, 0.05), tie_word_embeddings=True, use_bias=True)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = load_checkpoint(tmp_path)
    assert model.spec.time_step_limit == (0.02, 0.05) and model.spec.lm_head_name == "backbone.embeddings.weight"
    assert "lm_head.weight" not in model.weights
    tokens = np.random.default_rng(3).integers(0, 256, (2, 19))
    prefill = _prefill(model, tokens)
    assert rel_err(prefill, _reference(hf, tokens)) <= 1e-4
    assert rel_err(decode(FloatInterpreter(model.weights), model.graphs["step"], model.spec, tokens), prefill) <= 1e-5
    unclamped = _with_attrs(model.graphs["prefill"], ".ssd", dt_min=0.0, dt_max=math.inf)
    assert rel_err(FloatInterpreter(model.weights).run(unclamped, {"tokens": tokens})["logits"], prefill) > 1e-3


def test_mamba2_2_7b_widths_one_layer(tmp_path):
    """mamba2-2.7b's widths (hidden 2560, 80 heads of 64, state 128, 1 group, vocabulary 50288, tied), one layer;
    chunks of 16 so that 37 tokens take two whole chunks and a partial one."""
    hf = make_hf_mamba2(4, vocab_size=50288, hidden_size=2560, expand=2, num_heads=80, head_dim=64, state_size=128,
                        n_groups=1, num_hidden_layers=1, chunk_size=16, tie_word_embeddings=True)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = load_checkpoint(tmp_path)
    assert (model.spec.intermediate_size, model.spec.conv_dim) == (5120, 5376)
    tokens = np.random.default_rng(4).integers(0, 50288, (1, 37))
    want = _reference(hf, tokens)
    assert rel_err(_prefill(model, tokens), want) <= 1e-4
    step = decode(FloatInterpreter(model.weights), model.graphs["step"], model.spec, tokens[:, :6])
    assert rel_err(step, want[:, :6]) <= 1e-4


@pytest.mark.parametrize(("change", "fragment"), [
    ({"n_groups": 3}, "num_heads 8 is not a multiple of n_groups 3"),
    ({"num_heads": 4}, "num_heads 4 x head_dim 16 = 64 is not expand 2 x hidden_size 64 = 128"),
    ({"time_step_limit": [0.1, 0.01]}, "time_step_limit [0.1, 0.01] is not [min, max]"),
    ({"rms_norm": False}, "rms_norm false is not supported"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
    ({"architectures": ["MambaForCausalLM"]}, "is not Mamba-2"),
    ({"state_size": 512}, "state_size 512"),
])
def test_unsupported_or_malformed_configs_are_one_line(saved, tmp_path, byte_text, change, fragment):
    hf, _ = saved
    folder = tmp_path / "ckpt"
    hf.save_pretrained(folder, safe_serialization=True)
    cfg = json.loads((folder / "config.json").read_text()) | change
    (folder / "config.json").write_text(json.dumps(cfg))
    assert_fails_cleanly(run_cli("quantize", folder, "--calib", byte_text, "-o", tmp_path / "q"),
                         str(folder / "config.json"), fragment)
    assert not (tmp_path / "q").exists()


def test_in_proj_with_a_gated_mlp_is_refused(saved):
    """mamba_ssm's d_ssm < d_inner puts a gated MLP's 2 * d_mlp rows in front of in_proj: named, not a bare shape."""
    _, folder = saved
    spec = load_checkpoint(folder).spec
    rows = sum(spec.in_proj_segments) + 2 * 32
    store = WeightStore({f"backbone.layers.{i}.mixer.in_proj.weight": np.zeros((rows, spec.hidden_size), np.float32)
                         for i in range(spec.num_hidden_layers)})
    with pytest.raises(UnsupportedModelError, match=r"64 more than z \| xBC \| dt .*d_mlp > 0\) is not supported"):
        check_checkpoint(spec, store, "ckpt")


@pytest.mark.parametrize("infinity", ["Infinity", '"Infinity"'])
def test_time_step_limit_as_older_transformers_wrote_it(saved, tmp_path, infinity):
    """transformers 4.x wrote [0.0, Infinity] (Python's json); some configs spell it "Infinity": both load, and the
    bare literal still refuses everywhere else."""
    hf, _ = saved
    folder = tmp_path / "ckpt"
    hf.save_pretrained(folder, safe_serialization=True)
    cfg = json.loads((folder / "config.json").read_text()) | {"time_step_limit": [0.0, "INF"]}
    text = json.dumps(cfg).replace('"INF"', infinity)
    (folder / "config.json").write_text(text)
    assert load_checkpoint(folder).spec.time_step_limit == (0.0, math.inf)
    (folder / "config.json").write_text(text.replace('"layer_norm_epsilon": 1e-05', '"layer_norm_epsilon": Infinity'))
    with pytest.raises(CheckpointError, match="layer_norm_epsilon Infinity is not a number"):
        load_checkpoint(folder)
