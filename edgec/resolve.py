"""Resolve a MODEL argument of the CLI: a bundled name, an HF checkpoint folder, or a QDIR.

A folder holding a manifest.json is an edgec output, and is reported as one whatever is wrong with it.

- :func:`quantized_model` (build): the QuantizedModel and its tokenizer; a QDIR needs nothing else.
- :func:`float_and_quantized` (eval): also the float model; a QDIR reloads its source checkpoint, which
  must still match the hashes recorded at quantization.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgec.errors import ArtifactError, DataError
from edgec.families import Family
from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel
from edgec.zoo import BUNDLED, DEFAULT_MODEL, ZooEntry

__all__ = ["float_and_quantized", "load_float", "model_name", "quantized_model", "source_name"]


def model_name(arg: str | None) -> str:
    """The MODEL argument, or the default bundled model when it is not given; an empty or ambiguous one is refused."""
    if arg is None:
        return DEFAULT_MODEL
    if not arg.strip():
        raise DataError("MODEL is empty; pass a checkpoint folder, a QDIR or a bundled model name (edgec models)")
    if arg in BUNDLED and Path(arg).exists():
        raise DataError(f"{arg} names both the bundled model and the folder ./{arg}; pass ./{arg} for the folder")
    return arg


def load_float(arg: str | None) -> tuple[Model, ZooEntry | None]:
    """The float model named by ``arg`` (default: the bundled model) and its zoo entry, if bundled."""
    from edgec.frontends.hf_checkpoint import load_checkpoint

    name = model_name(arg)
    if name in BUNDLED:
        return load_checkpoint(BUNDLED[name].folder), BUNDLED[name]
    if _edgec_output(name, None) is not None:  # an edgec output, sound or not, is never read as a checkpoint
        from edgec.manifest import describe, read_manifest, uses

        fmt = read_manifest(Path(name), what="a checkpoint")["format"]
        raise ArtifactError(f"{name}: is {describe(fmt)}, not a checkpoint folder (quantize takes a "
                            f"save_pretrained folder or a bundled name); {uses(fmt, Path(name))}")
    return load_checkpoint(Path(name)), None


def input_family(arg: str | None) -> Family:
    """The family of the model ``eval`` or ``quantize`` will read, found cheaply (config.json or a QDIR's
    manifest), so that options can be checked before any quantization work."""
    from edgec.families import FAMILIES
    from edgec.frontends.hf_checkpoint import checkpoint_family
    from edgec.qdir import read_qdir_manifest

    folder = _edgec_output(arg, None)
    if folder is not None:
        return FAMILIES[read_qdir_manifest(folder)["family"]]
    name = model_name(arg)
    return checkpoint_family(BUNDLED[name].folder if name in BUNDLED else Path(name))


def _quantize(fm: Model, entry: ZooEntry | None, model: str | None, calib: Path | None) -> QuantizedModel:
    from edgec.passes.pipeline import quantize as run_pipeline
    from edgec.workloads import CalibOptions, workload_of

    calib_path = calib or (entry.calib if entry else None)
    if calib_path is None:
        raise DataError("MODEL is a checkpoint: pass --calib FILE (held out from evaluation data), or a QDIR")
    qm = run_pipeline(fm, workload_of(fm).calibration(fm, calib_path, CalibOptions()))
    qm.source = source_name(model)
    return qm


def _edgec_output(model: str | None, calib: Path | None) -> Path | None:
    """``model`` as an edgec output folder (it has a manifest.json), or None for a checkpoint or bundled name.

    Calibration data is for a checkpoint only: given with an edgec output, it is refused, not ignored.
    """
    from edgec.qdir import is_edgec_output

    if model is None or not is_edgec_output(model_name(model)):
        return None
    if calib is not None:
        raise DataError(f"--calib is for a checkpoint MODEL, and {model} is an edgec output (a QDIR is calibrated "
                        "already): drop --calib")
    return Path(model)


def quantized_model(model: str | None, calib: Path | None) -> tuple[QuantizedModel, Path | None]:
    """(QuantizedModel, tokenizer.json or None) for ``edgec build``: a QDIR is loaded (nothing else is
    read), a checkpoint or bundled model is loaded and quantized with ``calib``."""
    from edgec.qdir import load_qdir, qdir_tokenizer, read_qdir_manifest

    folder = _edgec_output(model, calib)
    if folder is not None:
        manifest = read_qdir_manifest(folder)
        qm = load_qdir(folder, manifest)
        return qm, qdir_tokenizer(folder, manifest)
    fm, entry = load_float(model)
    return _quantize(fm, entry, model, calib), fm.tokenizer


def float_and_quantized(model: str | None, calib: Path | None) -> tuple[Model, ZooEntry | None, QuantizedModel]:
    """(float model, zoo entry or None, QuantizedModel) for ``edgec eval``: a QDIR is loaded and its
    source checkpoint reloaded (it must be unchanged since quantization), a checkpoint is quantized."""
    from edgec.qdir import load_qdir, qdir_tokenizer, read_qdir_manifest

    folder = _edgec_output(model, calib)
    if folder is None:
        fm, entry = load_float(model)
        return fm, entry, _quantize(fm, entry, model, calib)
    manifest = read_qdir_manifest(folder)
    qm = load_qdir(folder, manifest)
    qdir_tokenizer(folder, manifest)  # the QDIR's copy must be intact too, though eval reads the source's
    fm, entry = _load_source(folder, manifest["source"])
    if fm.spec != qm.spec:
        raise ArtifactError(f"{folder}: its source {qm.source} has a different config than at quantization; "
                            "restore it, or re-run edgec quantize")
    return fm, entry, qm


def _load_source(qdir: Path, source: dict[str, Any]) -> tuple[Model, ZooEntry | None]:
    """The float model a QDIR was quantized from, once its files match the hashes recorded in the QDIR."""
    from edgec.errors import EdgecError
    from edgec.qdir import source_files, source_folder

    if source["kind"] == "live":
        raise ArtifactError(f"{qdir}: was quantized from a model in memory ({source['name']}), so eval has no "
                            "float reference; quantize a checkpoint folder with edgec quantize to evaluate it here")
    folder = source_folder(source)
    what = f"source checkpoint {folder}" if source["kind"] == "checkpoint" else f"bundled model {source['name']}"
    problem = _source_problem(folder, source["files"], source_files) if folder is not None else (
        "this edgec does not ship it")
    if problem is None:
        try:
            return load_float(source["name"] if source["kind"] == "bundled" else str(folder))
        except EdgecError as err:
            problem = f"it does not load ({err})"
    raise ArtifactError(f"{qdir}: needs its {what} for the float reference, but {problem}; restore it, or "
                        "re-run edgec quantize")


def _source_problem(folder: Path, recorded: dict[str, str], listing: Callable[[Path], list[str]]) -> str | None:
    """What changed in a checkpoint folder since its hashes were recorded, or None."""
    from edgec.manifest import sha256

    if not folder.is_dir():
        return "it is missing"
    for name, digest in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            if sha256(path) != digest:
                return f"{name} has changed since quantization"
        except OSError as err:
            return f"{name} cannot be read ({err.strerror})"
    added = sorted(set(listing(folder)) - set(recorded))
    return f"{added[0]} was added since quantization" if added else None


def source_name(model: str | None) -> str:
    """How a QDIR names its float model: a bundled name, or an absolute path (eval reloads it)."""
    name = model_name(model)
    return name if name in BUNDLED else str(Path(name).resolve())
