"""Calibration: run the float model on sample tokens and record the range of every value.

Per value: the per-channel absolute maximum (so segments such as x | z or dt | B | C get their
own scales later), and for the SSM input u the alpha-quantile of |u| (percentile clipping,
averaged over batches). Recurrent state ranges (SSM state; mLSTM C and n, after every token) are
recorded per layer for their fixed-point formats.

Every entry graph that takes only the data input is run on every batch (a language model's "prefill",
each "task/<name>" of a ViT-MoE): a value several graphs share gets the maximum over them. An expert
mixture sends every token to every expert here (only for statistics: the output is the routed one), so
that rarely routed experts get ranges too: per expert, the fc1 output ("node/fc1/<e>").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.ir import Node, Op, entry_graphs
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
        if old is not None and old.shape != amax.shape:  # e.g. the logits of task heads of different widths
            old, amax = old.max(keepdims=True)[:1], amax.max(keepdims=True)[:1]
        self.stats.absmax[name] = amax if old is None else np.maximum(old, amax)
        if name in self.clip_values:
            self._quantiles.setdefault(name, []).append(float(np.quantile(flat, self.stats.alpha)))

    def observe_state(self, node: Node, state: np.ndarray, part: str = "") -> None:
        key = node.name + part
        self.stats.state_absmax[key] = max(self.stats.state_absmax.get(key, 0.0), float(np.abs(state).max()))

    def op_moe(self, node: Node, x: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
        rows = x.reshape(-1, x.shape[-1])
        for e in range(node.attrs["experts"]):  # every token through every expert
            self.observe_state(node, self.expert_fc1(node, e, rows), f"/fc1/{e}")
        return super().op_moe(node, x, weights, indices)

    def finish(self) -> None:
        self.stats.quantile = {k: float(np.mean(v)) for k, v in self._quantiles.items()}


def calibrate(model: Model, batches: list[np.ndarray], alpha: float = 0.99999) -> CalibrationStats:
    """Record value ranges over ``batches`` of the data input (token ids [B, L], images [B, H, W, C]),
    fed to every entry graph; ``tokens`` counts token ids, or images."""
    if not batches:
        raise DataError("calibration data is empty; pass --calib with at least one sequence of tokens")
    graphs = list(entry_graphs(model.graphs).values())
    clip_values = {n.inputs[0] for g in graphs for n in g.nodes if n.op is Op.SELECTIVE_SCAN}
    stats = CalibrationStats(alpha=alpha)
    observer = _Observer(model, stats, clip_values)
    for batch in track(batches, "calibrating"):
        for graph in graphs:
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are reported by name
                observer.run(graph, {graph.inputs[0]: batch})
        stats.batches += 1
        stats.tokens += int(batch.size if graphs[0].values[graphs[0].inputs[0]].dtype == "i64" else len(batch))
    observer.finish()
    return stats
