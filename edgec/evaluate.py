"""Perplexity of the float model and of both simulators on the same token windows."""

from __future__ import annotations

import numpy as np

from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel
from edgec.progress import track
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.sim_int import IntSimulator
from edgec.runtime.sim_qdq import QdqSimulator

__all__ = ["nll_sum", "perplexities"]


def nll_sum(logits: np.ndarray, tokens: np.ndarray) -> float:
    """Sum of next-token negative log-likelihoods (float64 log-softmax)."""
    z = logits[:, :-1].astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-np.take_along_axis(logp, tokens[:, 1:, None], axis=-1).sum())


def _perplexity(run, batches: list[np.ndarray], label: str) -> float:
    total, count = 0.0, 0
    for tokens in track(batches, f"perplexity ({label})"):
        total += nll_sum(run(tokens), tokens)
        count += tokens.shape[0] * (tokens.shape[1] - 1)
    return float(np.exp(total / count))


def perplexities(model: Model | None, qm: QuantizedModel | None, batches: list[np.ndarray],
                 profiles: tuple[str, ...] = ("float", "int", "qdq")) -> dict[str, float]:
    """Perplexity per profile on ``batches`` of [B, L] tokens (each window scored independently)."""
    out: dict[str, float] = {}
    if "float" in profiles and model is not None:
        fi = FloatInterpreter(model.weights)
        out["float"] = _perplexity(lambda t: fi.run(model.graphs["prefill"], {"tokens": t})["logits"], batches, "float")
    if qm is not None and "int" in profiles:
        si = IntSimulator(qm)
        scale = si.logits_scale()
        graph = qm.graphs["prefill"]
        out["int"] = _perplexity(lambda t: si.run(graph, {"tokens": t})["logits"] * scale, batches, "int")
    if qm is not None and "qdq" in profiles:
        qs = QdqSimulator(qm)
        out["qdq"] = _perplexity(lambda t: qs.run(qm.graphs["prefill"], {"tokens": t})["logits"], batches, "qdq")
    return out
