"""Resolve a MODEL argument of the CLI: a bundled name, an HF checkpoint folder, or a QDIR."""

from __future__ import annotations

from pathlib import Path

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel
from edgec.zoo import BUNDLED, DEFAULT_MODEL, ZooEntry

__all__ = ["float_and_quantized", "load_float", "source_name"]


def load_float(arg: str | None) -> tuple[Model, ZooEntry | None]:
    """The float model named by ``arg`` (default: the bundled model) and its zoo entry, if bundled."""
    from edgec.frontends.hf_mamba import load_checkpoint

    name = arg or DEFAULT_MODEL
    if name in BUNDLED:
        return load_checkpoint(BUNDLED[name].folder), BUNDLED[name]
    return load_checkpoint(Path(name)), None


def float_and_quantized(model: str | None, calib: Path | None) -> tuple[Model, ZooEntry | None, QuantizedModel]:
    """(float model, zoo entry or None, QuantizedModel): a QDIR is loaded, a checkpoint is quantized."""
    from edgec.data import model_tokens, windows
    from edgec.passes.pipeline import quantize as run_pipeline
    from edgec.qdir import is_qdir, load_qdir

    if model is not None and is_qdir(model):
        qm = load_qdir(model)
        fm, entry = load_float(qm.source)
        if fm.spec != qm.spec:
            raise DataError(f"{model}: its float model {qm.source} has changed since quantization "
                            "(config differs); re-run edgec quantize")
        return fm, entry, qm
    fm, entry = load_float(model)
    calib_path = calib or (entry.calib if entry else None)
    if calib_path is None:
        raise DataError("MODEL is a checkpoint: pass --calib FILE (held out from evaluation data), or a QDIR")
    qm = run_pipeline(fm, windows(model_tokens(fm, calib_path), 256, 8, 8192))
    qm.source = source_name(model)
    return fm, entry, qm


def source_name(model: str | None) -> str:
    """How a QDIR names its float model: a bundled name, or an absolute path (eval reloads it)."""
    name = model or DEFAULT_MODEL
    return name if name in BUNDLED else str(Path(name).resolve())
