"""xLSTM (transformers' xLSTMForCausalLM): the float interpreter against transformers, prefill and decode."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import assert_fails_cleanly, run_cli

from edgec.frontends.hf_checkpoint import from_torch, load_checkpoint
from edgec.frontends.xlstm_graph import state_names
from edgec.ir.verify import verify_graph
from edgec.runtime.float_ref import FloatInterpreter

from conftest import make_hf_xlstm
from helpers import rel_err

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_xlstm():
    return make_hf_xlstm(0)


def _hf_decode(model, tokens: np.ndarray) -> np.ndarray:
    """transformers' cached decoding, one token at a time: logits [B, T, V]."""
    with torch.no_grad():
        out = model(torch.tensor(tokens[:, :1]), use_cache=True)
        logits = [out.logits[:, -1].numpy()]
        for t in range(1, tokens.shape[1]):
            out = model(torch.tensor(tokens[:, t:t + 1]), cache=out.cache, use_cache=True)
            logits.append(out.logits[:, -1].numpy())
    return np.stack(logits, axis=1)


def _prefill(model, tokens: np.ndarray) -> np.ndarray:
    return FloatInterpreter(model.weights).run(model.graphs["prefill"], {"tokens": tokens})["logits"]


def _edgec_decode(model, tokens: np.ndarray) -> np.ndarray:
    interp, spec = FloatInterpreter(model.weights), model.spec
    state = {}
    for b in range(spec.num_hidden_layers):
        for name, shape in zip(state_names(b), spec.state_shapes().values(), strict=True):
            state[name] = np.zeros((tokens.shape[0], *shape), np.float32)
    logits = []
    for t in range(tokens.shape[1]):
        out = interp.run(model.graphs["step"], {"tokens": tokens[:, t], **state})
        state = {k: out[k + "_out"] for k in state}
        logits.append(out["logits"])
    return np.stack(logits, axis=1)


@pytest.mark.parametrize("length", [1, 13, 16, 45])  # a single step, steps only, whole chunks, chunks + steps
def test_prefill_matches_transformers(tiny_xlstm, length):
    model = from_torch(tiny_xlstm)
    tokens = np.random.default_rng(length).integers(0, 256, (2, length))
    with torch.no_grad():
        want = tiny_xlstm(torch.tensor(tokens)).logits.numpy()
    assert rel_err(_prefill(model, tokens), want) <= 1e-4


def test_64_decode_steps_match_transformers(tiny_xlstm):
    model = from_torch(tiny_xlstm)
    tokens = np.random.default_rng(1).integers(0, 256, (2, 64))
    assert rel_err(_edgec_decode(model, tokens), _hf_decode(tiny_xlstm, tokens)) <= 1e-4


def test_both_branches_of_the_denominator_occur(tiny_xlstm):
    """The test model exercises max(|q.n|, exp(-m)) on both sides (REFERENCES.md: HF's init never does)."""
    from edgec.runtime.mlstm_stats import denominator_branches

    seen = denominator_branches(from_torch(tiny_xlstm), np.random.default_rng(2).integers(0, 256, (2, 32)))
    assert seen["q.n"] > 0 and seen["exp(-m)"] > 0, seen


def test_checkpoint_folder_equals_the_live_model(tiny_xlstm, tmp_path):
    tiny_xlstm.save_pretrained(tmp_path / "ckpt", safe_serialization=True)
    live, saved = from_torch(tiny_xlstm), load_checkpoint(tmp_path / "ckpt")
    assert saved.spec == live.spec
    tokens = np.random.default_rng(3).integers(0, 256, (1, 20))
    np.testing.assert_array_equal(_prefill(saved, tokens), _prefill(live, tokens))
    for graph in saved.graphs.values():
        verify_graph(graph, saved.weights)


def test_fused_weight_mode_gives_the_same_logits(tiny_xlstm, tmp_path):
    """weight_mode "fused" stores q|k|v|o, i|f and gate|up in one tensor each (transformers 5.24 cannot build it)."""
    from safetensors.numpy import save_file

    tiny_xlstm.save_pretrained(tmp_path / "single", safe_serialization=True)
    sd = {k: v.detach().numpy() for k, v in tiny_xlstm.state_dict().items()}
    fused = {}
    for k, v in sd.items():
        block = k.split(".mlstm_layer.")[0] if ".mlstm_layer." in k else k.split(".ffn.")[0]
        if k.endswith("mlstm_layer.q.weight"):
            parts = [sd[f"{block}.mlstm_layer.{n}.weight"] for n in ("q", "k", "v", "ogate_preact")]
            fused[f"{block}.mlstm_layer.qkv_opreact.weight"] = np.concatenate(parts)
            for kind in ("weight", "bias"):
                fused[f"{block}.mlstm_layer.ifgate_preact.{kind}"] = np.concatenate(
                    [sd[f"{block}.mlstm_layer.{g}gate_preact.{kind}"] for g in ("i", "f")])
        elif k.endswith("ffn.proj_up_gate.weight"):
            fused[f"{block}.ffn.proj_up_gate_z.weight"] = np.concatenate([v, sd[f"{block}.ffn.proj_up.weight"]])
        elif not any(s in k for s in ("mlstm_layer.q.", "mlstm_layer.k.", "mlstm_layer.v.", "ogate_preact",
                                      "igate_preact", "fgate_preact", "proj_up.", "proj_up_gate.")):
            fused[k] = v
    folder = tmp_path / "fused"
    folder.mkdir()
    save_file({k: np.ascontiguousarray(v) for k, v in fused.items()}, str(folder / "model.safetensors"))
    cfg = json.loads((tmp_path / "single" / "config.json").read_text()) | {"weight_mode": "fused"}
    (folder / "config.json").write_text(json.dumps(cfg))
    tokens = np.random.default_rng(4).integers(0, 256, (1, 24))
    single, fused = load_checkpoint(tmp_path / "single"), load_checkpoint(folder)
    assert rel_err(_prefill(fused, tokens), _prefill(single, tokens)) <= 1e-5  # fp32 sums in another order


def test_xlstm_7b_widths_one_block():
    """xLSTM-7B's widths (hidden 4096, 8 heads, qk 2048, v 4096, FFN 10944), one block, vocabulary 512."""
    hf = make_hf_xlstm(5, vocab_size=512, hidden_size=4096, num_hidden_layers=1, num_heads=8, chunk_size=64)
    model = from_torch(hf)
    assert (model.spec.qk_dim, model.spec.v_dim, model.spec.ffn_dim) == (2048, 4096, 10944)
    tokens = np.random.default_rng(5).integers(0, 512, (1, 70))
    with torch.no_grad():
        want = hf(torch.tensor(tokens)).logits.numpy()
    got = FloatInterpreter(model.weights).run(model.graphs["prefill"], {"tokens": tokens})["logits"]
    assert rel_err(got, want) <= 1e-4
    assert rel_err(_edgec_decode(model, tokens[:, :8]), _hf_decode(hf, tokens[:, :8])) <= 1e-4


@pytest.mark.parametrize(("change", "fragment"), [
    ({"use_bias": True}, "use_bias true is not supported"),
    ({"weight_mode": "tied"}, "weight_mode 'tied'"),
    ({"inference_state_dtype": "bfloat16"}, "inference_state_dtype 'bfloat16'"),
    ({"num_heads": 3}, "not a positive multiple of num_heads 3"),
    ({"qk_dim_factor": -1}, "qk_dim_factor -1"),
    ({"hidden_size": 96.5}, "hidden_size 96.5"),
    ({"gate_soft_cap": "15"}, "gate_soft_cap '15'"),
    ({"architectures": ["MambaForCausalLM"]}, "is not xLSTM"),
])
def test_unsupported_or_malformed_configs_are_one_line(tiny_xlstm, tmp_path, byte_text, change, fragment):
    folder = tmp_path / "ckpt"
    tiny_xlstm.save_pretrained(folder, safe_serialization=True)
    cfg = json.loads((folder / "config.json").read_text()) | change
    (folder / "config.json").write_text(json.dumps(cfg))
    assert_fails_cleanly(run_cli("quantize", folder, "--calib", byte_text, "-o", tmp_path / "q"),
                         str(folder / "config.json"), fragment)
    assert not (tmp_path / "q").exists()


def test_bundled_xlstm_tiny_matches_transformers_and_uses_both_branches():
    from edgec.runtime.mlstm_stats import denominator_branches
    from edgec.zoo import BUNDLED

    folder = BUNDLED["xlstm-tiny"].folder
    hf = transformers.xLSTMForCausalLM.from_pretrained(folder).eval()
    model = load_checkpoint(folder)
    text = np.frombuffer((folder / "eval.txt").read_bytes()[:200], np.uint8).astype(np.int64)[None]
    with torch.no_grad():
        want = hf(torch.tensor(text)).logits.numpy()
    assert rel_err(_prefill(model, text), want) <= 1e-4
    assert rel_err(_edgec_decode(model, text[:, :48]), _hf_decode(hf, text[:, :48])) <= 1e-4
    seen = denominator_branches(model, text)
    assert seen["q.n"] > 0 and seen["exp(-m)"] > 0, seen


@pytest.mark.parametrize("hidden", [256, 768, 1536])
def test_derived_widths_follow_transformers_and_round_trip(hidden):
    """transformers rounds the feed-forward width with (x + m - 1) // m * m on a float x (768 x 2.667 -> 2048)."""
    from edgec.frontends.xlstm_spec import XlstmSpec

    hf = make_hf_xlstm(6, hidden_size=hidden, num_hidden_layers=1, num_heads=4)
    spec = from_torch(hf).spec  # the checkpoint's shapes must match the widths the spec derives
    assert spec.ffn_dim == hf.backbone.blocks[0].ffn.up_proj_dim
    assert XlstmSpec.from_config(spec.to_config()) == spec


def test_block_count_is_what_transformers_builds(tmp_path):
    """A config given num_blocks alone keeps transformers' default num_hidden_layers (32) beside it; the model has
    num_blocks blocks, and so does edgec's graph."""
    from edgec.frontends.hf_checkpoint import load_checkpoint

    hf = make_hf_xlstm(7, num_hidden_layers=32, num_blocks=1)  # as xLSTMConfig(num_blocks=1) leaves them
    hf.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["num_blocks"], cfg["num_hidden_layers"]) == (1, 32) and len(hf.backbone.blocks) == 1
    assert load_checkpoint(tmp_path).spec.num_hidden_layers == 1
