"""Shared fixtures: random-init Hugging Face Mamba, Mamba-2 and xLSTM models and their checkpoint folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgec.zoo.mamba2_torch_path import block_kernels  # noqa: E402


def make_hf_mamba(seed: int = 0, **sizes):
    """A random-init MambaForCausalLM with realistic dt/A initialisation (transformers' own init)."""
    torch.manual_seed(seed)
    cfg = transformers.MambaConfig(**({"vocab_size": 256, "hidden_size": 64, "state_size": 16,
                                       "num_hidden_layers": 2, "intermediate_size": 128, "conv_kernel": 4,
                                       "time_step_rank": 8} | sizes))
    return transformers.MambaForCausalLM(cfg).eval()


def make_hf_mamba2(seed: int = 0, **sizes):
    """A random Mamba2ForCausalLM: transformers' init for dt and A; D, the norms' weights and the biases moved off
    theirs (D = 1, weights 1, biases 0), so that each one matters.

    transformers picks mamba_ssm / causal_conv1d kernels when its modeling_mamba2 is first imported; they
    are blocked here so that the reference is its torch path (tests/test_mamba2_float.py checks it is).
    """
    block_kernels()
    torch.manual_seed(seed)
    cfg = transformers.Mamba2Config(**({"vocab_size": 256, "hidden_size": 64, "num_heads": 8, "head_dim": 16,
                                        "state_size": 16, "n_groups": 2, "num_hidden_layers": 2, "chunk_size": 8}
                                       | sizes))
    model = transformers.Mamba2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".D"):
                p.normal_(0, 1)
            elif name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):  # the in_proj, conv1d and out_proj biases, not dt_bias
                p.normal_(0, 0.1)
    return model


def make_hf_xlstm(seed: int = 0, **sizes):
    """A random xLSTMForCausalLM whose gates are not at transformers' init (zero weights, i bias -10)."""
    torch.manual_seed(seed)
    cfg = transformers.xLSTMConfig(**({"vocab_size": 256, "hidden_size": 128, "num_hidden_layers": 2, "num_heads": 4,
                                       "chunk_size": 16} | sizes))
    model = transformers.xLSTMForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gate" in name and p.ndim == 2:
                p.normal_(0, 0.3)
            if "igate_preact.bias" in name:
                p.normal_(0, 1)
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="session")
def tiny_hf():
    return make_hf_mamba(0)


@pytest.fixture(scope="session")
def hf_130m_dims():
    """mamba-130m's dimensions (hidden 768, d_inner 1536, state 16, conv 4), 2 layers."""
    return make_hf_mamba(1, vocab_size=1024, hidden_size=768, intermediate_size=1536, time_step_rank=48)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_hf) -> Path:
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    tiny_hf.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture()
def ckpt(tmp_path, tiny_checkpoint) -> Path:
    """A private copy of the tiny checkpoint, free to alter."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


@pytest.fixture(scope="session")
def byte_text(tmp_path_factory) -> Path:
    """Deterministic English-like text for calibration in tests."""
    rng = np.random.default_rng(0)
    words = ["the", "state", "space", "model", "maps", "a", "sequence", "of", "tokens",
             "through", "selective", "scan", "with", "gates"]
    text = " ".join(rng.choice(words, 3000)) + "\n"
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text(text)
    return path
