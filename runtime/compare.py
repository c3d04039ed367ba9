"""Compare a simulator against the float reference value by value: per-layer SQNR."""

from __future__ import annotations

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Op
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.sim_int import IntSimulator
from edgec.runtime.sim_qdq import QdqSimulator

__all__ = ["residual_sqnr", "sqnr_db"]


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when equal)."""
    noise = float(np.sum((np.asarray(got, np.float64) - ref) ** 2))
    signal = float(np.sum(np.asarray(ref, np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def residual_sqnr(model: Model, qm: QuantizedModel, data: np.ndarray,
                  graph_name: str = "prefill") -> dict[str, dict[str, float]]:
    """SQNR of the residual stream after every layer, and of the logits, for both profiles, on entry graph
    ``graph_name`` fed ``data`` (tokens or images).

    The residual stream and the logits are the values every pass leaves unchanged in meaning
    (folding and rotation change the values inside a block), so they are compared exactly there.
    """
    graph = qm.graphs[graph_name]
    feed = {graph.inputs[0]: data}
    names = [n.outputs[0] for n in graph.nodes if n.op in (Op.EMBED, Op.CLS_POS, Op.ADD)] + ["logits"]
    ref = FloatInterpreter(model.weights, np.float64).run(model.graphs[graph_name], feed, keep_all=True)
    isim = IntSimulator(qm)
    got_int = isim.run(graph, feed, keep_all=True)
    got_qdq = QdqSimulator(qm).run(graph, feed, keep_all=True)
    report: dict[str, dict[str, float]] = {}
    for name in names:
        scale = isim.logits_scale(graph_name) if name == "logits" else qm.scales[name]
        report[name] = {"int": sqnr_db(ref[name], got_int[name] * scale),
                        "qdq": sqnr_db(ref[name], got_qdq[name])}
    return report
