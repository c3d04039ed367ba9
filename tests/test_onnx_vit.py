"""ViT-MoE as ONNX (issue 10, item 2-3): one model_<task>.onnx per task, ONNX Runtime against the qdq simulator
(every int8 tensor within 1 LSB, the same experts for every token), top-1 through ONNX on the bundled test set
within 0.2 points of the simulator, edgec verify and edgec run --image."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hostile import assert_fails_cleanly, run_cli
from vit_moe_cases import M3VIT_TINY, make_vit_moe, random_images

import edgec
from edgec.frontends.hf_checkpoint import from_torch
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import image_batches, load_images
from edgec.passes.pipeline import quantize
from edgec.passes.quantize import QuantOptions
from edgec.runtime.sim_qdq import QdqSimulator
from edgec.targets.onnx.build_images import golden_images
from edgec.targets.onnx.export import export_image_graph
from edgec.targets.onnx.verify import compare_images, ort_session
from edgec.zoo import BUNDLED

ENTRY = BUNDLED["vitmoe-tiny"]


@pytest.fixture(scope="module")
def bundled():
    model = edgec.load_checkpoint(ENTRY.folder)
    calib = load_images(ENTRY.calib, model.spec, need_labels=False)
    return model, quantize(model, [b.images for b in image_batches(calib, 64)])


def _assert_exact(qm, images, integer_matmul=False):
    for task in qm.spec.task_names:
        key = graph_name(task)
        r = compare_images(export_image_graph(qm, key, integer_matmul), qm, key, images)
        assert r.max_lsb <= 1 and r.route_flips == 0 and r.logits_max_rel <= 1e-4, (task, r)
        assert r.int8_tensors > 0 and (r.routed_tokens > 0) == bool(qm.spec.moe_layers), r


def test_bundled_test_set_through_onnx(bundled):
    """Every held-out image: pinned, every int8 tensor within 1 LSB and no expert choice differs; free-running,
    top-1 within 0.2 points of the qdq simulator (routing differences counted: a 1-LSB code flips a near-tie)."""
    model, qm = bundled
    data = load_images(ENTRY.eval, model.spec)
    for task in model.spec.task_names:
        key = graph_name(task)
        exported = export_image_graph(qm, key)
        pinned = compare_images(exported, qm, key, data.images)
        assert pinned.max_lsb <= 1 and pinned.route_flips == 0, pinned
        free = compare_images(exported, qm, key, data.images, pin_int8=False)
        print(task, "pinned", pinned, "free", free)
        assert free.route_flips <= 0.005 * free.routed_tokens, free
        ort = ort_session(exported.model).run(["logits"], {"images": data.images})[0]
        sim = QdqSimulator(qm).run(qm.graphs[key], {"images": data.images})["logits"]
        top1 = [np.mean(x.argmax(-1) == data.labels[task]) for x in (ort, sim)]
        assert abs(top1[0] - top1[1]) <= 0.002, (task, top1)


def test_m3vit_tiny_widths_and_a_dense_vit(tmp_path):
    """Random-init M3ViT-tiny widths (2 blocks, 16 experts, top-2, 128x256 images), and a plain ViT (no MoE)."""
    for torch_model, images in ((make_vit_moe(3, **(M3VIT_TINY | {"depth": 2, "moe_layers": [1]})), 2),
                                (make_vit_moe(4, moe_layers=[], tasks={"digit": 10}), 4)):
        model = from_torch(torch_model)
        qm = quantize(model, [random_images(torch_model, 4, s) for s in range(2)])
        _assert_exact(qm, golden_images(tuple(qm.graphs[graph_name(model.spec.task_names[0])]
                                              .values["images"].shape[1:]), images))


def test_integer_matmul_and_int8_pv(bundled):
    """The cpu graph (MatMulInteger) and the TensorRT variant with int8 P.V both match their simulator."""
    _, qm = bundled
    images = golden_images((32, 32, 3), 8)
    _assert_exact(qm, images, integer_matmul=True)
    _assert_exact(replace(qm, options=QuantOptions(qdq_pv=True)), images)
    cpu = export_image_graph(qm, graph_name("digit"), integer_matmul=True).model
    assert sum(n.op_type == "MatMulInteger" for n in cpu.graph.node) == 13  # qkv, proj, dense fc1/fc2, head
    pv = export_image_graph(replace(qm, options=QuantOptions(qdq_pv=True)), graph_name("digit")).model
    assert {"b0.probs.q", "b0.v.q"} <= {n.name for n in pv.graph.node}
    assert "b0.probs.q" not in {n.name for n in export_image_graph(qm, graph_name("digit")).model.graph.node}


def test_build_verify_and_run(tmp_path):
    out = tmp_path / "cpu"
    res = run_cli("build", "vitmoe-tiny", "--target", "cpu", "-o", out)
    assert res.code == 0, res.err
    assert "model_digit.onnx: ONNX Runtime vs qdq simulator" in res.out and "0 of 1088 routed tokens" in res.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == {"digit": 10, "parity": 2} and manifest["image"] == [32, 32, 3]
    assert {"model_digit.onnx", "model_parity.onnx", "golden.npz", "golden_inputs.json"} <= set(manifest["files"])
    res = run_cli("verify", out)
    assert res.code == 0 and "model_parity.onnx matches the golden logits" in res.out, res.err
    data = np.load(ENTRY.eval)
    np.save(tmp_path / "img.npy", data["images"][3])
    res = run_cli("run", out, "--image", tmp_path / "img.npy")
    assert res.code == 0, res.err
    lines = dict(line.split(": ", 1) for line in res.out.strip().splitlines())
    assert lines["digit"].startswith(f"class {data['labels_digit'][3]} ") and lines["digit"].count("class") == 5
    assert lines["parity"].startswith(f"class {data['labels_parity'][3]} ") and lines["parity"].count("class") == 2
    res = run_cli("run", out, "--image", tmp_path / "img.npy", "--task", "parity")
    assert res.code == 0 and res.out.startswith("parity:") and "digit" not in res.out


def test_run_refuses_bad_images_in_one_line(tmp_path):
    out = tmp_path / "cpu"
    assert run_cli("build", "vitmoe-tiny", "--target", "cpu", "-o", out, "--tokens", "2").code == 0
    from PIL import Image

    image = np.load(ENTRY.eval)["images"][0]
    Image.fromarray(image).resize((16, 16)).save(tmp_path / "small.png")
    Image.fromarray(image).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(image[..., 0]).save(tmp_path / "gray.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    np.save(tmp_path / "float.npy", image.astype(np.float32))
    cases = [(("--image", tmp_path / "small.png"), ("16x16", "32x32 with 3")),
             (("--image", tmp_path / "gray.png"), ("1 channel", "with 3")),
             (("--image", tmp_path / "rgba.png"), ("mode RGBA",)),
             (("--image", tmp_path / "corrupt.png"), ("not a readable image",)),
             (("--image", tmp_path / "float.npy"), ("float32", "uint8 array")),
             (("--image", tmp_path / "missing.png"), ("no such image file",)),
             (("--image", tmp_path / "small.png", "--task", "colour"), ("--task 'colour'", "digit, parity")),
             ((), ("image model build", "--image FILE"))]
    for args, fragments in cases:
        assert_fails_cleanly(run_cli("run", out, *args), *fragments)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(manifest | {"image": [32, 32]}))
    assert_fails_cleanly(run_cli("run", out, "--image", tmp_path / "small.png"), "'image' entry is not [H, W, C]")


@pytest.mark.parametrize("jetpack", ["5", "6.0", "6.2"])
def test_orin_build_is_lint_clean_for_every_tensorrt(tmp_path, jetpack):
    """TensorRT 8.5 / 8.6 / 10.3: no finding at all; every norm pinned to fp32; one recipe per task."""
    out = tmp_path / "orin"
    res = run_cli("build", "vitmoe-tiny", "--target", "orin", "--jetpack", jetpack, "-o", out, "--tokens", "4")
    assert res.code == 0, res.err
    report = json.loads((out / "report.json").read_text())
    assert report["lint"] == {"digit": [], "parity": []}
    recipe = json.loads((out / "recipe.json").read_text())
    assert set(recipe) == {"digit", "parity"} and recipe["digit"]["shapes"] == {"images": [1, 32, 32, 3]}
    assert any(name.endswith(".sq") for name in recipe["digit"]["fp32_layers"])
    assert "./build_engine_parity.sh" in (out / "build_engine.sh").read_text()
    assert run_cli("verify", out).code == 0


def test_float_twin_tracks_the_int8_graph(bundled):
    """The fp32 baseline of bench/bench_vit_onnx.py: the same graph with dequantized weights and no Q/DQ."""
    from edgec.targets.onnx.export import dequantized_weights, export_image_graph_float

    model, qm = bundled
    images = load_images(ENTRY.eval, model.spec).images[:64]
    key = graph_name("digit")
    twin_graph = export_image_graph_float(qm, key, dequantized_weights(qm))
    twin = ort_session(twin_graph).run(["logits"], {"images": images})[0]
    sim = QdqSimulator(qm).run(qm.graphs[key], {"images": images})["logits"]
    assert 10 * np.log10(np.sum(sim**2) / np.sum((twin - sim) ** 2)) > 25
    assert np.mean(twin.argmax(-1) == sim.argmax(-1)) >= 0.95
