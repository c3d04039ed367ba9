"""Ctrl-C and SIGTERM at several points of quantize and build: honest exit code, one line, nothing left behind.

Each run replaces an earlier output; after the interrupt that output must be intact, no staging
folder or compiler scratch may remain (next to the output or in $TMPDIR), and no child process
(g++, the testbench) may outlive edgec.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile import assert_no_leftovers, run_cli, tree


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> dict[str, Path]:
    """Earlier outputs of the bundled model to be replaced: a QDIR and an FPGA build."""
    base = tmp_path_factory.mktemp("earlier")
    assert run_cli("quantize", "-o", base / "q", "--calib-tokens", "1024").code == 0
    assert run_cli("build", base / "q", "--target", "fpga", "-o", base / "fpga", "--tokens", "4").code == 0
    return {"q": base / "q", "fpga": base / "fpga"}


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"edgec ended (exit {proc.returncode}) before the point to interrupt it"
        assert time.monotonic() < deadline, "the point to interrupt was never reached"
        time.sleep(0.02)


def _handles_sigterm(proc: subprocess.Popen) -> bool:
    """edgec's main() is running: it has installed its SIGTERM handler (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return False
    caught = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _staged(parent: Path, name: str = "") -> Callable[[], bool]:
    """The staging folder exists (and holds ``out/name``, if given)."""
    return lambda: any(".edgec-" in p.name and (not name or (p / "out" / name).exists()) for p in parent.iterdir())


def _child_running(name: str, under: Path) -> Callable[[], bool]:
    return lambda: any(name in c for c in _processes_mentioning(str(under)))


def _after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


POINTS = {
    # command, earlier output, when to interrupt
    "quantize-loading": ("quantize", "q", lambda work: _after(0.2)),
    "quantize-calibrating": ("quantize", "q", lambda work: _after(1.5)),
    "fpga-compiling": ("fpga", "fpga", lambda work: _child_running("g++", work)),
    "fpga-csim-running": ("fpga", "fpga", lambda work: _child_running("tb_edgec", work)),
    "fpga-staged": ("fpga", "fpga", lambda work: _staged(work)),
    "cpu-exporting": ("cpu", "q2", lambda work: _after(0.3)),
    "cpu-staged": ("cpu", "q2", lambda work: _staged(work, "step.onnx")),
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", list(POINTS))
def test_interrupt_leaves_the_earlier_output_intact(tmp_path, earlier, point, sig):
    command, kind, when = POINTS[point]
    work, scratch = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    out = work / "out"
    shutil.copytree(earlier["q" if kind == "q2" else kind], out)
    before = tree(out)
    if command == "quantize":
        args = ["quantize", "-o", out]
    else:  # build from a copy of the QDIR (not the output: that would be refused as the input)
        shutil.copytree(earlier["q"], work / "qdir")
        args = ["build", work / "qdir", "--target", command, "-o", out, "--tokens", "32"]
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-m", "edgec", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(lambda: _handles_sigterm(proc), proc)  # a signal before that is Python's, not edgec's
        _wait_for(when(work), proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    assert err == "edgec: interrupted\n"
    assert tree(out) == before
    assert_no_leftovers(work, scratch)
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []  # .ses: ONNX Runtime's session id
    assert _processes_mentioning(str(work)) == []


def test_interrupted_eval_exits_130(tmp_path, earlier):
    proc = subprocess.Popen([sys.executable, "-m", "edgec", "eval", str(earlier["q"])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _handles_sigterm(proc), proc)
        _wait_for(_after(1.0), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "edgec: interrupted\n"
