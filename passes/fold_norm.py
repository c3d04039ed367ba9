"""Fold each RMSNorm's gain into the linear layer it feeds: W' = W diag(gamma).

After this pass an RMSNorm only normalises, so its int8 output scale no longer depends on gamma
(the gain is absorbed exactly, in float, before weights are quantized per output channel).
"""

from __future__ import annotations

from dataclasses import replace

from edgec.frontends.model import Model
from edgec.ir import Op
from edgec.passes.base import PassResult

__all__ = ["fold_norm_gains"]


def fold_norm_gains(model: Model) -> PassResult:
    weights = model.weights.copy()
    graphs = {}
    modified = False
    for key, graph in model.graphs.items():
        graph = graph.copy()
        for norm in [n for n in graph.nodes if n.op is Op.RMSNORM and "weight" in n.weights]:
            users = graph.users(norm.outputs[0])
            if not users or any(u.op is not Op.LINEAR for u in users):
                continue
            gamma = model.weights[norm.weights["weight"]]
            for user in users:
                folded = user.weights["weight"] + "@gain_folded"
                if folded not in weights:
                    weights[folded] = model.weights[user.weights["weight"]] * gamma[None, :]
                graph.replace_node(user, replace(user, weights={**user.weights, "weight": folded}))
            graph.replace_node(norm, replace(norm, weights={}))
            modified = True
        graphs[key] = graph
    return PassResult(model.with_graphs(graphs, weights), modified)
