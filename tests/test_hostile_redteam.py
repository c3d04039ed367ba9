"""Cases a second, independent hostile user found (and their neighbours): each once broke the contract."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_fails_cleanly, assert_no_leftovers, run_cli, run_cli_subprocess, tree


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The bundled model's QDIR and a cpu build of it."""
    root = tmp_path_factory.mktemp("redteam")
    assert run_cli("quantize", "-o", root / "q", "--calib-tokens", "1024").code == 0
    assert run_cli("build", root / "q", "--target", "cpu", "--tokens", "4", "-o", root / "cpu").code == 0
    return {"q": root / "q", "cpu": root / "cpu"}


def test_a_prompt_that_is_not_utf8_is_refused(built):
    res = run_cli_subprocess("run", built["cpu"], "--prompt", "caf\udce9", "--max-new-tokens", "2")
    assert_fails_cleanly(res, "--prompt is not valid UTF-8")


@pytest.mark.parametrize("temperature", ["5e-324", "1e-300"])
def test_a_vanishing_temperature_decodes_greedily(built, temperature):
    greedy = run_cli("run", built["cpu"], "--max-new-tokens", "4")
    tiny = run_cli("run", built["cpu"], "--max-new-tokens", "4", "--temperature", temperature)
    assert tiny.code == 0 and tiny.err == "" and tiny.out == greedy.out


def test_a_reader_that_closes_the_pipe_gets_141_and_silence(built):
    cmd = f"{sys.executable} -m edgec run {built['cpu']} --max-new-tokens 3000 | head -c 5; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 141 and proc.stderr == "" and len(proc.stdout) == 5


def test_a_closed_stdout_is_one_line(built):
    proc = subprocess.run([sys.executable, "-m", "edgec", "run", str(built["cpu"]), "--max-new-tokens", "2"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
                          preexec_fn=lambda: __import__("os").close(1))
    assert proc.returncode == 2 and proc.stderr == "edgec: error: standard output is closed; redirect it to a " \
        "file or /dev/null\n"


def test_sighup_is_an_interrupt(built, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "edgec", "eval", str(built["q"])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):  # until main() handles SIGHUP (SigCgt of /proc/PID/status)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
            if caught & (1 << (signal.SIGHUP - 1)):
                break
            assert proc.poll() is None
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP and err == "edgec: interrupted\n"


@pytest.mark.parametrize(("args", "fragment"), [
    (["--target", "cpu", "--jetpack", "9"], "--jetpack is an option of --target orin"),
    (["--target", "cpu", "--engine", "never"], "--engine is an option of --target orin"),
    (["--target", "fpga", "--jetpack", "6.2"], "--jetpack is an option of --target orin"),
    (["--target", "orin", "--device", "zcu102"], "--device is an option of --target fpga"),
    (["--target", "cpu", "--no-csim"], "--csim is an option of --target fpga"),
    (["--target", "orin", "--parallelism", "8"], "--parallelism is an option of --target fpga"),
])
def test_an_option_of_another_target_is_not_silently_ignored(built, tmp_path, args, fragment):
    assert_fails_cleanly(run_cli("build", built["q"], *args, "-o", tmp_path / "out"), fragment)
    assert not (tmp_path / "out").exists()


def test_eval_of_a_qdir_refuses_calibration_data(built, tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("some calibration text")
    assert_fails_cleanly(run_cli("eval", built["q"], "--calib", data), "drop --calib")


def test_a_long_but_legal_output_name_works(tmp_path, built):
    out = tmp_path / ("n" * 240)
    res = run_cli("build", built["q"], "--target", "cpu", "--tokens", "2", "-o", out)
    assert res.code == 0, res.err
    assert_no_leftovers(tmp_path)


def test_an_illegal_output_name_is_refused_before_work(tmp_path, built):
    assert_fails_cleanly(run_cli("build", built["q"], "--target", "cpu", "-o", tmp_path / "a" / ("n" * 300)),
                         "longer than this file system's")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_removes_the_folders_it_made(tmp_path, built, monkeypatch):
    monkeypatch.setenv("CXX", "false")
    before = tree(tmp_path)
    assert_fails_cleanly(run_cli("build", built["q"], "--tokens", "2", "-o", tmp_path / "new" / "deeper" / "f"),
                         "/false exited with status 1", "check CXX")
    assert tree(tmp_path) == before


def test_degenerate_weights_name_the_checkpoint_and_what_to_do(tmp_path):
    from safetensors.numpy import load_file, save_file

    from edgec.zoo import BUNDLED

    ckpt = tmp_path / "ckpt"
    shutil.copytree(BUNDLED["mamba-tiny"].folder, ckpt)
    weights = load_file(str(ckpt / "model.safetensors"))
    weights = {k: np.zeros_like(v) for k, v in weights.items()}  # every tensor zero: finite, but degenerate
    save_file(weights, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    res = run_cli("quantize", ckpt, "--calib", ckpt / "calib.txt", "-o", tmp_path / "q", "--calib-tokens", "512")
    line = assert_fails_cleanly(res, str(ckpt.resolve()), "check the checkpoint")
    assert "Warning" not in line
    assert not (tmp_path / "q").exists()


def test_a_manifest_from_another_qdir_is_caught(built, tmp_path):
    q = tmp_path / "q"
    shutil.copytree(built["q"], q)
    manifest = json.loads((q / "manifest.json").read_text())
    manifest["options"]["hadamard"] = False  # a valid manifest of a different quantization
    (q / "manifest.json").write_text(json.dumps(manifest))
    assert_fails_cleanly(run_cli("build", q, "--target", "cpu", "-o", tmp_path / "o"), "do not belong together")
