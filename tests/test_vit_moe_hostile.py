"""Hostile ViT-MoE checkpoints: each bad config.json or tensor set fails with one line naming the field or
tensor, exit 2, before anything is written; a sound ViT-MoE checkpoint is refused by quantize, eval and build
(the ViT-MoE quantization recipe comes next) the same way."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_fails_cleanly, assert_no_leftovers, run_cli, tree
from safetensors.numpy import load_file, save_file
from vit_moe_cases import make_vit_moe

import edgec

ST = "model.safetensors"


@pytest.fixture(scope="module")
def vit_checkpoint(tmp_path_factory) -> Path:
    """The SMALL reference model (blocks 1 and 3 MoE, tasks digit and parity) saved as a checkpoint folder."""
    folder = tmp_path_factory.mktemp("vit") / "vit-moe"
    make_vit_moe(0).save_pretrained(folder)
    return folder


def config(**changes) -> Callable[[Path], None]:
    """Set config.json fields (None removes one)."""
    def mutate(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text()) | changes
        (folder / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))
    return mutate


def tensors(drop: tuple[str, ...] = (), add: dict[str, tuple[int, ...]] | None = None,
            rename: dict[str, str] | None = None, copy: dict[str, str] | None = None) -> Callable[[Path], None]:
    """Drop, add (zeros of a shape), rename or copy (old -> new) tensors of model.safetensors."""
    def mutate(folder: Path) -> None:
        weights = load_file(str(folder / ST))
        for name in drop:
            del weights[name]
        weights |= {new: weights.pop(old) for old, new in (rename or {}).items()}
        weights |= {new: weights[old] for old, new in (copy or {}).items()}
        weights |= {name: np.zeros(shape, np.float32) for name, shape in (add or {}).items()}
        save_file(weights, str(folder / ST))
    return mutate


def both(*mutations: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        for m in mutations:
            m(folder)
    return mutate


CASES = [
    # config.json: every field typed and ranged, cross-field checks
    pytest.param(config(top_k=5), ["top_k 5 is larger than num_experts 4"], id="top_k>experts"),
    pytest.param(config(embed_dim=30), ["embed_dim 30 is not divisible by num_heads 4"], id="heads"),
    pytest.param(config(image_size=[30, 48]), ["image_size [30, 48] is not a multiple of patch_size 8"], id="tiling"),
    pytest.param(config(image_size=[32]), ["image_size [32] has 1 entries"], id="image-size-rank"),
    pytest.param(config(patch_size="8"), ["patch_size must be a JSON integer"], id="patch-type"),
    pytest.param(config(moe_layers=[1, 4]), ["moe_layers[1] 4 is outside [0, 3]"], id="moe-layer-range"),
    pytest.param(config(moe_layers=[1, 1]), ["moe_layers lists block 1 twice"], id="moe-layer-twice"),
    pytest.param(config(moe_layers=[True]), ["moe_layers[0] must be a JSON integer"], id="moe-layer-bool"),
    pytest.param(config(moe_layers=3), ["moe_layers is 3, not a list"], id="moe-layers-type"),
    pytest.param(config(num_experts=None), ["required field 'num_experts' is missing"], id="no-experts"),
    pytest.param(config(num_experts=0), ["num_experts 0 is outside [1, 1024]"], id="zero-experts"),
    pytest.param(config(tasks={}), ["tasks is {}, not a non-empty object"], id="no-tasks"),
    pytest.param(config(tasks=None), ["tasks is missing"], id="tasks-missing"),
    pytest.param(config(tasks=["digit"]), ["tasks is ['digit'], not a non-empty object"], id="tasks-list"),
    pytest.param(config(tasks={"digit": 0, "parity": 2}), ["tasks['digit'] 0 is outside [1,"], id="zero-classes"),
    pytest.param(config(tasks={"a.b": 3}), ["task name 'a.b'"], id="task-name"),
    pytest.param(config(mean=[0.5, 0.5]), ["mean has 2 entries, but in_chans is 3"], id="mean-length"),
    pytest.param(config(std=[0.2, 0, 0.2]), ["std[1] 0 is not a number in (0,"], id="std-zero"),
    pytest.param(config(mlp_ratio=-1), ["mlp_ratio -1 is not a number in (0, 64]"], id="mlp-ratio"),
    pytest.param(config(depth=0), ["depth 0 is outside [1, 1024]"], id="depth-zero"),
    pytest.param(config(norm_eps="1e-6"), ["norm_eps '1e-6' is not a number"], id="eps-type"),
    pytest.param(config(multi_gate="yes"), ["multi_gate must be true or false"], id="multi-gate-type"),
    pytest.param(config(model_type="vit"), ["is not Mamba, Mamba-2, xLSTM or ViT-MoE"], id="model-type"),
    # tensors that disagree with a valid config
    pytest.param(config(num_experts=8, top_k=2), ["'blocks.1.mlp.experts.htoh4.weight' has shape (4, 24, 32)",
                                                  "implies (8, 24, 32)"], id="expert-count"),
    pytest.param(config(image_size=[40, 48]), ["'pos_embed' has shape (1, 25, 32)", "implies (1, 31, 32)"],
                 id="image-size"),
    pytest.param(config(tasks={"digit": 11, "parity": 2}), ["'heads.digit.weight' has shape (10, 32)"],
                 id="classes"),
    pytest.param(tensors(drop=("blocks.3.mlp.gate.1.w_gate",)), ["'blocks.3.mlp.gate.1.w_gate' is missing"],
                 id="missing-gate"),
    pytest.param(config(tasks={"digit": 10, "parity": 2, "color": 3}), ["'blocks.1.mlp.gate.2.w_gate' is missing"],
                 id="gate-for-new-task"),
    pytest.param(config(depth=3, moe_layers=[1]), ["blocks.3.", "block 3, but depth is 3"], id="extra-block"),
    pytest.param(config(moe_layers=[1]), ["blocks.3.mlp", "block 3 is an MoE block: list it in moe_layers"],
                 id="moe-block-as-dense"),
    pytest.param(config(multi_gate=False), ["one gate per task: set multi_gate true"], id="multi-gate"),
    pytest.param(config(qkv_bias=False), ["'blocks.0.attn.qkv.bias'", "set qkv_bias true"], id="qkv-bias"),
    pytest.param(tensors(add={"blocks.0.ls1.gamma": (32,)}), ["layer scale"], id="layer-scale"),
    pytest.param(tensors(add={"fc_norm.weight": (32,)}), ["average pooling"], id="fc-norm"),
    pytest.param(tensors(add={"dist_token": (1, 1, 32)}), ["distillation token"], id="deit-distilled"),
    pytest.param(tensors(rename={"heads.digit.weight": "head.weight"}), ["'head.weight'", "tasks lists several"],
                 id="timm-head-two-tasks"),
    pytest.param(both(config(tasks={"digit": 10}, moe_layers=[]), tensors(copy={"heads.digit.bias": "head.bias"})),
                 ["has both head.bias (timm's head) and heads.digit.bias"], id="timm-head-twice"),
]


@pytest.mark.parametrize(("mutate", "fragments"), CASES)
def test_bad_checkpoint_fails_cleanly(vit_checkpoint, tmp_path, mutate, fragments):
    folder = tmp_path / "model"
    shutil.copytree(vit_checkpoint, folder)
    mutate(folder)
    before = tree(folder)
    out = tmp_path / "out"
    assert_fails_cleanly(run_cli("quantize", folder, "-o", out), *fragments)
    assert not out.exists() and tree(folder) == before
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize(("command", "fragments"), [
    (["quantize"], ("pass --calib FILE",)),  # a checkpoint has no bundled calibration images
    (["eval"], ("pass --calib FILE",)),
    (["build", "--target", "cpu"], ("pass --calib FILE",)),
    (["build", "--target", "fpga"], ("pass --calib FILE",)),
    (["build", "--target", "orin"], ("pass --calib FILE",)),
])
def test_sound_checkpoint_without_what_it_needs_is_one_line(vit_checkpoint, tmp_path, command, fragments):
    before = tree(vit_checkpoint)
    out = tmp_path / "out"
    args = [*command, vit_checkpoint] + ([] if command == ["eval"] else ["-o", out])
    assert_fails_cleanly(run_cli(*args), *fragments)
    assert not out.exists() and tree(vit_checkpoint) == before
    assert_no_leftovers(tmp_path, vit_checkpoint.parent)


def test_python_api_loads_it(vit_checkpoint):
    model = edgec.load_checkpoint(vit_checkpoint)
    assert list(model.graphs) == ["task/digit", "task/parity"] and model.tokenizer is None


def test_a_target_refuses_an_input_kind_it_does_not_compile():
    """Every target builds tokens and images today; a family with another input kind is refused in one line."""
    from dataclasses import replace

    from edgec.errors import UnsupportedModelError
    from edgec.families import FAMILIES
    from edgec.targets.registry import check_compiles

    audio = replace(FAMILIES["vit_moe"], inputs="audio")
    for target in ("cpu", "orin", "fpga"):
        check_compiles(target, FAMILIES["vit_moe"])
        with pytest.raises(UnsupportedModelError, match=f"--target {target} compiles models of tokens or images.*"
                                                        "take audio: no target builds them yet"):
            check_compiles(target, audio)
