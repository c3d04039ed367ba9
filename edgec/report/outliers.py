"""Activation outliers at every int8 linear layer's input, before and after a Hadamard rotation.

The measurement of bench/bench_outliers.py, on one batch of the report's data: the float model after the
folds the quantizer applies first (image normalization, norm gains), every distinct input of a LINEAR,
ROUTE_LOGITS or MOE node of every entry graph, as per-tensor int8 sees it (one scale per tensor):
``max|x| / rms`` and the int8 SQNR, then the same after ``x @ H^T / sqrt(n)`` (n padded to a known
Hadamard order), the rotation a pass applies online and folds into the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Graph, Op, entry_graphs
from edgec.numerics.hadamard import hadamard_transform_float, plan_hadamard
from edgec.progress import track

__all__ = ["LINEAR_INPUTS", "Outlier", "int8_sqnr", "linear_inputs", "outlier_ratio"]

LINEAR_INPUTS = (Op.LINEAR, Op.ROUTE_LOGITS, Op.MOE)
HIST_SAMPLES = 200_000  # values kept per tensor for its histogram


@dataclass(frozen=True)
class Outlier:
    """One linear input: its outlier ratio and int8 SQNR (dB) before and after the rotation, and samples of both."""

    value: str
    feeds: str
    width: int
    ratio: float
    sqnr: float
    ratio_rotated: float
    sqnr_rotated: float
    sample: np.ndarray
    sample_rotated: np.ndarray


def int8_sqnr(x: np.ndarray) -> float:
    """SQNR (dB) of per-tensor symmetric int8 quantization of ``x``."""
    x = x.astype(np.float64)
    scale = np.abs(x).max() / 127 or 1.0
    noise = x - np.clip(np.rint(x / scale), -128, 127) * scale
    return float(10 * np.log10(np.sum(x * x) / max(np.sum(noise * noise), 1e-300)))


def outlier_ratio(x: np.ndarray) -> float:
    """max |x| over the root mean square of x (0 for an all-zero tensor)."""
    rms = float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))
    return float(np.abs(x).max() / rms) if rms > 0 else 0.0


def linear_inputs(model: Model, batch: np.ndarray) -> list[Outlier]:
    """One :class:`Outlier` per distinct linear input of the entry graphs of ``model`` fed ``batch``, worst first."""
    from edgec.passes.base import run_passes
    from edgec.passes.fold_image import fold_image_normalization
    from edgec.passes.fold_norm import fold_norm_gains
    from edgec.runtime.float_ref import FloatInterpreter

    folded, _ = run_passes(model, [("fold_image", fold_image_normalization), ("fold_norm", fold_norm_gains)])
    rows: list[Outlier] = []
    seen: set[str] = set()
    for graph in entry_graphs(folded.graphs).values():
        env = FloatInterpreter(folded.weights).run(graph, {graph.inputs[0]: batch}, keep_all=True)
        values = [n.inputs[0] for n in graph.nodes if n.op in LINEAR_INPUTS and n.inputs[0] not in seen]
        for value in track(list(dict.fromkeys(values)), "outliers"):
            seen.add(value)
            rows.append(_row(graph, value, env[value]))
    return sorted(rows, key=lambda r: r.ratio, reverse=True)


def _row(graph: Graph, value: str, x: np.ndarray) -> Outlier:
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    rotated = hadamard_transform_float(x, plan_hadamard(x.shape[-1]))
    users = [n.name.split(".")[-1] for n in graph.nodes if n.op in LINEAR_INPUTS and n.inputs[0] == value]
    step = max(1, x.size // HIST_SAMPLES)
    return Outlier(value=value, feeds="/".join(users), width=int(x.shape[-1]), ratio=outlier_ratio(x),
                   sqnr=int8_sqnr(x), ratio_rotated=outlier_ratio(rotated), sqnr_rotated=int8_sqnr(rotated),
                   sample=x.ravel()[::step].astype(np.float32),
                   sample_rotated=rotated.ravel()[::step].astype(np.float32))
