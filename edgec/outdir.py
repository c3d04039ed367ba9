"""Write an output folder safely: staged beside the target, moved into place whole, never over data.

Rules (each refusal is one OutputError line):
- the output is never an input, nor a folder that contains an input or lies inside one;
- an existing folder is replaced only when it is an edgec output holding nothing but edgec's own
  files (those its manifest.json lists); anything else is refused and the strangers are named;
- the new output is built in a staging folder ``PARENT/.NAME.HASH.edgec-<pid>-<random>/out`` and
  swapped in with two renames during which SIGINT/SIGTERM are only recorded; the staging folder is
  removed on every exit path (errors, Ctrl-C, SIGTERM), after putting an earlier output parked in it
  back. A run killed outright (SIGKILL, power loss) leaves it behind; the next run for the same
  target removes it, and puts the earlier output back if the kill came between the two renames.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgec.errors import ArtifactError, OutputError
from edgec.exits import raise_if_pending, signals_deferred
from edgec.manifest import owned_files, read_manifest

__all__ = ["atomic_dir", "check_output"]

_OWNER = ".owner"  # "<host> <pid>" of the run that made a staging folder, then the output's name
_ABANDONED_AFTER_S = 600  # a staging folder with no owner file is someone's only after this long
_MAX_NAMED = 5
_NAME_IN_PREFIX = 100  # characters of the output's name in its staging folder's name


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise OutputError(f"{path}: cannot be resolved ({err}); choose another output path") from None


def _check_not_input(target: Path, inputs: Iterable[Path]) -> None:
    out = _resolved(target)
    for given in inputs:
        try:
            inp = Path(given).resolve()
        except (OSError, RuntimeError):  # a symlink loop: its reader names the problem
            inp = Path(os.path.abspath(given))
        if out == inp or out in inp.parents:
            raise OutputError(f"{target}: is or contains the input {given}; write the output to a separate "
                              "folder with -o")
        if inp in out.parents:
            raise OutputError(f"{target}: lies inside the input {given}; write the output to a separate folder "
                              "with -o")


def _strangers(target: Path) -> list[str]:
    """Files in ``target`` that its edgec manifest does not account for (raises if it is no edgec output)."""
    owned = owned_files(read_manifest(target))  # an owned folder (a tool's project folder) covers its contents

    def is_owned(rel: Path) -> bool:
        return any(str(part) in owned for part in (rel, *rel.parents))

    found = (p.relative_to(target) for p in sorted(target.rglob("*")) if not p.is_dir() or p.is_symlink())
    return [str(rel) for rel in found if not is_owned(rel)]


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run made for its output, deepest first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _check_name(target: Path) -> None:
    """Refuse a path the file system cannot hold (a name over NAME_MAX bytes), before any work."""
    existing = next((p for p in target.absolute().parents if p.is_dir()), Path("/"))
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in target.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"{target}: the name {part[:40]}... is longer than this file system's {name_max} "
                              "bytes; choose a shorter output path")


def _check_replaceable(target: Path) -> None:
    _check_name(target)
    if target.is_symlink():
        raise OutputError(f"{target}: is a symbolic link; pass the folder it points to, or a new path, with -o")
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder; choose another output path")
    resolved, cwd = _resolved(target), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == Path.home().resolve():
        raise OutputError(f"{target}: refusing to replace the current, a parent or the home folder; "
                          "pass a new folder with -o")
    if not any(target.iterdir()):
        return
    try:
        strangers = _strangers(target)
    except ArtifactError:
        raise OutputError(f"{target}: exists, is not empty and is not an edgec output; "
                          "choose a new or empty folder with -o") from None
    if strangers:
        named = ", ".join(strangers[:_MAX_NAMED]) + (f" and {len(strangers) - _MAX_NAMED} more"
                                                    if len(strangers) > _MAX_NAMED else "")
        raise OutputError(f"{target}: holds files edgec did not write ({named}); move them away or choose "
                          "another folder with -o")


def check_output(target: str | Path, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse, before any work, an output path that would overwrite an input or a user's files."""
    target = Path(target)
    _check_not_input(target, [Path(i) for i in inputs])
    _check_replaceable(target)


def _staging_prefix(target: Path) -> str:
    """Staging folders are ``.NAME.HASH.edgec-*``: NAME cut so that a legal output name never becomes too long,
    HASH (of the whole name) so that two names sharing their first characters never share staging folders."""
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:8]
    return f".{target.name[:_NAME_IN_PREFIX]}.{digest}.edgec-"


def _owner_alive(staging: Path) -> bool:
    try:
        host, pid = (staging / _OWNER).read_text().split("\n")[0].split()
    except (OSError, ValueError):
        return time.time() - staging.stat().st_mtime < _ABANDONED_AFTER_S
    if host != socket.gethostname():
        return True  # another machine's run (a shared folder): not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _clean_stale(target: Path) -> None:
    """Remove staging folders of killed runs for ``target``; restore an output caught mid-swap."""
    prefix = _staging_prefix(target)
    for staging in target.parent.iterdir():  # not glob: an output name may hold [, * or ?
        try:
            if not staging.name.startswith(prefix) or not staging.is_dir() or _owner_alive(staging):
                continue
            made_for = _staged_for(staging)
            if made_for not in (None, target.name):
                continue  # another output's, however alike the names
            old = staging / "old"
            if old.is_dir() and made_for == target.name and not os.path.lexists(target):
                old.rename(target)
            shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            continue  # not ours to remove after all (permissions): leave it


def _staged_for(staging: Path) -> str | None:
    """The output name a staging folder was made for (line 2 of its owner file)."""
    try:
        return (staging / _OWNER).read_text().split("\n")[1]
    except (OSError, IndexError):
        return None


def _missing_parents(target: Path) -> list[Path]:
    """The ancestors of ``target`` that do not exist yet, deepest first (made now, removed if nothing lands)."""
    return [p for p in target.absolute().parents if not p.exists()]


def _make_staging(target: Path, made: list[Path]) -> tuple[Path, Path]:
    """The staging folder for ``target`` (with its owner file) and the empty output folder inside it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(target)
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(target)}{os.getpid()}-", dir=target.parent))
        (staging / _OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n{target.name}\n")
        out = staging / "out"
        out.mkdir()
        out.chmod(0o755)  # an ordinary folder, whatever the umask of mkdtemp
        return staging, out
    except OSError as err:
        _remove_empty(made)
        raise OutputError(f"{target}: cannot write the output folder ({err.strerror}); choose a writable path") \
            from None


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty folder that becomes ``target`` only if the block succeeds.

    The yielded folder's parent is the private staging folder: scratch files put there (compiler
    output, temporary runs) are removed with it on every exit path.
    """
    target = Path(target)
    _check_replaceable(target)
    made = _missing_parents(target)
    with signals_deferred():  # a signal must not fall between making the staging folder and owning its clean-up
        staging, out = _make_staging(target, made)
    try:
        raise_if_pending()
        try:
            yield out
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            raise OutputError(f"{target}: writing the output failed ({where}{err.strerror or err}); the "
                              "earlier output, if any, is unchanged") from None
        _check_replaceable(target)  # it may have changed during a long build
        raise_if_pending()  # a signal swallowed on the way (in a callback) stops the run before the swap
        with signals_deferred():
            if target.exists():
                target.rename(staging / "old")
            try:
                out.rename(target)
            except OSError:
                if (staging / "old").exists():
                    (staging / "old").rename(target)
                raise
    finally:
        with signals_deferred():
            if (staging / "old").is_dir() and not os.path.lexists(target):  # stopped between the two renames
                (staging / "old").rename(target)  # (a KeyboardInterrupt in library use): the earlier output
            shutil.rmtree(staging, ignore_errors=True)
            if not os.path.lexists(target):
                _remove_empty(made)
    raise_if_pending()  # one that came during the swap: the new output is complete, but the run was stopped
