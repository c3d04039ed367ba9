"""Calibration: run the float model on sample tokens and record the range of every value.

Per value: the per-channel absolute maximum (so segments such as x | z or dt | B | C get their
own scales later), and for the SSM input u the alpha-quantile of |u| (percentile clipping,
averaged over batches). Recurrent state ranges (SSM state; mLSTM C and n, after every token) are
recorded per layer for their fixed-point formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.ir import Node, Op
from edgec.progress import track
from edgec.runtime.float_ref import FloatInterpreter

__all__ = ["CalibrationStats", "calibrate"]


@dataclass
class CalibrationStats:
    """absmax: per-channel |max| per value; quantile: mean per-batch alpha-quantile of |value|."""

    absmax: dict[str, np.ndarray] = field(default_factory=dict)
    quantile: dict[str, float] = field(default_factory=dict)
    state_absmax: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.99999
    batches: int = 0
    tokens: int = 0


class _Observer(FloatInterpreter):
    stepwise_cells = True  # observe every mLSTM state the int profile will hold
    def __init__(self, model: Model, stats: CalibrationStats, clip_values: set[str]) -> None:
        super().__init__(model.weights)
        self.stats = stats
        self.clip_values = clip_values
        self._quantiles: dict[str, list[float]] = {}

    def observe(self, node: Node, name: str, value: np.ndarray) -> None:
        if not np.isfinite(value).all():
            raise DataError(f"calibration produced NaN/Inf at %{name} (node {node.name}); the weights or "
                            "calibration data are broken")
        flat = np.abs(value.reshape(-1, value.shape[-1]))
        amax = flat.max(axis=0)
        old = self.stats.absmax.get(name)
        self.stats.absmax[name] = amax if old is None else np.maximum(old, amax)
        if name in self.clip_values:
            self._quantiles.setdefault(name, []).append(float(np.quantile(flat, self.stats.alpha)))

    def observe_state(self, node: Node, state: np.ndarray, part: str = "") -> None:
        key = node.name + part
        self.stats.state_absmax[key] = max(self.stats.state_absmax.get(key, 0.0), float(np.abs(state).max()))

    def finish(self) -> None:
        self.stats.quantile = {k: float(np.mean(v)) for k, v in self._quantiles.items()}


def calibrate(model: Model, batches: list[np.ndarray], alpha: float = 0.99999) -> CalibrationStats:
    """Record value ranges over ``batches`` of token ids ([B, L] each) with the prefill graph."""
    if not batches:
        raise DataError("calibration data is empty; pass --calib with at least one sequence of tokens")
    graph = model.graphs["prefill"]
    clip_values = {n.inputs[0] for n in graph.nodes if n.op is Op.SELECTIVE_SCAN}
    stats = CalibrationStats(alpha=alpha)
    observer = _Observer(model, stats, clip_values)
    for tokens in track(batches, "calibrating"):
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are reported by name
            observer.run(graph, {"tokens": tokens})
        stats.batches += 1
        stats.tokens += int(tokens.size)
    observer.finish()
    return stats
