"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def edgec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgec: error: "), res.stderr
    assert "Traceback" not in res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def test_missing_model_folder(tmp_path, byte_text):
    assert_one_line_error(edgec("quantize", str(tmp_path / "nope"), "--calib", str(byte_text), "-o",
                                str(tmp_path / "q")), "no such model folder")


def test_missing_config(ckpt, byte_text, tmp_path):
    (ckpt / "config.json").unlink()
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q")),
                          "no config.json")


def test_garbled_config(ckpt, byte_text, tmp_path):
    (ckpt / "config.json").write_text("{not json")
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q")),
                          "not valid JSON")


def test_not_mamba_is_named(ckpt, byte_text, tmp_path):
    _edit_config(ckpt, model_type="llama", architectures=["LlamaForCausalLM"])
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q")),
                          "'LlamaForCausalLM'", "is not Mamba")


def test_shapes_disagree_with_config(ckpt, byte_text, tmp_path):
    _edit_config(ckpt, intermediate_size=96)
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q")),
                          "backbone.layers.0.mixer.in_proj.weight", "(256, 64)", "(192, 64)")


def test_missing_and_garbled_safetensors(ckpt, byte_text, tmp_path):
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q")),
                          "model.safetensors")
    weights.unlink()
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q")),
                          "no .safetensors weights")


def test_nan_weight_is_named(tmp_path, tiny_hf, byte_text):
    import torch

    hf = type(tiny_hf)(tiny_hf.config)
    with torch.no_grad():
        hf.backbone.layers[1].mixer.x_proj.weight[0, 0] = float("nan")
    hf.save_pretrained(tmp_path / "m", safe_serialization=True)
    assert_one_line_error(edgec("quantize", str(tmp_path / "m"), "--calib", str(byte_text), "-o",
                                str(tmp_path / "q")), "backbone.layers.1.mixer.x_proj.weight", "NaN")
    assert not (tmp_path / "q").exists()


def test_non_finite_calibration_activations(tmp_path, tiny_hf, byte_text):
    import torch

    hf = type(tiny_hf)(tiny_hf.config)
    with torch.no_grad():
        hf.backbone.layers[0].mixer.in_proj.weight.mul_(1e37)  # finite weights, overflowing activations
    hf.save_pretrained(tmp_path / "m", safe_serialization=True)
    res = edgec("quantize", str(tmp_path / "m"), "--calib", str(byte_text), "-o", str(tmp_path / "q"))
    assert_one_line_error(res, "calibration produced NaN/Inf")
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("content,fragment", [(b"", "empty data"), (b"\xff\xfe\xfa bad", "not UTF-8 text")])
def test_empty_or_undecodable_data(tmp_path, ckpt, content, fragment):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(data), "-o", str(tmp_path / "q")), fragment)


def test_bad_npy_data(tmp_path, ckpt):
    np.save(tmp_path / "f.npy", np.array([0.5, 1.5]))
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(tmp_path / "f.npy"), "-o",
                                str(tmp_path / "q")), "must be integers")
    np.save(tmp_path / "big.npy", np.array([1, 2, 9999]))
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(tmp_path / "big.npy"), "-o",
                                str(tmp_path / "q")), "outside the vocabulary")


def test_unwritable_output(tmp_path, ckpt, byte_text):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(blocker / "q")),
                          "cannot write the output folder")
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(blocker)),
                          "is not a folder")


def test_quantize_then_eval_json(tmp_path, ckpt, byte_text):
    res = edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(tmp_path / "q"))
    assert res.returncode == 0, res.stderr
    res = edgec("eval", str(tmp_path / "q"), "--data", str(byte_text), "--json", "--max-tokens", "2048")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert list(out) == ["metric", "tokens", "float", "int", "qdq"]
    assert out["metric"] == "perplexity" and out["tokens"] == 4 * 511
    assert abs(out["int"] / out["float"] - 1) < 0.05 and abs(out["qdq"] / out["float"] - 1) < 0.05


def test_existing_folders_are_protected(tmp_path, ckpt, byte_text, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "important.txt").write_text("keep me")
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(project)),
                          "is not an edgec output")
    assert (project / "important.txt").read_text() == "keep me"
    monkeypatch.chdir(project)
    assert_one_line_error(edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", "."), "refusing to replace")
    assert (project / "important.txt").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--seq-len", "1"], "--seq-len"), (["--max-tokens", "0"], "--max-tokens"), (["--bogus"], "No such option")])
def test_bad_eval_options(tmp_path, ckpt, byte_text, args, fragment):
    res = edgec("eval", str(ckpt), "--calib", str(byte_text), "--data", str(byte_text), *args)
    assert_one_line_error(res, fragment)


def test_eval_of_a_checkpoint_needs_calibration_data(ckpt, byte_text):
    assert_one_line_error(edgec("eval", str(ckpt), "--data", str(byte_text)), "pass --calib")


def test_garbled_qdir_manifest(tmp_path, ckpt, byte_text):
    out = tmp_path / "q"
    assert edgec("quantize", str(ckpt), "--calib", str(byte_text), "-o", str(out)).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["options"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(edgec("eval", str(out), "--data", str(byte_text)), "manifest.json: its 'options' entry")
