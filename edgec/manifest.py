"""manifest.json: what an edgec output folder (a QDIR or a build) holds, with a hash of every file.

The convention every output follows:

- ``format``: ``"edgec-<kind>/<version>"`` (``edgec-qdir/1``, ``edgec-onnx/1``, ...);
- ``files``: relative path -> sha256 of every file edgec wrote except manifest.json itself and
  the ``unhashed`` ones;
- ``unhashed``: relative paths whose bytes legitimately vary (timings in report.json) or that
  the folder's own recipe may add later (step.engine, layers.json). They belong to edgec too.

A consumer reads a file only after :func:`check_files` has matched it against its hash; a file it
needs that has no hash is itself an error (a manifest stripped of an entry proves nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgec.errors import ArtifactError
from edgec.frontends.validate import one_line

__all__ = ["MANIFEST", "check_files", "describe", "manifest_field", "owned_files", "read_manifest", "sha256",
           "uses", "write_manifest"]

MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number"}
_KINDS = {
    "edgec-qdir/": "a QDIR (a quantized model written by edgec quantize)",
    "edgec-fpga/": "an FPGA build (a Vitis HLS project written by edgec build --target fpga)",
    "edgec-onnx/": "a CPU build (ONNX written by edgec build --target cpu)",
    "edgec-orin/": "an Orin build (ONNX for TensorRT written by edgec build --target orin)",
}


def sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (constant memory for multi-GB files)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, fields: dict[str, Any], unhashed: Iterable[str] = ()) -> dict[str, Any]:
    """Hash every file below ``folder`` (but manifest.json and ``unhashed``) and write manifest.json.

    ``fields`` must hold ``format``; the result is deterministic (sorted keys, sorted paths).
    """
    skip = {MANIFEST, *unhashed}
    files = {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and str(p.relative_to(folder)) not in skip}
    manifest = {**fields, "files": files, "unhashed": sorted(set(unhashed))}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def describe(fmt: str) -> str:
    """What a folder of manifest format ``fmt`` is, in words ("a QDIR (...)", "an FPGA build (...)")."""
    return next((text for prefix, text in _KINDS.items() if fmt.startswith(prefix)), f"an {fmt} folder")


def uses(fmt: str, folder: Path) -> str:
    """The edgec commands that take a folder of manifest format ``fmt``, as advice."""
    if fmt.startswith("edgec-qdir/"):
        return f"evaluate it with edgec eval {folder} or build it with edgec build {folder}"
    if fmt.startswith(("edgec-onnx/", "edgec-orin/")):
        return f"run it with edgec run {folder} or check it with edgec verify {folder}"
    return f"check it with edgec verify {folder}"


def _safe_relative(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and "\\" not in name


def read_manifest(folder: Path, kinds: tuple[str, ...] = (), what: str = "an edgec output",
                  fix: str = "rebuild it") -> dict[str, Any]:
    """The manifest of ``folder``, structurally checked; ``kinds`` restricts ``format`` (e.g. "edgec-qdir/").

    Every failure is one :class:`ArtifactError` line naming the folder and what is wrong; ``fix`` says
    what to do about an altered folder ("rebuild it", "re-run edgec quantize").
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}, so it is not {what}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # RecursionError: nested too deeply
        raise ArtifactError(f"{path}: garbled ({one_line(err)}); the folder was altered: {fix}") from None
    except OSError as err:
        raise ArtifactError(f"{path}: cannot be read ({err.strerror})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: not a JSON object; the folder was altered: {fix}")
    fmt = manifest.get("format")
    if not isinstance(fmt, str) or not fmt.startswith("edgec-"):
        raise ArtifactError(f"{path}: format {fmt!r} is not an edgec format, so {folder} is not {what}")
    if kinds and not fmt.startswith(kinds):
        raise ArtifactError(f"{folder}: is an {fmt} folder, not {what}")
    files, unhashed = manifest.get("files"), manifest.get("unhashed", [])
    if not isinstance(files, dict) or not all(isinstance(k, str) and _safe_relative(k) and isinstance(v, str)
                                              for k, v in files.items()):
        raise ArtifactError(f"{path}: its 'files' table is missing or garbled; the folder was altered: {fix}")
    if not isinstance(unhashed, list) or not all(isinstance(u, str) and _safe_relative(u) for u in unhashed):
        raise ArtifactError(f"{path}: its 'unhashed' list is garbled; the folder was altered: {fix}")
    return manifest


def manifest_field(folder: Path, manifest: dict[str, Any], key: str, kind: type, fix: str = "rebuild it") -> Any:
    """``manifest[key]``, which must be a ``kind`` (a bool is not an int); else one ArtifactError line."""
    value = manifest.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        state = "missing" if key not in manifest else f"not a JSON {_JSON_NAMES.get(kind, kind.__name__)}"
        raise ArtifactError(f"{Path(folder) / MANIFEST}: its {key!r} entry is {state}; the folder was altered: {fix}")
    return value



def check_files(folder: Path, manifest: dict[str, Any], names: Iterable[str], fix: str = "rebuild it") -> None:
    """Each of ``names`` (files a consumer is about to read) must be listed and match its hash."""
    names = list(names)
    for name in names:  # a missing entry is named before any (possibly long) hashing
        if name not in manifest["files"]:
            raise ArtifactError(f"{folder}: {MANIFEST} has no hash for {name}, so it cannot be trusted; "
                                f"the folder was altered: {fix}")
    for name in names:
        digest = manifest["files"][name]
        path = Path(folder) / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in {MANIFEST}); the folder was altered: {fix}")
        try:
            digest_now = sha256(path)
        except OSError as err:
            raise ArtifactError(f"{path}: cannot be read ({err.strerror}); fix its permissions or {fix}") from None
        if digest_now != digest:
            raise ArtifactError(f"{path}: does not match its hash in {MANIFEST}; the folder was altered: {fix}")


def owned_files(manifest: dict[str, Any]) -> set[str]:
    """Relative paths edgec wrote (or its recipe may add) in a folder with this manifest."""
    return {MANIFEST, *manifest.get("files", {}), *manifest.get("unhashed", [])}
