"""Checkpoints of any size are read lazily: a mamba-2.8b-shaped folder (as a sparse file) loads."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.frontends.mamba_spec import MambaSpec
from edgec.numerics.hadamard import plan_hadamard

MAMBA_2_8B = {"model_type": "mamba", "architectures": ["MambaForCausalLM"], "vocab_size": 50280,
              "hidden_size": 2560, "intermediate_size": 5120, "state_size": 16, "num_hidden_layers": 64,
              "conv_kernel": 4, "time_step_rank": 160, "use_bias": False, "use_conv_bias": True}


def write_sparse_checkpoint(folder: Path, config: dict) -> int:
    """config.json plus an fp16 safetensors file whose data is a hole in the file system."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    header, offset = {}, 0
    for name, shape in MambaSpec.from_config(config).expected_shapes().items():
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with (folder / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return offset


def test_mamba_2_8b_dimensions_load_lazily(tmp_path):
    nbytes = write_sparse_checkpoint(tmp_path / "m", MAMBA_2_8B)
    assert nbytes > 5 * 2**30  # 2.8 billion fp16 parameters
    model = load_checkpoint(tmp_path / "m")
    assert model.spec.intermediate_size == 5120 and model.spec.time_step_rank == 160
    assert len(model.graphs["step"].inputs) == 1 + 2 * 64
    w = model.weights["backbone.layers.63.mixer.out_proj.weight"]  # only this tensor is read
    assert w.shape == (2560, 5120) and w.dtype == np.float32 and not w.any()
    plan = plan_hadamard(5120)
    assert (plan.k, plan.m, plan.pad) == (20, 8, 0)


def test_time_step_rank_auto_and_expand(tmp_path):
    cfg = {k: v for k, v in MAMBA_2_8B.items() if k not in ("intermediate_size", "time_step_rank")}
    spec = MambaSpec.from_config(cfg | {"expand": 2, "time_step_rank": "auto"})
    assert spec.intermediate_size == 5120 and spec.time_step_rank == 160
