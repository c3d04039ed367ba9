"""A persisted quantized model (QDIR): IR, int8 weights, scales, calibration settings, manifest.

Layout: manifest.json (edgec.manifest convention: format, file hashes; plus source, config, options,
calibration, notes), graphs.json (both entry graphs), weights.safetensors (int8 weights ``q/<name>``,
per-channel scales ``scale/<name>``, float parameters ``float/<name>``, the int profile's lowered
constants ``int/<node>/<key>``: LUTs, multipliers, shifts, decay coefficients), scales.json (activation
and state scales, storage widths), tokenizer.json (a copy of the source's, when it has one: a build
needs nothing but the QDIR). Later builds load this instead of recalibrating.

``source`` in the manifest records where the float model came from, for eval's float reference:
``{"kind": "checkpoint", "path": ABSOLUTE, "files": {name: sha256}}`` (config.json, the safetensors
files and index, tokenizer.json), ``{"kind": "bundled", "name": NAME, "files": ...}``, or
``{"kind": "live", "name": DESCRIPTION, "files": {}}`` for a model quantized in memory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import ArtifactError, CheckpointError, EdgecError
from edgec.families import FAMILIES
from edgec.frontends.validate import load_tokenizer
from edgec.frontends.weights import read_safetensors, write_safetensors
from edgec.ir.serde import graph_from_json, graph_to_json
from edgec.manifest import MANIFEST, check_files, describe, manifest_field, read_manifest, sha256, uses, write_manifest
from edgec.outdir import atomic_dir
from edgec.passes.quantize import QuantizedModel, QuantOptions

__all__ = ["FORMAT", "TOKENIZER", "is_edgec_output", "is_qdir", "load_qdir", "qdir_tokenizer", "read_qdir_manifest",
           "save_qdir", "source_files", "source_folder"]

FORMAT = "edgec-qdir/2"
TOKENIZER = "tokenizer.json"
FIX = "re-run edgec quantize"
_CONTENT_ID = "edgec_qdir_content"  # weights.safetensors metadata key, see _content_id
_READ = ("weights.safetensors", "graphs.json", "scales.json")  # what load_qdir reads, besides the manifest


def _json_text(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _content_id(manifest_fields: dict[str, Any], graphs: bytes, scales: bytes) -> str:
    """A digest binding a QDIR's parts together: config and options, graphs.json and scales.json.

    Stored in weights.safetensors' metadata (the file itself is hash-checked): files swapped in from
    another QDIR, with the manifest's hashes rewritten to match, no longer agree with it.
    """
    digest = hashlib.sha256(_json_text({k: manifest_fields[k] for k in ("config", "options")}).encode())
    digest.update(hashlib.sha256(graphs).digest())
    digest.update(hashlib.sha256(scales).digest())
    return digest.hexdigest()


def source_folder(source: dict[str, Any]) -> Path | None:
    """The checkpoint folder a QDIR's ``source`` record names (None for a live model or an unknown bundled name)."""
    from edgec.zoo import BUNDLED

    if source.get("kind") == "checkpoint":
        return Path(source["path"])
    if source.get("kind") == "bundled" and source.get("name") in BUNDLED:
        return BUNDLED[source["name"]].folder
    return None


def source_files(folder: Path) -> list[str]:
    """The files of a checkpoint folder that loading it reads: config, safetensors (and index), tokenizer."""
    names = ["config.json", "model.safetensors.index.json", TOKENIZER]
    names += [p.name for p in folder.glob("*.safetensors")]
    return sorted(n for n in set(names) if (folder / n).is_file())


def _source_record(name: str) -> dict[str, Any]:
    from edgec.zoo import BUNDLED

    if name in BUNDLED:
        record: dict[str, Any] = {"kind": "bundled", "name": name}
        folder = BUNDLED[name].folder
    elif name and (Path(name) / "config.json").is_file():  # edgec quantize passes an absolute path
        folder = Path(name).resolve()
        record = {"kind": "checkpoint", "path": str(folder)}
    else:
        return {"kind": "live", "name": name, "files": {}}
    return record | {"files": {n: sha256(folder / n) for n in source_files(folder)}}


def save_qdir(qm: QuantizedModel, target: str | Path, tokenizer: Path | None = None) -> Path:
    """Write ``qm`` to ``target`` atomically (nothing half-written on failure).

    ``qm.source`` (a bundled name or an absolute checkpoint path) is recorded with the hashes of the
    checkpoint's files; its tokenizer.json (or ``tokenizer``) is copied in.
    """
    source = _source_record(qm.source)
    folder = source_folder(source)
    if tokenizer is None and folder is not None and TOKENIZER in source["files"]:
        tokenizer = folder / TOKENIZER
    with atomic_dir(target) as tmp:
        tensors = {f"q/{k}": v for k, v in qm.qweights.items()}
        tensors |= {f"scale/{k}": v.astype(np.float32) for k, v in qm.wscales.items()}
        tensors |= {f"float/{k}": v.astype(np.float32) for k, v in qm.fparams.items()}
        tensors |= {f"int/{k}": v.astype(np.int64) for k, v in qm.int_constants.items()}
        tensors = {k: np.asarray(v, order="C") for k, v in tensors.items()}  # keeps 0-d scalars, copies nothing
        graphs = _json_text({k: graph_to_json(g) for k, g in qm.graphs.items()})
        scales = _json_text({"activations": qm.scales, "state": qm.state_scales, "bits": qm.bits})
        fields = {"format": FORMAT, "family": qm.spec.family, "source": source, "config": qm.spec.to_config(),
                  "options": asdict(qm.options), "calibration": qm.calibration, "notes": qm.notes}
        content_id = _content_id(fields, graphs.encode(), scales.encode())
        write_safetensors(tmp / "weights.safetensors", tensors, {_CONTENT_ID: content_id})
        (tmp / "graphs.json").write_text(graphs, encoding="utf-8")
        (tmp / "scales.json").write_text(scales, encoding="utf-8")
        if tokenizer is not None:
            shutil.copyfile(tokenizer, tmp / TOKENIZER)
        write_manifest(tmp, fields)
    return Path(target)


def is_edgec_output(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a manifest.json: an edgec output, sound or not."""
    return (Path(path) / MANIFEST).is_file()


def is_qdir(path: str | Path) -> bool:
    """True when ``path`` holds a manifest.json whose format is a QDIR's (nothing else is checked)."""
    try:
        return read_manifest(Path(path))["format"].startswith("edgec-qdir/")
    except ArtifactError:
        return False


def read_qdir_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the QDIR ``path``, with every key load_qdir uses type-checked (one line if not)."""
    manifest = read_manifest(path, what="a QDIR", fix=FIX)
    fmt = manifest["format"]
    if not fmt.startswith("edgec-qdir/"):
        raise ArtifactError(f"{path}: is {describe(fmt)}, not a model (eval and build take a QDIR, a "
                            f"checkpoint folder or a bundled name); {uses(fmt, path)}")
    if fmt != FORMAT:
        raise ArtifactError(f"{path}: QDIR format {fmt!r} is not {FORMAT!r} (another edgec version); {FIX}")
    if isinstance(manifest.get("source"), str):
        raise ArtifactError(f"{path}: written by an older edgec (its source checkpoint has no hashes); {FIX}")
    for key, kind in (("config", dict), ("options", dict), ("calibration", dict), ("notes", list),
                      ("source", dict)):
        manifest_field(path, manifest, key, kind, FIX)
    source, where = manifest["source"], f"{path / MANIFEST}: its 'source' entry"
    if source.get("kind") not in ("checkpoint", "bundled", "live"):
        raise ArtifactError(f"{where} has no known kind; the folder was altered: {FIX}")
    key = "path" if source["kind"] == "checkpoint" else "name"
    files = source.get("files")
    if not isinstance(source.get(key), str) or not isinstance(files, dict) or not all(
            isinstance(k, str) and "/" not in k and isinstance(v, str) for k, v in files.items()):
        raise ArtifactError(f"{where} is garbled ({key!r} or 'files'); the folder was altered: {FIX}")
    if not all(isinstance(n, str) for n in manifest["notes"]):
        raise ArtifactError(f"{path / MANIFEST}: its 'notes' entry is not a list of strings; the folder was "
                            f"altered: {FIX}")
    options = _dataclass_types(QuantOptions)
    unknown = sorted(set(manifest["options"]) - set(options))
    if unknown:
        raise ArtifactError(f"{path / MANIFEST}: options[{unknown[0]!r}] is not a known option; the folder was "
                            f"altered: {FIX}")
    _check_types(path / MANIFEST, "options", manifest["options"], options)
    if manifest.get("family") not in FAMILIES:
        raise ArtifactError(f"{path / MANIFEST}: family {manifest.get('family')!r} is not one edgec knows "
                            f"({', '.join(FAMILIES)}); {FIX}")
    return manifest


def qdir_tokenizer(path: Path, manifest: dict[str, Any]) -> Path | None:
    """The QDIR's tokenizer.json, checked against its hash (None when the source had none).

    A tokenizer.json on disk that the manifest does not list, or a listed one that is gone, is an error.
    """
    path = Path(path)
    if TOKENIZER in manifest["files"] or (path / TOKENIZER).exists() or TOKENIZER in manifest["source"]["files"]:
        check_files(path, manifest, [TOKENIZER], FIX)
        try:
            ids = load_tokenizer(path / TOKENIZER).get_vocab_size()
        except EdgecError as err:
            raise ArtifactError(f"{err}; the QDIR was altered: {FIX}") from None
        vocab = manifest["config"].get("vocab_size")
        if isinstance(vocab, int) and ids > vocab:
            raise ArtifactError(f"{path / TOKENIZER}: has {ids} token ids, more than the model's {vocab}; {FIX}")
        return path / TOKENIZER
    return None


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a JSON object"}


def _check_types(where: Path, what: str, table: Any, expected: dict[str, tuple[type, ...]]) -> None:
    """Each ``expected`` key of ``table`` must hold one of its types (a bool is no number); else one line."""
    if not isinstance(table, dict):
        raise ArtifactError(f"{where}: {what} is not a JSON object; the folder was altered: {FIX}")
    for key, types in expected.items():
        value = table.get(key)
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            state = "missing" if key not in table else f"{json.dumps(value)[:40]}, not {_NAMES[types[-1]]}"
            raise ArtifactError(f"{where}: {what}[{key!r}] is {state}; the folder was altered: {FIX}")


def _dataclass_types(cls: type) -> dict[str, tuple[type, ...]]:
    return {f.name: _TYPES[str(f.type)] for f in fields(cls)}


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # RecursionError: nested too deeply
        raise ArtifactError(f"{path}: garbled ({str(err)[:200]}); {FIX}") from None


def load_qdir(path: str | Path, manifest: dict[str, Any] | None = None) -> QuantizedModel:
    """Read a QDIR written by save_qdir; every file is checked against its manifest hash before it is read."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    manifest = manifest if manifest is not None else read_qdir_manifest(path)
    try:  # the config first: a garbled field is named, before any file is read
        spec = FAMILIES[manifest["family"]].spec(manifest["config"], source=str(path / MANIFEST))
    except EdgecError as err:
        raise ArtifactError(f"{err}; {FIX}") from None
    check_files(path, manifest, _READ, FIX)
    try:
        with safe_open(str(path / "weights.safetensors"), "np") as f:
            stored_id = (f.metadata() or {}).get(_CONTENT_ID)
        tensors = read_safetensors(path / "weights.safetensors")
    except (SafetensorError, ValueError, OSError, CheckpointError) as err:
        raise ArtifactError(f"{path / 'weights.safetensors'}: unreadable ({err}); {FIX}") from None
    graphs_bytes, scales_bytes = (path / "graphs.json").read_bytes(), (path / "scales.json").read_bytes()
    if stored_id != _content_id(manifest, graphs_bytes, scales_bytes):
        raise ArtifactError(f"{path}: its files do not belong together (weights.safetensors was written with "
                            f"another graphs.json, scales.json or config); {FIX}")
    graphs_json, scales = _json(path / "graphs.json"), _json(path / "scales.json")
    _check_types(path / "scales.json", "the file", scales, {k: (dict,) for k in ("activations", "state", "bits")})
    for key, kind in (("activations", (int, float)), ("state", (int, float)), ("bits", (int,))):
        _check_types(path / "scales.json", key, scales[key], dict.fromkeys(scales[key], kind))
    try:
        graphs = {k: graph_from_json(g) for k, g in graphs_json.items()}
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise ArtifactError(f"{path / 'graphs.json'}: garbled ({err!r}); {FIX}") from None

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    source = manifest["source"]
    return QuantizedModel(
        spec=spec, graphs=graphs, qweights=group("q/"), wscales=group("scale/"), fparams=group("float/"),
        scales=scales["activations"], state_scales=scales["state"], bits=scales["bits"],
        options=QuantOptions(**manifest["options"]), notes=list(manifest["notes"]),
        calibration=manifest["calibration"], source=source.get("path") or source["name"],
        int_constants=group("int/"))
