"""Import check: the float interpreter equals transformers' MambaForCausalLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgec.frontends.hf_checkpoint import from_torch, load_checkpoint
from edgec.runtime.float_ref import FloatInterpreter
from edgec.zoo import BUNDLED

from helpers import decode, rel_err


def _compare(hf, model, seq: int = 64, batch: int = 2, seed: int = 0) -> tuple[float, float]:
    tokens = np.random.default_rng(seed).integers(0, model.spec.vocab_size, (batch, seq))
    with torch.no_grad():
        ref = hf(torch.from_numpy(tokens)).logits.numpy()
    interp = FloatInterpreter(model.weights)
    prefill = interp.run(model.graphs["prefill"], {"tokens": tokens})["logits"]
    step = decode(interp, model.graphs["step"], model.spec, tokens)
    return rel_err(prefill, ref), rel_err(step, ref)


def test_live_tiny_model_matches_torch(tiny_hf):
    prefill, step = _compare(tiny_hf, from_torch(tiny_hf))
    assert prefill <= 1e-4 and step <= 1e-4


def test_checkpoint_folder_matches_torch(tiny_hf, tiny_checkpoint):
    prefill, step = _compare(tiny_hf, load_checkpoint(tiny_checkpoint))
    assert prefill <= 1e-4 and step <= 1e-4


def test_mamba_130m_dimensions_match_torch(hf_130m_dims):
    prefill, step = _compare(hf_130m_dims, from_torch(hf_130m_dims), seq=64, batch=1)
    assert prefill <= 1e-4 and step <= 1e-4


def test_bundled_model_matches_torch():
    from transformers import MambaForCausalLM

    folder = BUNDLED["mamba-tiny"].folder
    hf = MambaForCausalLM.from_pretrained(folder).eval()
    prefill, step = _compare(hf, load_checkpoint(folder))
    assert prefill <= 1e-4 and step <= 1e-4


def test_step_graph_has_explicit_state(tiny_hf):
    model = from_torch(tiny_hf)
    step = model.graphs["step"]
    assert step.inputs == ["tokens", "l0.conv_state", "l0.ssm_state", "l1.conv_state", "l1.ssm_state"]
    assert step.outputs[1:] == [s + "_out" for s in step.inputs[1:]]
    assert str(step.values["l0.ssm_state"]) == "f32[B,128,16]"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoints_load(tmp_path, tiny_hf, dtype):
    hf = type(tiny_hf)(tiny_hf.config).to(getattr(torch, dtype)).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = load_checkpoint(tmp_path)
    w = model.weights["backbone.layers.0.mixer.in_proj.weight"]
    assert w.dtype == np.float32
    assert np.array_equal(w, hf.backbone.layers[0].mixer.in_proj.weight.detach().float().numpy())
