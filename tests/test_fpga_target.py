"""`edgec build --target fpga`: the generated project C-simulates bit-exact with the int simulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgec
from edgec.errors import EdgecError
from edgec.hls.toolchain import ap_types_dir
from edgec.targets.fpga.blob import read_blob
from edgec.targets.fpga.build import build_fpga, golden_tokens
from edgec.targets.fpga.csim import run_csim
from edgec.targets.fpga.emit import emit_design
from edgec.zoo import BUNDLED

from conftest import make_hf_mamba


def _quantized(hf=None):
    if hf is None:
        model = edgec.load_checkpoint(BUNDLED["mamba-tiny"].folder)
        ids = np.frombuffer(BUNDLED["mamba-tiny"].calib.read_bytes(), np.uint8).astype(np.int64)
        calib = [ids[: 8 * 256].reshape(8, 256)]
    else:
        model = edgec.from_torch(hf)
        calib = [np.random.default_rng(0).integers(0, model.spec.vocab_size, (4, 128))]
    return edgec.quantize(model, calib)


@pytest.fixture(scope="module")
def bundled_qm():
    return _quantized()


@pytest.mark.parametrize("which", ["bundled", "d_inner_192", "mamba_130m_dims"])
def test_csim_is_bit_exact_on_128_tokens(tmp_path, bundled_qm, which):
    if which == "bundled":
        qm = bundled_qm
    elif which == "d_inner_192":  # 12 * 16: the Hadamard K x K stage is exercised
        qm = _quantized(make_hf_mamba(8, hidden_size=96, intermediate_size=192, initializer_range=0.02))
    else:
        qm = _quantized(make_hf_mamba(9, vocab_size=512, hidden_size=768, intermediate_size=1536,
                                      time_step_rank=48, initializer_range=0.02))
    report = build_fpga(qm, tmp_path / "prj", "zcu102", tokens=128)
    csim = report["csim"]
    assert csim["bit_exact"] and csim["tokens"] == 128
    assert csim["logits_equal"] == csim["logits_total"] == 128 * qm.spec.vocab_size
    assert report["estimate"]["fits"]


def test_project_is_self_contained(tmp_path, bundled_qm):
    build_fpga(bundled_qm, tmp_path / "prj", "kv260", csim=False, tokens=16)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tmp_path / "prj", moved)
    shutil.rmtree(tmp_path / "prj")
    env = os.environ | {"AP_TYPES": str(ap_types_dir())}
    res = subprocess.run(["bash", "csim.sh"], cwd=moved, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "equal the edgec simulator's bit for bit" in res.stdout
    assert "xck26" in (moved / "build_prj.tcl").read_text()
    for name in ("firmware/edgec_numerics.h", "firmware/edgec_kernels.h", "tb/tb_edgec.cpp", "README.md"):
        assert (moved / name).is_file()
    golden = np.fromfile(moved / "data" / "golden_logits.bin", "<i8")
    golden[17] += 1  # the testbench must fail, not just print, when a logit differs
    golden.tofile(moved / "data" / "golden_logits.bin")
    res = subprocess.run(["bash", "csim.sh"], cwd=moved, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "1 of 4096 logits differ" in res.stdout and "DIFFER" in res.stderr


def test_artifacts_are_deterministic_and_logits_convertible(tmp_path, bundled_qm):
    from edgec.runtime.sim_int import IntSimulator

    for name in ("a", "b"):
        build_fpga(bundled_qm, tmp_path / name, tokens=8)
    manifest = (tmp_path / "a" / "manifest.json").read_text()
    assert manifest == (tmp_path / "b" / "manifest.json").read_text()
    files = json.loads(manifest)["files"]
    assert "firmware/edgec_top.cpp" in files and "report.json" not in files  # timings: listed as unhashed
    scale = np.fromfile(tmp_path / "a" / "data" / "logits_scale.bin", "<f8")
    assert np.array_equal(scale, IntSimulator(bundled_qm).logits_scale())


def test_a_qdir_without_lowered_constants_still_builds(tmp_path, bundled_qm):
    from dataclasses import replace

    old = replace(bundled_qm, int_constants={})
    assert build_fpga(old, tmp_path / "prj", tokens=8)["csim"]["bit_exact"]


def test_trace_names_the_first_layer_that_differs(tmp_path, bundled_qm):
    build_fpga(bundled_qm, tmp_path / "prj", csim=False, tokens=4)
    design = emit_design(bundled_qm)
    weights = tmp_path / "prj" / "data" / "weights.bin"
    _, w64 = read_blob(weights)
    section, offset, size = design.blob.offsets["layers.2.conv_act/lut"]
    assert section == "int64" and size == 256
    w64 = w64.copy()
    w64[offset:offset + size] = np.roll(w64[offset:offset + size], 1)  # a corrupted SiLU table in layer 2
    raw = bytearray(weights.read_bytes())
    start = len(raw) - 8 * len(w64)
    raw[start:] = w64.astype("<i8").tobytes()
    weights.write_bytes(bytes(raw))
    seq = golden_tokens(bundled_qm.spec.vocab_size, 4)
    result = run_csim(tmp_path / "prj", bundled_qm, seq, design.traced, trace=True)
    assert not result.bit_exact
    assert result.first_difference.startswith("token 0: %l2.u of node layers.2.conv_act (silu)")


def edgec_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True, timeout=600,
                          env=env)


def test_unknown_device_is_one_line(tmp_path):
    res = edgec_cli("build", "--target", "fpga", "--device", "vu9p", "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "unknown FPGA device 'vu9p'; known devices: kv260, u250, zcu102" in res.stderr
    assert not (tmp_path / "o").exists()


def test_missing_compiler_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CXX"} | {"PATH": str(tmp_path)}  # no g++ anywhere
    res = edgec_cli("build", "-o", str(tmp_path / "o"), env=env)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "no C++ compiler found (g++); install g++ or set CXX" in res.stderr
    assert not (tmp_path / "o").exists()


def test_model_too_large_for_the_device(tmp_path, bundled_qm, monkeypatch):
    from dataclasses import replace

    from edgec.targets.fpga import devices

    tiny = replace(devices.DEVICES["kv260"], name="tiny", bram_36k=1, uram=0)
    monkeypatch.setitem(devices.DEVICES, "tiny", tiny)
    with pytest.raises(EdgecError, match="does not fit even with DRAM streaming"):
        build_fpga(bundled_qm, tmp_path / "o", "tiny")
    assert not (tmp_path / "o").exists()


def test_unavailable_target_is_one_line(tmp_path):
    res = edgec_cli("build", "--target", "gpu", "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and "--target 'gpu' is not available" in res.stderr
