"""Write an output folder atomically: build it in a temporary sibling, then move it into place.

An existing folder is only ever replaced when it is itself an edgec output (it holds an edgec
manifest.json); anything else — a user's project, the current directory — is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgec.errors import OutputError

__all__ = ["atomic_dir", "sha256"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_edgec_output(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith("edgec-")
    except (OSError, ValueError):
        return False


def _check_replaceable(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder; choose another output path")
    resolved = target.resolve()
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents or resolved == Path.home():
        raise OutputError(f"{target}: refusing to replace the current, a parent or the home folder; "
                          "pass a new folder with -o")
    if any(target.iterdir()) and not _is_edgec_output(target):
        raise OutputError(f"{target}: exists, is not empty and is not an edgec output; "
                          "choose a new or empty folder with -o")


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    _check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the output is an ordinary folder
    except OSError as err:
        raise OutputError(
            f"{target}: cannot write the output folder ({err.strerror}); choose a writable path") from None
    try:
        try:
            yield tmp
        except OSError as err:
            raise OutputError(f"{target}: writing the output failed ({err}); nothing was changed") from None
        backup = None
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            backup.rmdir()
            target.rename(backup)
        tmp.rename(target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
