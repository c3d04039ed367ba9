"""`edgec build --target orin`: verified int8 ONNX, a clean TensorRT lint, the recipe and the roofline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgec.targets.orin.engine import tensorrt_available


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("jetpack,trt", [("5", "TensorRT 8.5"), ("6.2", "TensorRT 10.3")])
def test_orin_build_writes_a_linted_artifact(tmp_path, jetpack, trt):
    out = tmp_path / "orin"
    res = cli("build", "--target", "orin", "--jetpack", jetpack, "--engine", "never", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"{trt} lint: 0 errors" in res.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["tensorrt"] == trt and report["reference"]["max_lsb"] <= 1
    assert [r["name"] for r in report["roofline"]] == ["Orin Nano 8GB", "Orin NX 16GB", "AGX Orin 64GB"]
    assert all(1.0 < r["speedup"] <= 2.0 for r in report["roofline"])  # int8 halves weight bytes at best
    script = (out / "build_engine.sh").read_text()
    assert "--int8" in script and "--fp16" in script and "--shapes=tokens:1,l0.conv_state:1x256x3" in script
    assert json.loads((out / "recipe.json").read_text())["tensorrt"] in trt
    assert cli("verify", str(out)).returncode == 0
    assert not (out / "step.engine").exists()


def test_bad_orin_options_are_one_line(tmp_path):
    res = cli("build", "--target", "orin", "--jetpack", "4.6", "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.strip() == (
        "edgec: error: unknown JetPack version '4.6'; known versions: 5, 6.0, 6.1, 6.2")
    if not tensorrt_available():
        res = cli("build", "--target", "orin", "--engine", "always", "-o", str(tmp_path / "o"))
        assert res.returncode == 2 and "--engine always needs the tensorrt package" in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_available(), reason="TensorRT and an NVIDIA GPU are not available here")
def test_engine_is_built_where_tensorrt_exists(tmp_path):
    out = tmp_path / "orin"
    assert cli("build", "--target", "orin", "--engine", "always", "-o", str(out)).returncode == 0
    assert (out / "step.engine").stat().st_size > 0


def test_verify_reads_which_layers_ran_int8(tmp_path):
    out = tmp_path / "orin"
    assert cli("build", "--target", "orin", "--engine", "never", "-o", str(out)).returncode == 0
    (out / "step.engine").write_bytes(b"engine built on the device")  # not in the manifest: device-specific
    layers = {"Layers": [{"Name": "in_proj", "Outputs": [{"Format/Datatype": "Row major linear INT8 format"}]},
                         {"Name": "scan", "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]}]}
    (out / "layers.json").write_text(json.dumps(layers))
    res = cli("verify", str(out))
    assert res.returncode == 0, res.stderr
    assert "1 engine layers ran in INT8" in res.stdout
    if not tensorrt_available():
        assert "step.engine not run: TensorRT is not available here" in res.stdout
    layers["Layers"].pop(0)
    (out / "layers.json").write_text(json.dumps(layers))
    res = cli("verify", str(out))
    assert res.returncode == 2 and "no layer ran in INT8" in res.stderr
