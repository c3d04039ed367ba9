"""ViT-MoE on the FPGA target (issue 10, item 1): one HLS project for every task, C simulation bit-exact with
the int simulator on every logit (bundled model: 32 images x 2 tasks; M3ViT-tiny widths; a dense ViT), the
per-stage estimate on ZCU102 / U250 / KV260 with expert-by-expert traffic, --trace naming a bad node."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import run_cli
from vit_moe_cases import M3VIT_TINY, make_vit_moe, random_images

from edgec.frontends.hf_checkpoint import from_torch
from edgec.ir import entry_graphs
from edgec.passes.pipeline import quantize
from edgec.targets.fpga.build import build_fpga
from edgec.targets.fpga.csim_images import golden_calls, run_image_csim
from edgec.targets.fpga.devices import get_device
from edgec.targets.fpga.emit_images import emit_image_design, merge_task_graphs
from edgec.targets.fpga.estimate_images import estimate_image


def test_bundled_project_is_bit_exact_and_verifies(tmp_path):
    out = tmp_path / "fpga"
    res = run_cli("build", "vitmoe-tiny", "--target", "fpga", "-o", out, "--tokens", "32")
    assert res.code == 0, res.err
    assert "csim: 640/640 logits bit-exact over 64 calls" in res.out
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["bit_exact"] and set(report["devices"]) == {"zcu102", "u250", "kv260"}
    est = report["estimate"]
    assert est["fits"] and est["bound"] in ("compute", "dram") and est["images_per_s"] > 0
    assert est["expert_bytes_token_order"] > 4 * est["expert_bytes_expert_order"]  # 17 tokens x 2 vs <= 8 experts
    assert json.loads((out / "manifest.json").read_text())["kind"] == "image"
    res = run_cli("verify", out)
    assert res.code == 0 and "640/640 logits over 64 calls" in res.out, res.err


@pytest.mark.parametrize("case", ["m3vit_tiny_widths", "dense_vit"])
def test_random_init_models_are_bit_exact(tmp_path, case):
    """Random-init M3ViT-tiny widths (128x256 images, D 192, 3 heads, 16 experts top-2; 2 blocks) on 4 images,
    and a plain ViT without experts."""
    changes = M3VIT_TINY | {"depth": 2, "moe_layers": [1]} if case == "m3vit_tiny_widths" else {"moe_layers": []}
    torch_model = make_vit_moe(5, **changes)
    qm = quantize(from_torch(torch_model), [random_images(torch_model, 4, s) for s in range(2)])
    report = build_fpga(qm, tmp_path / "fpga", tokens=4)
    c, tasks = report["csim"], len(entry_graphs(qm.graphs))
    classes = max(int(g.values["logits"].shape[-1]) for g in entry_graphs(qm.graphs).values())
    assert c["bit_exact"] and c["tokens"] == 4 * tasks and c["logits_total"] == 4 * tasks * classes


def test_task_schedule_runs_every_task_in_its_own_order():
    torch_model = make_vit_moe(6)
    qm = quantize(from_torch(torch_model), [random_images(torch_model, 2, 0)])
    graphs = {k: qm.graphs[k] for k in entry_graphs(qm.graphs)}
    merged, tasks = merge_task_graphs(graphs)
    position = {n.name: i for i, n in enumerate(merged.nodes)}
    for t, graph in enumerate(graphs.values()):
        order = [position[n.name] for n in graph.nodes]
        assert order == sorted(order)  # each task's nodes in its own order
        assert all(not tasks[n.name] or t in tasks[n.name] for n in graph.nodes)
    own = [name for name, owners in tasks.items() if owners]
    assert own and all(".gate." in name or name.startswith("heads.") for name in own)


def test_trace_names_the_first_node_that_differs(tmp_path):
    torch_model = make_vit_moe(7)
    qm = quantize(from_torch(torch_model), [random_images(torch_model, 2, 0)])
    report = build_fpga(qm, tmp_path / "fpga", tokens=2)
    assert report["csim"]["bit_exact"]
    project = tmp_path / "fpga"
    design = emit_image_design(qm, report["estimate"]["parallelism"])
    weights = project / "data" / "weights.bin"
    raw = bytearray(weights.read_bytes())
    n8 = int.from_bytes(raw[8:16], "little")
    start64 = 24 + n8 + (8 - n8 % 8) % 8
    raw[start64:start64 + 8 * 64] = bytes(8 * 64)  # zero the first int64 constants (the patch embedding's)
    weights.write_bytes(bytes(raw))
    keys = list(entry_graphs(qm.graphs))
    calls, tasks = golden_calls(len(keys), random_images(torch_model, 1, 3))
    result = run_image_csim(project, qm, calls, tasks, design.traced, trace=True)
    assert not result.bit_exact and "of node patch_embed.proj (patch_embed)" in result.first_difference


def test_estimate_prefers_expert_by_expert_at_m3vit_widths():
    """Edge-MoE's ordering at M3ViT-tiny widths (129 tokens, 16 experts, top-2): ~16x less expert traffic."""
    torch_model = make_vit_moe(8, **(M3VIT_TINY | {"depth": 2, "moe_layers": [1]}))
    qm = quantize(from_torch(torch_model), [random_images(torch_model, 2, 0)])
    for device in ("zcu102", "u250", "kv260"):
        est = estimate_image(qm, get_device(device), 256)
        assert 15 < est.expert_bytes_token_order / est.expert_bytes_expert_order < 17, device
        assert est.fits and sum(est.stage_cycles.values()) == est.cycles
    assert np.isclose(est.active_experts, 16 * (1 - (1 - 2 / 16) ** 129))


def test_odd_parallelism_is_one_line(tmp_path):
    from hostile import assert_fails_cleanly

    for p in ("1", "3"):
        assert_fails_cleanly(run_cli("build", "vitmoe-tiny", "--target", "fpga", "--parallelism", p, "--no-csim",
                                     "-o", tmp_path / "f"), f"--parallelism {p}", "even number")
    assert not (tmp_path / "f").exists()
