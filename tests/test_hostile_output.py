"""Output safety: never write over an input or a user's file, swap outputs in whole, clean up after killed runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import assert_fails_cleanly, assert_no_leftovers, run_cli, tree

from edgec.outdir import atomic_dir


@pytest.fixture(scope="module")
def qdir_src(tmp_path_factory, tiny_checkpoint, byte_text) -> Path:
    out = tmp_path_factory.mktemp("qdir") / "q"
    res = run_cli("quantize", tiny_checkpoint, "--calib", byte_text, "-o", out, "--calib-tokens", "1024")
    assert res.code == 0, res.err
    return out


@pytest.fixture()
def qdir(tmp_path, qdir_src) -> Path:
    dst = tmp_path / "q"
    shutil.copytree(qdir_src, dst)
    return dst


def _quantize(ckpt: Path, calib: Path, out: Path | str):
    return run_cli("quantize", ckpt, "--calib", calib, "-o", out, "--calib-tokens", "1024")


@pytest.mark.parametrize("target", ["cpu", "fpga", "orin"])
def test_build_over_its_own_input_qdir_is_refused(qdir, target):
    before = tree(qdir)
    assert_fails_cleanly(run_cli("build", qdir, "--target", target, "-o", qdir), str(qdir), "is or contains the input")
    assert tree(qdir) == before


def test_build_into_its_input_is_refused(qdir):
    before = tree(qdir)
    assert_fails_cleanly(run_cli("build", qdir, "-o", qdir / "fpga"), "lies inside the input")
    assert tree(qdir) == before


def test_output_containing_the_checkpoint_is_refused(tmp_path, ckpt, byte_text):
    before = tree(tmp_path)
    assert_fails_cleanly(_quantize(ckpt, byte_text, tmp_path), "is or contains the input")
    assert tree(tmp_path) == before


def test_output_containing_the_calibration_file_is_refused(tmp_path, ckpt, byte_text):
    folder = tmp_path / "data"
    folder.mkdir()
    calib = folder / "calib.txt"
    shutil.copyfile(byte_text, calib)
    assert_fails_cleanly(_quantize(ckpt, calib, folder), "is or contains the input", "calib.txt")
    assert calib.read_bytes() == byte_text.read_bytes()


def test_output_inside_the_bundled_model_is_refused(tmp_path):
    from edgec.zoo import BUNDLED

    folder = BUNDLED["mamba-tiny"].folder
    before = tree(folder)
    assert_fails_cleanly(run_cli("quantize", "-o", folder / "out"), "lies inside the input")
    assert tree(folder) == before


def test_a_users_file_in_an_earlier_qdir_is_never_deleted(qdir, ckpt, byte_text):
    (qdir / "my-notes.txt").write_text("keep me")
    before = tree(qdir)
    assert_fails_cleanly(_quantize(ckpt, byte_text, qdir), "holds files edgec did not write", "my-notes.txt")
    assert tree(qdir) == before


def test_a_users_subfolder_in_an_earlier_qdir_is_never_deleted(qdir, ckpt, byte_text):
    (qdir / "runs" / "a").mkdir(parents=True)
    (qdir / "runs" / "a" / "log.txt").write_text("keep me")
    before = tree(qdir)
    assert_fails_cleanly(_quantize(ckpt, byte_text, qdir), "holds files edgec did not write", "runs/a/log.txt")
    assert tree(qdir) == before


def test_many_strangers_are_counted(qdir, ckpt, byte_text):
    for i in range(8):
        (qdir / f"x{i}.txt").write_text("mine")
    line = assert_fails_cleanly(_quantize(ckpt, byte_text, qdir), "and 3 more")
    assert "x0.txt" in line


def test_a_folder_whose_manifest_is_not_edgecs_is_refused(tmp_path, ckpt, byte_text):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"format": "webpack", "files": {}}))
    before = tree(out)
    assert_fails_cleanly(_quantize(ckpt, byte_text, out), "is not an edgec output")
    assert tree(out) == before


def test_a_non_empty_folder_is_refused(tmp_path, ckpt, byte_text):
    out = tmp_path / "project"
    out.mkdir()
    (out / "main.c").write_text("int main;")
    assert_fails_cleanly(_quantize(ckpt, byte_text, out), "is not an edgec output")
    assert (out / "main.c").read_text() == "int main;"


def test_a_file_as_output_is_refused(tmp_path, ckpt, byte_text):
    out = tmp_path / "file.txt"
    out.write_text("data")
    assert_fails_cleanly(_quantize(ckpt, byte_text, out), "is not a folder")
    assert out.read_text() == "data"


def test_a_path_below_a_file_is_refused(tmp_path, ckpt, byte_text):
    (tmp_path / "file.txt").write_text("data")
    assert_fails_cleanly(_quantize(ckpt, byte_text, tmp_path / "file.txt" / "q"), "file.txt")


def test_an_over_long_output_path_is_refused(tmp_path, ckpt, byte_text):
    assert_fails_cleanly(_quantize(ckpt, byte_text, tmp_path / ("x" * 300)), "x" * 20)


def test_a_symlinked_output_is_refused(tmp_path, qdir, ckpt, byte_text):
    link = tmp_path / "link"
    link.symlink_to(qdir, target_is_directory=True)
    before = tree(qdir)
    assert_fails_cleanly(_quantize(ckpt, byte_text, link), "is a symbolic link")
    assert tree(qdir) == before


@pytest.mark.parametrize("where", ["cwd", "home"])
def test_current_and_home_folders_are_refused(tmp_path, ckpt, byte_text, monkeypatch, where):
    folder = tmp_path / "place"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": "edgec-qdir/2", "files": {}}))
    monkeypatch.chdir(folder) if where == "cwd" else monkeypatch.setenv("HOME", str(folder))
    assert_fails_cleanly(_quantize(ckpt, byte_text, folder), "refusing to replace")
    assert (folder / "manifest.json").exists()


def test_an_empty_folder_is_used(tmp_path, ckpt, byte_text):
    out = tmp_path / "empty"
    out.mkdir()
    assert _quantize(ckpt, byte_text, out).code == 0
    assert (out / "manifest.json").is_file()
    assert_no_leftovers(tmp_path)


def test_an_earlier_output_of_edgec_alone_is_replaced_whole(qdir, ckpt, byte_text, tmp_path):
    res = run_cli("quantize", ckpt, "--calib", byte_text, "-o", qdir, "--calib-tokens", "1024", "--no-hadamard")
    assert res.code == 0, res.err
    assert json.loads((qdir / "manifest.json").read_text())["options"]["hadamard"] is False
    assert_no_leftovers(tmp_path)


def test_files_of_the_projects_own_tools_are_not_strangers(tmp_path):
    out = tmp_path / "fpga"
    assert run_cli("build", "--target", "fpga", "-o", out, "--tokens", "4").code == 0
    (out / "edgec_prj" / "solution1").mkdir(parents=True)  # what build_prj.tcl makes under Vitis HLS
    (out / "edgec_prj" / "solution1" / "csim.log").write_text("ok")
    (out / "vitis_hls.log").write_text("ok")
    res = run_cli("build", "--target", "fpga", "-o", out, "--tokens", "4")
    assert res.code == 0, res.err
    assert not (out / "vitis_hls.log").exists()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _stale_staging(parent: Path, name: str, pid: int) -> Path:
    import socket

    from edgec.outdir import _staging_prefix

    staging = parent / f"{_staging_prefix(parent / name)}{pid}-abc123"
    (staging / "out").mkdir(parents=True)
    (staging / "out" / "partial.bin").write_bytes(b"\0" * 100)
    (staging / ".owner").write_text(f"{socket.gethostname()} {pid}\n{name}\n")
    return staging


def test_staging_of_a_killed_run_is_removed_next_time(tmp_path, ckpt, byte_text):
    _stale_staging(tmp_path, "q", _dead_pid())
    assert _quantize(ckpt, byte_text, tmp_path / "q").code == 0
    assert_no_leftovers(tmp_path)


def test_an_output_caught_between_the_two_renames_is_restored(tmp_path, qdir):
    before = tree(qdir)
    staging = _stale_staging(tmp_path, "q", _dead_pid())
    qdir.rename(staging / "old")  # killed after moving the earlier output aside, before the new one moved in
    with pytest.raises(RuntimeError), atomic_dir(qdir):  # the next run restores it first, then fails
        assert tree(qdir) == before
        raise RuntimeError("this run fails too")
    assert tree(qdir) == before
    assert_no_leftovers(tmp_path)


def test_staging_of_a_live_run_is_left_alone(tmp_path, ckpt, byte_text):
    live = _stale_staging(tmp_path, "q", os.getpid())
    assert _quantize(ckpt, byte_text, tmp_path / "q").code == 0
    assert live.is_dir()


def test_a_failing_build_leaves_the_earlier_output_and_no_staging(tmp_path, qdir):
    before = tree(qdir)
    with pytest.raises(RuntimeError), atomic_dir(qdir) as out:
        (out / "half.bin").write_bytes(b"1")
        (out.parent / "scratch.o").write_bytes(b"2")
        raise RuntimeError("compiler crashed")
    assert tree(qdir) == before
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("other", ["out[1]", "out?", "out*", "o" * 120 + "b"])
def test_a_run_never_touches_another_outputs_staging(tmp_path, qdir, other):
    """Names with glob characters, or sharing their first 100 characters, do not share staging folders."""
    name = "out1" if not other.startswith("o" * 120) else "o" * 120 + "a"
    parked = _stale_staging(tmp_path, name, _dead_pid())
    qdir.rename(parked / "old")  # a killed run for NAME left its earlier output parked
    before = tree(parked)
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / other):
        raise RuntimeError("a failing run for another output")
    assert tree(parked) == before


def test_a_keyboard_interrupt_between_the_renames_keeps_the_earlier_output(tmp_path, qdir, monkeypatch):
    """Library use (no edgec signal handlers): Ctrl-C is a KeyboardInterrupt, and may land mid-swap."""
    before = tree(qdir)
    real_rename = Path.rename

    def interrupted_rename(self, target):
        if self.name == "out":  # the second rename: the earlier output is already parked
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", interrupted_rename)
    with pytest.raises(KeyboardInterrupt), atomic_dir(qdir) as out:
        (out / "new.bin").write_bytes(b"new")
    monkeypatch.undo()
    assert tree(qdir) == before
    assert_no_leftovers(tmp_path)
