"""The bundled mamba2-tiny and the test checkpoint tests/assets/mamba2_alt (other widths, trained independently):
both load through edgec's normal loader, edgec's float interpreter agrees with transformers' torch path on held-out
text, and their float perplexity per byte is the one recorded at training (train_stats.json).

Errors are max |edgec - transformers| / max |transformers| over the logits (helpers.rel_err).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hostile import run_cli

from edgec.data import model_tokens, windows
from edgec.evaluate import perplexities
from edgec.resolve import load_float
from edgec.runtime.float_ref import FloatInterpreter
from edgec.zoo import BUNDLED
from edgec.zoo.mamba2_torch_path import block_kernels, kernel_functions

from helpers import decode, rel_err

ENTRY = BUNDLED["mamba2-tiny"]
ALT = Path(__file__).resolve().parent / "assets" / "mamba2_alt"
MODELS = {"mamba2-tiny": "mamba2-tiny", "mamba2_alt": str(ALT)}  # id -> the MODEL argument edgec takes
# (hidden, layers, heads, head_dim, state, groups, conv kernel, chunk, tied)
WIDTHS = {"mamba2-tiny": (128, 4, 8, 32, 16, 2, 4, 64, True), "mamba2_alt": (96, 3, 12, 16, 32, 1, 4, 32, False)}


@pytest.fixture(scope="module", params=list(MODELS))
def loaded(request):
    """(id, float model, folder): loaded as `edgec eval MODEL` loads it."""
    model, entry = load_float(MODELS[request.param])
    assert (entry is ENTRY) == (request.param == "mamba2-tiny")
    return request.param, model, entry.folder if entry else ALT


def _transformers(folder: Path):
    """transformers' Mamba2ForCausalLM from ``folder``, on its torch path (mamba_ssm / causal_conv1d blocked)."""
    block_kernels()
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    assert kernel_functions() == []
    return torch, transformers.Mamba2ForCausalLM.from_pretrained(folder).eval()


def test_listed_with_its_data_and_small():
    res = run_cli("models")
    assert res.code == 0 and "mamba2-tiny" in res.out and "mamba-tiny" in res.out
    assert ENTRY.calib.read_bytes() == BUNDLED["mamba-tiny"].calib.read_bytes()
    assert ENTRY.eval.read_bytes() == BUNDLED["mamba-tiny"].eval.read_bytes()
    assert sum(p.stat().st_size for p in ENTRY.folder.iterdir() if p.is_file()) < 3 << 20
    assert sum(p.stat().st_size for p in ALT.iterdir()) < 1.5 * (1 << 20)
    assert not (ENTRY.folder / "train.txt").exists()  # train.py reads mamba-tiny's


def test_widths(loaded):
    """The bundled model has grouped B/C (2 groups) and a tied head; the alt differs in every width."""
    name, model, _ = loaded
    spec = model.spec
    assert spec.family == "mamba2" and spec.vocab_size == 256 and spec.expand == 2
    assert (spec.hidden_size, spec.num_hidden_layers, spec.num_heads, spec.head_dim, spec.state_size, spec.n_groups,
            spec.conv_kernel, spec.chunk_size, spec.tie_word_embeddings) == WIDTHS[name]
    assert not spec.use_bias and spec.use_conv_bias
    assert ("lm_head.weight" in model.weights) != spec.tie_word_embeddings


def test_logits_match_transformers(loaded):
    """Two 203-byte windows of eval.txt (whole chunks and a partial one); decoding the step graph on a prefix."""
    _, model, folder = loaded
    torch, hf = _transformers(folder)
    tokens = model_tokens(model, ENTRY.eval)[: 2 * 203].reshape(2, 203)
    with torch.no_grad():
        want = hf(torch.tensor(tokens), use_cache=False).logits.numpy()
    interp = FloatInterpreter(model.weights)
    prefill = interp.run(model.graphs["prefill"], {"tokens": tokens})["logits"]
    assert rel_err(prefill, want) <= 1e-4
    step = decode(interp, model.graphs["step"], model.spec, tokens[:, :24])
    assert rel_err(step, want[:, :24]) <= 1e-4


def test_float_perplexity_is_the_recorded_one(loaded):
    """edgec's float perplexity on all of eval.txt, windowed as train.py scored it, is train_stats.json's."""
    _, model, folder = loaded
    stats = json.loads((folder / "train_stats.json").read_text())
    ids = model_tokens(model, ENTRY.eval)
    assert stats["eval_bytes"] == len(ids)
    batches = windows(ids, stats["eval_window"], 16)
    assert sum(b.size for b in batches) >= 32_000
    ppl = perplexities(model, None, batches, ("float",))["float"]
    assert abs(ppl / stats["eval_ppl_per_byte"] - 1) < 0.01, (ppl, stats["eval_ppl_per_byte"])
    assert stats["eval_bits_per_byte"] < 2.0  # learned: uniform is 8 bits per byte
    assert np.isclose(np.log2(ppl), stats["eval_bits_per_byte"], rtol=0.01)
