"""A persisted quantized model (QDIR): IR, int8 weights, scales, calibration settings, manifest.

Layout: manifest.json (format, source, config, options, calibration, notes, file hashes),
graphs.json (both entry graphs), weights.safetensors (int8 weights ``q/<name>``, per-channel scales
``scale/<name>``, float parameters ``float/<name>``, the int profile's lowered constants
``int/<node>/<key>``: LUTs, multipliers, shifts, decay coefficients), scales.json (activation and state scales,
storage widths). Later builds load this instead of recalibrating.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgec.errors import CheckpointError
from edgec.frontends.mamba_spec import MambaSpec
from edgec.ir.serde import graph_from_json, graph_to_json
from edgec.outdir import atomic_dir, sha256
from edgec.passes.quantize import QuantizedModel, QuantOptions

__all__ = ["FORMAT", "is_qdir", "load_qdir", "save_qdir"]

FORMAT = "edgec-qdir/1"


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def save_qdir(qm: QuantizedModel, target: str | Path) -> Path:
    """Write ``qm`` to ``target`` atomically (nothing half-written on failure)."""
    from safetensors.numpy import save_file

    with atomic_dir(target) as tmp:
        tensors = {f"q/{k}": v for k, v in qm.qweights.items()}
        tensors |= {f"scale/{k}": v.astype(np.float32) for k, v in qm.wscales.items()}
        tensors |= {f"float/{k}": v.astype(np.float32) for k, v in qm.fparams.items()}
        tensors |= {f"int/{k}": v.astype(np.int64) for k, v in qm.int_constants.items()}
        save_file({k: np.array(v, order="C") for k, v in sorted(tensors.items())}, str(tmp / "weights.safetensors"))
        _dump(tmp / "graphs.json", {k: graph_to_json(g) for k, g in qm.graphs.items()})
        _dump(tmp / "scales.json", {"activations": qm.scales, "state": qm.state_scales, "bits": qm.bits})
        files = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
        _dump(tmp / "manifest.json", {
            "format": FORMAT, "family": "mamba", "source": qm.source, "config": qm.spec.to_config(),
            "options": asdict(qm.options), "calibration": qm.calibration, "notes": qm.notes, "files": files})
    return Path(target)


def is_qdir(path: str | Path) -> bool:
    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format", "").startswith("edgec-qdir/")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def load_qdir(path: str | Path) -> QuantizedModel:
    """Read a QDIR written by save_qdir, checking every file against the manifest's hashes."""
    from safetensors.numpy import load_file

    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        if not isinstance(manifest, dict):
            raise ValueError("manifest.json is not an object")
        if manifest.get("format") != FORMAT:
            raise CheckpointError(f"{path}: unsupported QDIR format {manifest.get('format')!r}; re-run edgec quantize")
        for name, digest in manifest["files"].items():
            if sha256(path / name) != digest:
                raise CheckpointError(f"{path / name}: does not match the manifest hash; re-run edgec quantize")
        tensors = load_file(str(path / "weights.safetensors"))
        graphs = {k: graph_from_json(g) for k, g in json.loads((path / "graphs.json").read_text()).items()}
        scales = json.loads((path / "scales.json").read_text())

        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        return QuantizedModel(
            spec=MambaSpec.from_config(manifest["config"], source=str(path / "manifest.json")),
            graphs=graphs, qweights=group("q/"), wscales=group("scale/"), fparams=group("float/"),
            scales=scales["activations"], state_scales=scales["state"], bits=scales["bits"],
            options=QuantOptions(**manifest["options"]), notes=manifest["notes"],
            calibration=manifest["calibration"], source=manifest["source"], int_constants=group("int/"))
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path}: incomplete or garbled QDIR ({err!r}); re-run edgec quantize") from None
