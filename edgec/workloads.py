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
from edgec.families import Family
from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel

__all__ = ["CalibOptions", "EvalOptions", "Workload", "workload_of"]

EVAL_SEQ_LEN = 512  # evaluation window of language models


@dataclass(frozen=True)
class CalibOptions:
    """Options of ``edgec quantize`` about its data (None: not given); a workload refuses what does not apply."""

    seq_len: int | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class EvalOptions:
    """Options of ``edgec eval`` (None / False: not given); a workload refuses the ones that do not apply."""

    seq_len: int | None = None
    max_tokens: int | None = None
    layers: bool = False


class Workload(Protocol):
    """Data and metrics of one kind of model input."""

    data_help: str  # what a data file of this kind is, for messages
    unit: str  # what calibration counts: "tokens" or "images"

    def check(self, options: CalibOptions | EvalOptions) -> None: ...

    def calibration(self, model: Model, path: Path, options: CalibOptions) -> list[np.ndarray]: ...

    def evaluate(self, model: Model, qm: QuantizedModel, path: Path, options: EvalOptions) -> dict[str, Any]: ...

    def report(self, result: dict[str, Any], path: Path) -> str: ...


class LanguageWorkload:
    """Token sequences: perplexity of next-token prediction for float, int and qdq."""

    data_help = "text or .npy token ids"
    unit = "tokens"

    def check(self, options: CalibOptions | EvalOptions) -> None:
        """Every option applies to language models."""

    def calibration(self, model: Model, path: Path, options: CalibOptions) -> list[np.ndarray]:
        from edgec.data import CALIB_SEQ_LEN, CALIB_TOKENS, calibration_batches

        return calibration_batches(model, path, options.seq_len or CALIB_SEQ_LEN, options.max_tokens or CALIB_TOKENS)

    def evaluate(self, model: Model, qm: QuantizedModel, path: Path, options: EvalOptions) -> dict[str, Any]:
        from edgec.data import model_tokens, windows
        from edgec.evaluate import perplexities

        batches = windows(model_tokens(model, path), options.seq_len or EVAL_SEQ_LEN, batch=8,
                          max_tokens=options.max_tokens)
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
            lines += sqnr_lines(result["layers"])
        return "\n".join(lines)


class VisionWorkload:
    """Labelled images (.npz): top-1 per task for float, int and qdq, and routing agreement per MoE layer."""

    data_help = ".npz with uint8 images [N, H, W, C] and labels_<task> arrays"
    unit = "images"
    batch = 32  # images per calibration and evaluation batch

    def check(self, options: CalibOptions | EvalOptions) -> None:
        """Refuse the language-model options (one line naming the first one given)."""
        given = {"--seq-len": options.seq_len, "--max-tokens": options.max_tokens}
        if isinstance(options, CalibOptions):
            given = {"--seq-len": options.seq_len, "--calib-tokens": options.max_tokens}
        for option, value in given.items():
            if value not in (None, False):
                raise DataError(f"{option} applies to language models, not to image models; drop it")

    def calibration(self, model: Model, path: Path, options: CalibOptions) -> list[np.ndarray]:
        from edgec.image_data import image_batches, load_images

        self.check(options)
        return [b.images for b in image_batches(load_images(path, model.spec, need_labels=False), self.batch)]

    def evaluate(self, model: Model, qm: QuantizedModel, path: Path, options: EvalOptions) -> dict[str, Any]:
        from edgec.evaluate_images import image_metrics
        from edgec.image_data import load_images

        self.check(options)
        data = load_images(path, model.spec)
        result = {"metric": "top1", "images": len(data), **image_metrics(model, qm, data, self.batch)}
        if options.layers:
            from edgec.frontends.vit_moe_graph import graph_name
            from edgec.runtime.compare import residual_sqnr

            images = data.images[:self.batch]
            result["layers"] = {t: residual_sqnr(model, qm, images, graph_name(t)) for t in model.spec.task_names}
        return result

    def report(self, result: dict[str, Any], path: Path) -> str:
        lines = [f"top-1 on {result['images']} images of {path}:"]
        for task, row in result["tasks"].items():
            lines.append(f"  {task:12s} " + "   ".join(f"{k} {100 * v:6.2f}%" for k, v in row.items()))
        lines.append("routing agreement with float (expert sets; flips near-tie / clear):")
        for profile, tasks in result["routing_agreement"].items():
            for task, layers in tasks.items():
                for layer, r in layers.items():
                    lines.append(f"  {profile:4s} {task:12s} {layer:10s} {100 * r['agreement']:6.2f}%  "
                                 f"({r['flips_near_tie']} / {r['flips_clear']})")
        for task, layers in result.get("layers", {}).items():
            lines.append(f"SQNR (dB) against the float model, task {task}, first {self.batch} images:")
            lines += sqnr_lines(layers)
        return "\n".join(lines)


def sqnr_lines(layers: dict[str, dict[str, float]]) -> list[str]:
    """One line per residual value: its SQNR in both profiles."""
    return [f"  {name:8s} int {row['int']:6.1f}   qdq {row['qdq']:6.1f}" for name, row in layers.items()]


WORKLOADS: dict[str, Workload] = {"tokens": LanguageWorkload(), "images": VisionWorkload()}


def workload_of(model: Model | Family) -> Workload:
    """The workload of a model's family, or of a family (by the kind of input its graphs take)."""
    from edgec.families import FAMILIES

    family = model if isinstance(model, Family) else FAMILIES[model.spec.family]
    if family.inputs not in WORKLOADS:
        raise DataError(f"{family.title} models take {family.inputs}, which edgec quantize and eval do not read yet")
    return WORKLOADS[family.inputs]
