"""Top-1 per task of the float model and both simulators, and routing fidelity of every MoE layer.

Routing agreement (issue 9): per MoE layer and task, the fraction of tokens whose chosen expert SET in a
simulator equals the float model's; the tokens that differ are split by the float margin between the
k-th and (k+1)-th expert probability: near-ties (margin <= NEAR_TIE) may flip, clear decisions should not.
``flips_clear_cascaded`` counts the clear flips of images whose routing already differed in an earlier MoE
layer: a flipped near-tie swaps an expert, a jump of the residual stream (the float model is discontinuous
there), so later clear decisions of that image can flip with no error of their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgec.frontends.model import Model
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import ImageData, image_batches
from edgec.ir import Graph, Op
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.sim_int import IntSimulator
from edgec.runtime.sim_qdq import QdqSimulator

__all__ = ["NEAR_TIE", "image_metrics", "router_outputs", "routing_margin"]

NEAR_TIE = 0.05


def routing_margin(probs: np.ndarray, k: int) -> np.ndarray:
    """p_(k) - p_(k+1) per token (the k-th and (k+1)-th largest probabilities); inf when k = E."""
    p = -np.sort(-probs, axis=-1)
    return p[..., k - 1] - p[..., k] if k < p.shape[-1] else np.full(p.shape[:-1], np.inf)


def router_outputs(graph: Graph) -> list[tuple[str, str, str, int]]:
    """(layer, probs value, experts value, k) of every TOPK, the layer named after the MOE block."""
    out = []
    for node in graph.nodes:
        if node.op is Op.TOPK:
            out.append((node.name.removesuffix(".mlp.route_topk"), node.inputs[0], node.outputs[1], node.attrs["k"]))
    return out


class _Tally:
    def __init__(self) -> None:
        self.tokens = self.same = self.near = self.clear = self.cascaded = 0

    def add(self, ref: np.ndarray, got: np.ndarray, margin: np.ndarray, upstream: np.ndarray) -> np.ndarray:
        """Count [B, T] tokens; ``upstream`` [B] marks images already flipped earlier. -> images flipped so far."""
        same = (np.sort(ref, axis=-1) == np.sort(got, axis=-1)).all(axis=-1)
        clear = ~same & (margin > NEAR_TIE)
        self.tokens += same.size
        self.same += int(same.sum())
        self.near += int((~same & (margin <= NEAR_TIE)).sum())
        self.clear += int(clear.sum())
        self.cascaded += int((clear & upstream[:, None]).sum())
        return upstream | ~same.all(axis=-1)

    def report(self) -> dict[str, float | int]:
        return {"agreement": self.same / max(self.tokens, 1), "tokens": self.tokens,
                "flips_near_tie": self.near, "flips_clear": self.clear, "flips_clear_cascaded": self.cascaded}


def image_metrics(model: Model, qm: QuantizedModel, data: ImageData, batch: int = 64,
                  profiles: tuple[str, ...] = ("int", "qdq")) -> dict[str, Any]:
    """{"tasks": {task: {"float", "int", "qdq"}}, "routing_agreement": {profile: {task: {layer: {...}}}}}."""
    fi, sims = FloatInterpreter(model.weights), {"int": IntSimulator(qm), "qdq": QdqSimulator(qm)}
    tasks: dict[str, dict[str, float]] = {}
    routing: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in profiles}
    for task in model.spec.task_names:
        name = graph_name(task)
        routers = router_outputs(model.graphs[name])
        hits = dict.fromkeys(("float", *profiles), 0)
        tallies = {p: {layer: _Tally() for layer, *_ in routers} for p in profiles}
        for b in image_batches(data, batch):
            ref = fi.run(model.graphs[name], {"images": b.images}, keep_all=True)
            hits["float"] += int((ref["logits"].argmax(-1) == b.labels[task]).sum())
            for p in profiles:
                got = sims[p].run(qm.graphs[name], {"images": b.images}, keep_all=True)
                logits = got["logits"] * sims[p].logits_scale(name)
                hits[p] += int((logits.argmax(-1) == b.labels[task]).sum())
                upstream = np.zeros(len(b.images), bool)
                for layer, probs, experts, k in routers:  # in graph order
                    upstream = tallies[p][layer].add(ref[experts], got[experts], routing_margin(ref[probs], k),
                                                     upstream)
        tasks[task] = {k: v / len(data) for k, v in hits.items()}
        for p in profiles:
            routing[p][task] = {layer: t.report() for layer, t in tallies[p].items()}
    return {"tasks": tasks, "routing_agreement": routing}
