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


@pytest.mark.parametrize("command", [["eval"], ["build", "--target", "cpu"]])
def test_a_qdir_refuses_calibration_data(built, tmp_path, command):
    data = tmp_path / "d.txt"
    data.write_text("some calibration text")
    extra = ["-o", tmp_path / "o"] if command[0] == "build" else []
    assert_fails_cleanly(run_cli(command[0], built["q"], *command[1:], "--calib", data, *extra), "drop --calib")


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


# ------------------------------------------------------------------- second round

def _rehash(folder: Path, **fields) -> None:
    """Rewrite manifest.json so its hashes (and ``fields``) match the folder: a consistent forgery."""
    from edgec.manifest import sha256

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {name: sha256(folder / name) for name in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest | fields))


@pytest.fixture()
def cpu_copy(built, tmp_path) -> Path:
    dst = tmp_path / "cpu"
    shutil.copytree(built["cpu"], dst)
    return dst


def test_verify_refuses_nan_logits_from_step_onnx(cpu_copy):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(cpu_copy / "step.onnx")
    hit = next(t for t in model.graph.initializer if "logits" in t.name and t.data_type == onnx.TensorProto.FLOAT)
    hit.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(hit).shape, np.nan, np.float32), hit.name))
    onnx.save(model, cpu_copy / "step.onnx")
    _rehash(cpu_copy)
    assert_fails_cleanly(run_cli("verify", cpu_copy), "step.onnx logits differ")


@pytest.mark.parametrize("kind", ["nan", "empty"])
def test_verify_refuses_golden_data_that_proves_nothing(cpu_copy, kind):
    with np.load(cpu_copy / "golden.npz") as npz:
        tokens, logits = npz["tokens"], npz["logits"]
    if kind == "nan":
        logits = np.full_like(logits, np.nan)
    else:
        tokens, logits = tokens[:0], logits[:0]
    np.savez(cpu_copy / "golden.npz", tokens=tokens, logits=logits)
    _rehash(cpu_copy)
    assert_fails_cleanly(run_cli("verify", cpu_copy), "golden.npz", "holds no golden tokens, or logits that are not")


def test_a_forged_vocab_size_is_caught_by_run_and_verify(cpu_copy):
    _rehash(cpu_copy, vocab_size=300)
    for command in (["run", cpu_copy, "--max-new-tokens", "2"], ["verify", cpu_copy]):
        res = run_cli(*command)
        assert_fails_cleanly(res, "says vocab_size 300, but step.onnx's logits have 256")
        assert res.out == ""


@pytest.mark.parametrize("command", ["eval", "build", "verify", "run"])
def test_a_deeply_nested_manifest_is_one_line(built, tmp_path, command):
    folder = tmp_path / "f"
    shutil.copytree(built["cpu" if command in ("verify", "run") else "q"], folder)
    (folder / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    args = {"build": ["--target", "cpu", "-o", tmp_path / "o"], "run": ["--max-new-tokens", "1"]}.get(command, [])
    assert_fails_cleanly(run_cli(command, folder, *args), "manifest.json: garbled")


def test_a_full_disk_while_writing_the_qdir_is_bad_input(tmp_path, monkeypatch):
    import errno

    import edgec.qdir

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(edgec.qdir, "write_safetensors", full_disk)
    assert_fails_cleanly(run_cli("quantize", "-o", tmp_path / "q", "--calib-tokens", "512"),
                         "writing the output failed", "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_model_safetensors_wins_over_an_index_as_in_transformers(tmp_path, tiny_checkpoint):
    """A folder holding both: transformers' from_pretrained reads model.safetensors, and so must edgec."""
    from edgec.frontends.hf_checkpoint import load_checkpoint

    both = tmp_path / "both"
    shutil.copytree(tiny_checkpoint, both)
    (both / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "missing.safetensors"}}))
    assert load_checkpoint(both).weights.keys() == load_checkpoint(tiny_checkpoint).weights.keys()


def test_a_tokenizer_larger_than_the_model_is_refused_at_load(tmp_path, tiny_checkpoint, byte_text):
    from tokenizers import Tokenizer, models

    ckpt = tmp_path / "m"
    shutil.copytree(tiny_checkpoint, ckpt)
    Tokenizer(models.WordLevel({f"w{i}": i for i in range(300)}, unk_token="w0")).save(str(ckpt / "tokenizer.json"))
    assert_fails_cleanly(run_cli("quantize", ckpt, "--calib", byte_text, "-o", tmp_path / "q"),
                         "tokenizer.json: has 300 token ids", "vocab_size is 256")


def test_an_empty_or_ambiguous_model_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_fails_cleanly(run_cli("quantize", "", "-o", "q"), "MODEL is empty")
    (tmp_path / "mamba-tiny").mkdir()
    assert_fails_cleanly(run_cli("quantize", "mamba-tiny", "-o", "q"), "names both the bundled model",
                         "./mamba-tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mamba-tiny"]


def test_cxx_may_carry_a_launcher_and_flags(built, tmp_path, monkeypatch):
    assert run_cli("build", built["q"], "--tokens", "2", "-o", tmp_path / "f").code == 0
    monkeypatch.setenv("CXX", "env g++ -O0")
    res = run_cli("verify", tmp_path / "f")
    assert res.code == 0, res.err
    monkeypatch.setenv("CXX", "true")
    assert_fails_cleanly(run_cli("verify", tmp_path / "f"), "reported success but wrote no program")


def test_a_3d_npy_is_not_flattened_silently(tmp_path):
    np.save(tmp_path / "ids.npy", np.zeros((10, 10, 3), np.int64))
    assert_fails_cleanly(run_cli("quantize", "--calib", tmp_path / "ids.npy", "-o", tmp_path / "q"),
                         "ids.npy", "not of shape (10, 10, 3)")
