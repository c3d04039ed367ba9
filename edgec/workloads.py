"""What a family's graphs take and how its accuracy is measured: the CLI's plug-in per kind of input.

A family names its input kind (``Family.inputs``: "tokens" or "images"); the workload of that kind
reads calibration and evaluation data files and runs the evaluation. ``edgec quantize`` and
``edgec eval`` call these and never branch on the family or the kind themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel

__all__ = ["EvalOptions", "Workload", "workload_of"]


@dataclass(frozen=True)
class EvalOptions:
    """Options of ``edgec eval``; a workload refuses the ones that do not apply to it."""

    seq_len: int = 512
    max_tokens: int | None = None
    layers: bool = False


class Workload(Protocol):
    """Data and metrics of one kind of model input."""

    data_help: str  # what a data file of this kind is, for messages

    def calibration(self, model: Model, path: Path, seq_len: int, max_tokens: int) -> list[np.ndarray]: ...

    def evaluate(self, model: Model, qm: QuantizedModel, path: Path, options: EvalOptions) -> dict[str, Any]: ...

    def report(self, result: dict[str, Any], path: Path) -> str: ...


class LanguageWorkload:
    """Token sequences: perplexity of next-token prediction for float, int and qdq."""

    data_help = "text or .npy token ids"

    def calibration(self, model: Model, path: Path, seq_len: int, max_tokens: int) -> list[np.ndarray]:
        from edgec.data import calibration_batches

        return calibration_batches(model, path, seq_len, max_tokens)

    def evaluate(self, model: Model, qm: QuantizedModel, path: Path, options: EvalOptions) -> dict[str, Any]:
        from edgec.data import model_tokens, windows
        from edgec.evaluate import perplexities

        batches = windows(model_tokens(model, path), options.seq_len, batch=8, max_tokens=options.max_tokens)
        result: dict[str, Any] = {"metric": "perplexity", "tokens": sum(b.shape[0] * (b.shape[1] - 1) for b in batches),
                                  **perplexities(model, qm, batches)}
        if options.layers:
            from edgec.runtime.compare import residual_sqnr

            result["layers"] = residual_sqnr(model, qm, batches[0][:1])
        return result

    def report(self, result: dict[str, Any], path: Path) -> str:
        lines = [f"perplexity on {result['tokens']} tokens of {path}:"]
        for k in ("float", "int", "qdq"):
            rel = "" if k == "float" else f"  ({result[k] / result['float']:.4f} x float)"
            lines.append(f"  {k:5s} {result[k]:10.4f}{rel}")
        if "layers" in result:
            lines.append("SQNR (dB) against the float model, first window:")
            lines += [f"  {name:8s} int {row['int']:6.1f}   qdq {row['qdq']:6.1f}"
                      for name, row in result["layers"].items()]
        return "\n".join(lines)


WORKLOADS: dict[str, Workload] = {"tokens": LanguageWorkload()}


def workload_of(model: Model) -> Workload:
    """The workload of ``model``'s family (by the kind of input its graphs take)."""
    from edgec.families import FAMILIES

    family = FAMILIES[model.spec.family]
    if family.inputs not in WORKLOADS:
        raise DataError(f"{family.title} models take {family.inputs}, which edgec quantize and eval do not read yet")
    return WORKLOADS[family.inputs]
