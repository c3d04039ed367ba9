"""The model card: family, widths, parameter count, bytes at int8 / fp16 / fp32, the recipe and the QDIR's files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgec.families import FAMILIES
from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel

__all__ = ["ModelCard", "model_card"]


@dataclass(frozen=True)
class ModelCard:
    """What the page's first section shows; ``files`` is empty when the model was quantized in memory."""

    family: str
    source: str
    config: dict[str, Any]
    parameters: int
    bytes_int8: int  # int8 weights, their float32 scales, and the parameters kept in float32
    bytes_fp16: int
    bytes_fp32: int
    options: dict[str, Any]
    calibration: dict[str, Any]
    notes: list[str]
    files: dict[str, str]


def _count(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def model_card(fm: Model, qm: QuantizedModel, manifest: dict[str, Any] | None) -> ModelCard:
    """The card of ``qm`` (quantized from ``fm``); ``manifest``: its QDIR's, or None when not saved."""
    parameters = sum(_count(fm.weights.shape(name)) for name in fm.weights)
    int8 = sum(int(w.size) for w in qm.qweights.values())
    int8 += 4 * sum(int(np.size(a)) for table in (qm.wscales, qm.fparams) for a in table.values())
    if manifest is not None:
        options, calibration, notes, files = (manifest["options"], manifest["calibration"], manifest["notes"],
                                              manifest["files"])
    else:
        options, calibration, notes, files = asdict(qm.options), qm.calibration, qm.notes, {}
    return ModelCard(family=FAMILIES[qm.spec.family].title, source=qm.source, config=qm.spec.to_config(),
                     parameters=parameters, bytes_int8=int8, bytes_fp16=2 * parameters, bytes_fp32=4 * parameters,
                     options=dict(options), calibration=dict(calibration), notes=list(notes), files=dict(files))
