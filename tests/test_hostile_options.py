"""Hostile CLI options: each is refused before any work with one line naming the option and the limit."""

from __future__ import annotations

import pytest
from hostile import assert_fails_cleanly, run_cli, tree

from edgec.limits import MAX_GOLDEN_TOKENS, MAX_NEW_TOKENS, MAX_PROMPT_BYTES

CASES = [
    (["quantize", "--calib-tokens", "1"], "--calib-tokens 1 is outside [2, "),
    (["quantize", "--calib-tokens", str(10**12)], "--calib-tokens"),
    (["quantize", "--seq-len", "1"], "--seq-len 1 is outside"),
    (["quantize", "--seq-len", str(10**9)], "--seq-len"),
    (["quantize", "--alpha", "0.3"], "--alpha 0.3"),
    (["quantize", "--alpha", "nan"], "--alpha nan"),
    (["quantize", "--alpha", "1.5"], "--alpha 1.5"),
    (["quantize", "--calib-tokens", "many"], "Invalid value for '--calib-tokens'"),
    (["eval", "--seq-len", "0"], "--seq-len 0"),
    (["eval", "--max-tokens", "1"], "--max-tokens 1"),
    (["build", "--tokens", "0"], "--tokens 0"),
    (["build", "--tokens", str(MAX_GOLDEN_TOKENS + 1)], f"[1, {MAX_GOLDEN_TOKENS}]"),
    (["build", "--tokens", "-5"], "--tokens -5"),
    (["build", "--parallelism", "0"], "--parallelism 0"),
    (["build", "--parallelism", str(10**7)], "--parallelism"),
    (["build", "--target", "gpu"], "--target 'gpu'"),
    (["build", "--device", "zcu999"], "zcu999"),
    (["build", "--target", "orin", "--jetpack", "4.6"], "4.6"),
    (["build", "--target", "orin", "--engine", "maybe"], "--engine 'maybe'"),
    (["build", "--trace", "--no-csim"], "--no-csim"),
    (["run", "F", "--max-new-tokens", "0"], "--max-new-tokens 0"),
    (["run", "F", "--max-new-tokens", str(10**12)], f"[1, {MAX_NEW_TOKENS}]"),
    (["run", "F", "--temperature", "-1"], "--temperature -1"),
    (["run", "F", "--temperature", "nan"], "--temperature nan"),
    (["run", "F", "--temperature", "inf"], "--temperature inf"),
    (["run", "F", "--seed", "-1"], "--seed -1"),
    (["run", "F", "--prompt", "x" * (MAX_PROMPT_BYTES + 1)], "--prompt is longer than"),
    (["run"], "Missing argument"),
    (["quantize", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command"),
]


@pytest.mark.parametrize(("args", "fragment"), CASES, ids=[" ".join(a)[:40] for a, _ in CASES])
def test_bad_option_is_refused_before_work(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    res = run_cli(*args, *(["-o", "out"] if args[0] in ("quantize", "build") else []))
    assert_fails_cleanly(res, fragment)
    assert tree(tmp_path) == before  # nothing written, not even the default output folder


def test_help_and_listing_exit_zero():
    assert run_cli("--help").code == 0
    res = run_cli("models")
    assert res.code == 0 and "mamba-tiny" in res.out
