"""ViT-MoE through the CLI: quantize on .npz images, eval prints top-1 per task and routing agreement."""

from __future__ import annotations

import json

import numpy as np
from hostile import assert_fails_cleanly, run_cli

from edgec.zoo import BUNDLED

ENTRY = BUNDLED["vitmoe-tiny"]


def test_quantize_then_eval_json(tmp_path):
    assert run_cli("quantize", "vitmoe-tiny", "-o", tmp_path / "q").code == 0
    res = run_cli("eval", tmp_path / "q", "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert result["metric"] == "top1" and result["images"] == 450
    for task, row in result["tasks"].items():
        assert row["float"] > 0.95 and abs(row["int"] - row["float"]) <= 0.01 and abs(row["qdq"] - row["float"]) <= 0.01
        for profile in ("int", "qdq"):
            layers = result["routing_agreement"][profile][task]
            assert set(layers) == {"blocks.1", "blocks.3"}
            assert all(r["agreement"] >= 0.95 for r in layers.values()), layers


def test_integer_variants_are_options_kept_in_the_qdir(tmp_path):
    """Another softmax and GELU in the int profile: the QDIR records them, eval stays within a point of float."""
    res = run_cli("quantize", "vitmoe-tiny", "-o", tmp_path / "q", "--softmax", "ibert", "--gelu", "shiftgelu",
                  "--probs-bits", "8")
    assert res.code == 0, res.err
    options = json.loads((tmp_path / "q" / "manifest.json").read_text())["options"]
    assert (options["softmax"], options["gelu"], options["probs_bits"]) == ("ibert", "shiftgelu", 8)
    result = json.loads(run_cli("eval", tmp_path / "q", "--json").out)
    for row in result["tasks"].values():
        assert abs(row["int"] - row["float"]) <= 0.01, result["tasks"]


def test_unknown_variant_is_one_line(tmp_path):
    for args, words in ((("--softmax", "bogus"), ("softmax variant 'bogus'", "lut")),
                        (("--probs-bits", "4"), ("4 bits", "8 to 16"))):
        assert_fails_cleanly(run_cli("quantize", "vitmoe-tiny", "-o", tmp_path / "q", *args), *words)
    assert not (tmp_path / "q").exists()


def test_eval_layers_gives_residual_sqnr_per_task():
    res = run_cli("eval", "vitmoe-tiny", "--layers")
    assert res.code == 0, res.err
    for task in ("digit", "parity"):
        assert f"task {task}, first 32 images" in res.out
    sqnr = [float(line.split()[2]) for line in res.out.splitlines() if line.strip().startswith("logits")]
    assert len(sqnr) == 2 and min(sqnr) > 20, res.out


def test_language_model_options_are_refused_before_any_work(tmp_path):
    cases = ((("eval", "vitmoe-tiny", "--seq-len", "64"), "--seq-len"),
             (("quantize", "vitmoe-tiny", "--calib-tokens", "100", "-o", tmp_path / "q"), "--calib-tokens"))
    for args, option in cases:
        assert_fails_cleanly(run_cli(*args), option, "applies to language models, not to image models")
    assert not (tmp_path / "q").exists()


def test_eval_data_that_is_not_images_is_one_line(tmp_path):
    assert_fails_cleanly(run_cli("eval", "vitmoe-tiny", "--data", BUNDLED["xlstm-tiny"].eval), "not an .npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((2, 16, 16, 3), np.uint8), labels_digit=np.zeros(2, np.int64),
             labels_parity=np.zeros(2, np.int64))
    assert_fails_cleanly(run_cli("eval", "vitmoe-tiny", "--data", wrong), str(wrong))
