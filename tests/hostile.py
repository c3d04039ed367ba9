"""Shared tools of the hostile-input corpus (tests/test_hostile_*.py): run the CLI, check how it failed.

``run_cli`` runs ``edgec.entry.main`` in this process (fast: no interpreter start per case);
``run_cli_subprocess`` runs ``python -m edgec`` (for signals and anything process-wide).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CliResult", "assert_fails_cleanly", "assert_no_leftovers", "run_cli", "run_cli_subprocess", "tree"]


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one CLI run."""

    code: int
    out: str
    err: str


def run_cli(*args: str | Path) -> CliResult:
    """Run ``edgec ARGS`` in-process; the exit code is what ``main()`` passed to ``sys.exit`` (0 if none)."""
    from edgec.entry import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["edgec", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(restore_handlers=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_subprocess(*args: str | Path, timeout: float = 300, **kwargs) -> CliResult:
    """Run ``python -m edgec ARGS`` in a child process."""
    proc = subprocess.run([sys.executable, "-m", "edgec", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_fails_cleanly(res: CliResult, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, exactly one stderr line ``edgec: error: ...`` holding every fragment, no traceback."""
    assert res.code == code, f"exit {res.code}, stderr: {res.err!r}"
    assert "Traceback" not in res.err, res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgec: error: "), res.err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def tree(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (relative path -> sha256); '' marks a folder."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_no_leftovers(*folders: Path) -> None:
    """No edgec staging folder (``.NAME.edgec-*``) or csim scratch (``edgec-*``) is left in ``folders``."""
    for folder in folders:
        if folder.is_dir():
            stray = [p.name for p in folder.iterdir() if ".edgec-" in p.name or p.name.startswith("edgec-")]
            assert stray == [], f"left behind in {folder}: {stray}"
