"""Calibration: run the float model on sample tokens and record the range of every value.

Per value: the per-channel absolute maximum (so segments such as x | z or dt | B | C get their
own scales later), and for the SSM input (Mamba's u, Mamba-2's x) the alpha-quantile of |u| (percentile
clipping, averaged over batches). Recurrent state ranges (SSM state; mLSTM C and n, after every token) are
recorded per layer for their fixed-point formats.

Every statistic is a mergeable summary, so calibration over a large data set can run data-parallel (one
``calibrate`` per shard of batches, on any engine: Ray tasks, torch.distributed ranks) and ``merge``
into what one pass over all the batches gives: maxima exactly, the per-batch quantiles as their sum and
count (the mean of the union, to float rounding), batch and token counts summed. ``save_stats`` /
``load_stats`` move a shard's summary between machines as a safetensors file (no pickle).

Every entry graph that takes only the data input is run on every batch (a language model's "prefill",
each "task/<name>" of a ViT-MoE): a value several graphs share gets the maximum over them. An expert
mixture sends every token to every expert here (only for statistics: the output is the routed one), so
that rarely routed experts get ranges too: per expert, the fc1 output ("node/fc1/<e>").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.ir import Graph, Node, Op, entry_graphs
from edgec.progress import track
from edgec.runtime.float_ref import FloatInterpreter

__all__ = ["CalibrationStats", "calibrate", "load_stats", "save_stats"]


@dataclass
class CalibrationStats:
    """absmax: per-channel |max| per value; quantile: mean per-batch alpha-quantile of |value|, kept as the
    sum and count of the per-batch quantiles (``quantile_sum``, ``quantile_count``) so shards merge."""

    absmax: dict[str, np.ndarray] = field(default_factory=dict)
    quantile: dict[str, float] = field(default_factory=dict)
    state_absmax: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.99999
    batches: int = 0
    tokens: int = 0
    quantile_sum: dict[str, float] = field(default_factory=dict)
    quantile_count: dict[str, int] = field(default_factory=dict)

    def merge(self, other: CalibrationStats) -> CalibrationStats:
        """The statistics of both shards' batches together (a new object; neither input changes)."""
        if other.alpha != self.alpha:
            raise DataError(f"calibration shards use different percentiles ({self.alpha} and {other.alpha}); "
                            "calibrate every shard with the same --alpha")
        absmax = dict(self.absmax)
        for name, amax in other.absmax.items():
            absmax[name] = amax if name not in absmax else _channel_max(absmax[name], amax)
        state = {k: max(self.state_absmax.get(k, 0.0), v) for k, v in other.state_absmax.items()}
        qsum, qcount = dict(self.quantile_sum), dict(self.quantile_count)
        for name, total in other.quantile_sum.items():
            qsum[name] = qsum.get(name, 0.0) + total
            qcount[name] = qcount.get(name, 0) + other.quantile_count[name]
        merged = CalibrationStats(absmax, {}, self.state_absmax | state, self.alpha, self.batches + other.batches,
                                  self.tokens + other.tokens, qsum, qcount)
        merged.quantile = {k: qsum[k] / qcount[k] for k in qsum}
        return merged


def _channel_max(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Per-channel maximum; values of different widths (task heads) keep one overall maximum."""
    if old.shape != new.shape:
        old, new = old.max(keepdims=True)[:1], new.max(keepdims=True)[:1]
    return np.maximum(old, new)


def save_stats(stats: CalibrationStats, path: str | Path) -> None:
    """A shard's statistics as one safetensors file (arrays, and the scalars in its JSON metadata)."""
    from safetensors.numpy import save_file

    tensors = {f"absmax/{k}": np.ascontiguousarray(v) for k, v in stats.absmax.items()}
    meta = {"alpha": stats.alpha, "batches": stats.batches, "tokens": stats.tokens,
            "state_absmax": stats.state_absmax, "quantile_sum": stats.quantile_sum,
            "quantile_count": stats.quantile_count}
    save_file(tensors, str(path), metadata={"edgec_calibration": json.dumps(meta)})


def load_stats(path: str | Path) -> CalibrationStats:
    """Read save_stats' file; anything else is one DataError line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "numpy") as f:
            meta = json.loads((f.metadata() or {})["edgec_calibration"])
            absmax = {k.removeprefix("absmax/"): f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (no __iter__)
        stats = CalibrationStats(absmax, {}, {k: float(v) for k, v in meta["state_absmax"].items()},
                                 float(meta["alpha"]), int(meta["batches"]), int(meta["tokens"]),
                                 {k: float(v) for k, v in meta["quantile_sum"].items()},
                                 {k: int(v) for k, v in meta["quantile_count"].items()})
        stats.quantile = {k: stats.quantile_sum[k] / stats.quantile_count[k] for k in stats.quantile_sum}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError, SafetensorError) as err:
        raise DataError(f"{path}: not an edgec calibration-statistics file ({str(err)[:120]}); write it with "
                        "edgec.passes.calibrate.save_stats") from None
    return stats


#: ops whose first input gets the alpha-quantile statistic (percentile clipping, QuantOptions.percentile): the SSM
#: input, Mamba's u and Mamba-2's x (on the trained mamba2-tiny, +1.6 dB int logits SQNR at alpha 0.99999)
CLIPPED_INPUT_OPS = frozenset({Op.SELECTIVE_SCAN, Op.SSD_SCAN})


class _Observer(FloatInterpreter):
    stepwise_cells = True  # observe every mLSTM state the int profile will hold
    def __init__(self, model: Model, stats: CalibrationStats, clip_values: set[str]) -> None:
        super().__init__(model.weights)
        self.stats = stats
        self.clip_values = clip_values
        self.progress: Iterator[int] = iter(())

    def observe(self, node: Node, name: str, value: np.ndarray) -> None:
        if not np.isfinite(value).all():
            raise DataError(f"calibration produced NaN/Inf at %{name} (node {node.name}); the weights or "
                            "calibration data are broken")
        flat = np.abs(value.reshape(-1, value.shape[-1]))
        amax = flat.max(axis=0)
        old = self.stats.absmax.get(name)
        self.stats.absmax[name] = amax if old is None else _channel_max(old, amax)
        if name in self.clip_values:
            q = float(np.quantile(flat, self.stats.alpha))
            self.stats.quantile_sum[name] = self.stats.quantile_sum.get(name, 0.0) + q
            self.stats.quantile_count[name] = self.stats.quantile_count.get(name, 0) + 1

    def observe_state(self, node: Node, state: np.ndarray, part: str = "") -> None:
        key = node.name + part
        self.stats.state_absmax[key] = max(self.stats.state_absmax.get(key, 0.0), float(np.abs(state).max()))

    def op_moe(self, node: Node, x: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
        rows = x.reshape(-1, x.shape[-1])
        for e in range(node.attrs["experts"]):  # every token through every expert
            self.observe_state(node, self.expert_fc1(node, e, rows), f"/fc1/{e}")
        return super().op_moe(node, x, weights, indices)

    def node_done(self, node: Node) -> None:
        self.weights.forget(node.weights.values())
        next(self.progress, None)

    def finish(self) -> None:
        self.stats.quantile = {k: self.stats.quantile_sum[k] / self.stats.quantile_count[k]
                               for k in self.stats.quantile_sum}


def calibrate(model: Model, batches: list[np.ndarray], alpha: float = 0.99999) -> CalibrationStats:
    """Record value ranges over ``batches`` of the data input (token ids [B, L], images [B, H, W, C]),
    fed to every entry graph; ``tokens`` counts token ids, or images.

    Layer by layer: each node runs on every batch before the next (``run_batches``), then its weights are
    released, so memory holds one layer's weights and the batches' live activations, whatever the depth.
    """
    if not batches:
        raise DataError("calibration data is empty; pass --calib with at least one sequence of tokens")
    graphs = [_without_output_linears(g) for g in entry_graphs(model.graphs).values()]
    clip_values = {n.inputs[0] for g in graphs for n in g.nodes if n.op in CLIPPED_INPUT_OPS}
    stats = CalibrationStats(alpha=alpha)
    observer = _Observer(model, stats, clip_values)
    observer.progress = iter(track(range(sum(len(g.nodes) for g in graphs)), "calibrating"))
    for graph in graphs:
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are reported by name
            observer.run_batches(graph, [{graph.inputs[0]: batch} for batch in batches], keep_outputs=False)
    for _ in observer.progress:  # close the bar
        pass
    stats.batches = len(batches)
    token_ids = graphs[0].values[graphs[0].inputs[0]].dtype == "i64"
    stats.tokens = sum(int(batch.size if token_ids else len(batch)) for batch in batches)
    observer.finish()
    return stats


def _without_output_linears(graph: Graph) -> Graph:
    """``graph`` without the LINEARs that write only graph outputs (a language model's head, a classifier): their
    outputs keep the accumulators (no scale to calibrate), and the head is the largest matmul of a language model
    (at mamba-130m widths 40% of the calibration's multiply-adds)."""
    dropped = [n for n in graph.nodes if n.op is Op.LINEAR and all(o in graph.outputs and not graph.users(o)
                                                                   for o in n.outputs)]
    if not dropped:
        return graph
    gone = {o for n in dropped for o in n.outputs}
    return Graph(graph.name, [n for n in graph.nodes if n not in dropped], graph.values, graph.inputs,
                 [o for o in graph.outputs if o not in gone])
