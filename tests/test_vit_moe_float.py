"""ViT-MoE: the float interpreter against the torch reference (edgec.zoo.vit_moe_ref), per task graph."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from vit_moe_cases import M3VIT_TINY, make_vit_moe, random_images, run_task, torch_logits

from edgec.frontends.hf_checkpoint import from_torch, load_checkpoint
from edgec.frontends.vit_moe_spec import VitMoeSpec
from edgec.ir import Op
from edgec.ir.serde import graph_from_json, graph_to_json
from edgec.ir.verify import verify_graph
from edgec.runtime.vit_float import gelu, topk

from helpers import rel_err


def _check_against_torch(model, images: np.ndarray, tasks=None) -> float:
    """Logits of every task graph within 1e-4 of torch, and the same experts chosen; returns the worst error."""
    imported, worst = from_torch(model), 0.0
    for task in tasks or model.spec.task_names:
        want = torch_logits(model, images, task)
        got = run_task(imported, images, task, keep_all=True)
        worst = max(worst, rel_err(got["logits"], want))
        assert worst <= 1e-4, (task, worst)
        for block, route in model.routes().items():
            np.testing.assert_array_equal(got[f"b{block}.route_experts"], route.numpy(), err_msg=f"{task} b{block}")
    return worst


@pytest.mark.parametrize("top_k", [1, 2])
def test_small_model_matches_torch_on_every_task(top_k):
    model = make_vit_moe(0, top_k=top_k)
    assert _check_against_torch(model, random_images(model, 3, top_k)) <= 1e-4


def test_one_shared_gate_and_no_qkv_bias():
    model = make_vit_moe(1, multi_gate=False, qkv_bias=False, num_experts=3, top_k=3, moe_layers=[0, 1, 2, 3])
    _check_against_torch(model, random_images(model, 2, 5))


def test_dense_vit_with_timms_head_loads_from_a_folder(tmp_path):
    """A plain ViT (moe_layers []) of one task, saved with timm's head.{weight,bias}: a timm state dict + config."""
    model = make_vit_moe(2, moe_layers=[], num_experts=None, top_k=None, moe_hidden=None, tasks={"imagenet": 7},
                         image_size=24, patch_size=4)
    model.save_pretrained(tmp_path / "vit")
    tensors = load_file(str(tmp_path / "vit" / "model.safetensors"))
    for part in ("weight", "bias"):
        tensors[f"head.{part}"] = tensors.pop(f"heads.imagenet.{part}")
    save_file(tensors, str(tmp_path / "vit" / "model.safetensors"))
    loaded = load_checkpoint(tmp_path / "vit")
    assert list(loaded.graphs) == ["task/imagenet"] and loaded.spec.num_experts == 0
    images = random_images(model, 2, 6)
    assert rel_err(run_task(loaded, images, "imagenet")["logits"], torch_logits(model, images, None)) <= 1e-4


def test_router_ties_go_to_the_lower_expert_index():
    """A zero gate makes every expert equally likely: experts 0 .. k-1 are chosen, each weighted 1/E."""
    model = make_vit_moe(3, num_experts=4, top_k=2)
    with torch.no_grad():
        model.blocks[1].mlp.gate[0].w_gate.zero_()
        model.blocks[3].mlp.gate[0].w_gate[:, 2] = model.blocks[3].mlp.gate[0].w_gate[:, 1] * 1  # a tied pair
    images = random_images(model, 2, 7)
    _check_against_torch(model, images, ["digit"])
    got = run_task(from_torch(model), images, "digit", keep_all=True)
    assert (got["b1.route_experts"] == [0, 1]).all() and np.allclose(got["b1.route_weights"], 0.25, atol=0, rtol=0)
    tied = got["b3.route_probs"][..., 1] == got["b3.route_probs"][..., 2]
    both = (got["b3.route_experts"] == [1, 2]).all(axis=-1) | (got["b3.route_experts"] == [2, 1]).all(axis=-1)
    assert (tied & both).any() and not (got["b3.route_experts"][tied & both] == [2, 1]).all(axis=-1).any()


def test_topk_rule_on_crafted_probabilities():
    """Descending, ties in ascending index order, whether the tie is inside the top k or across its boundary."""
    p = np.array([[0.1, 0.3, 0.3, 0.3], [0.4, 0.1, 0.4, 0.1], [0.25, 0.25, 0.25, 0.25], [0.0, 0.5, 0.0, 0.5]],
                 np.float32)
    values, indices = topk(p, 2)
    np.testing.assert_array_equal(indices, [[1, 2], [0, 2], [0, 1], [1, 3]])
    np.testing.assert_array_equal(values, np.array([[0.3, 0.3], [0.4, 0.4], [0.25, 0.25], [0.5, 0.5]], np.float32))
    ranked = torch.sort(torch.from_numpy(p), dim=-1, descending=True, stable=True).indices[:, :2]  # the reference's
    np.testing.assert_array_equal(ranked.numpy(), indices)


def test_gelu_is_the_exact_erf_form():
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    want = torch.nn.functional.gelu(torch.from_numpy(x).double()).numpy()
    assert np.abs(gelu(x) - want).max() <= 1e-6 and np.abs(gelu(x.astype(np.float64)) - want).max() <= 1e-14


def test_m3vit_tiny_widths():
    """D 192, 12 blocks, 3 heads, 16 experts top-2 in the odd blocks, Hm 384, 128x256 images (129 tokens)."""
    model = make_vit_moe(4, **M3VIT_TINY | {"mean": [0.5] * 3, "std": [0.5] * 3})
    start = time.perf_counter()
    worst = _check_against_torch(model, random_images(model, 2, 8), ["objects"])  # the second task's gates
    print(f"M3ViT-tiny widths, 12 blocks, batch 2: rel err {worst:.2e} in {time.perf_counter() - start:.1f} s")


def test_checkpoint_folder_equals_the_live_model(tmp_path):
    model = make_vit_moe(5)
    model.save_pretrained(tmp_path / "ckpt")
    live, saved = from_torch(model), load_checkpoint(tmp_path / "ckpt")
    assert saved.spec == live.spec == VitMoeSpec.from_config(saved.spec.to_config())
    images = random_images(model, 2, 9)
    for task in model.spec.task_names:
        np.testing.assert_array_equal(run_task(saved, images, task)["logits"], run_task(live, images, task)["logits"])
    for graph in saved.graphs.values():
        verify_graph(graph, saved.weights)
        assert str(graph_from_json(graph_to_json(graph))) == str(graph)


def test_task_graphs_share_everything_but_gates_and_heads():
    """One graph per task, with the same nodes and value names; only gate and head weights differ."""
    spec = from_torch(make_vit_moe(6)).spec
    digit, parity = (from_torch(make_vit_moe(6)).graphs[f"task/{t}"] for t in spec.task_names)
    assert digit.values.keys() - {"logits"} == parity.values.keys() - {"logits"}
    differ = [(a.name, b.name) for a, b in zip(digit, parity, strict=True) if a != b]
    assert differ == [(f"blocks.{b}.mlp.gate.0", f"blocks.{b}.mlp.gate.1") for b in spec.moe_layers] + [
        ("heads.digit", "heads.parity")]
    ops = [n.op for n in digit]
    assert ops.count(Op.TOPK) == ops.count(Op.MOE) == ops.count(Op.ROUTE_LOGITS) == len(spec.moe_layers)
    for node in digit:
        if node.op in (Op.ATTN_SCORES, Op.ATTN_CONTEXT):  # both matmuls take two activations and no weight
            assert not node.weights and all(digit.producer(i) is not None for i in node.inputs)
