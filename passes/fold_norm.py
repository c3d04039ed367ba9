"""Fold each norm's gain into the linear layers that read it: W' = W diag(gamma).

A gain commutes with elementwise products, so it also folds through MULs whose outputs only LINEARs
read (xLSTM's per-head norm -> output gate -> out_proj). After this pass such a norm only normalises,
so its output scale no longer depends on gamma (the gain is absorbed exactly, in float, before
weights are quantized per output channel).
"""

from __future__ import annotations

from dataclasses import replace

from edgec.frontends.model import Model
from edgec.ir import Graph, Node, Op
from edgec.passes.base import PassResult

__all__ = ["fold_norm_gains"]


def _linear_readers(graph: Graph, value: str) -> list[Node] | None:
    """The LINEARs that read ``value`` directly or through elementwise MULs; None if anything else reads it."""
    users = graph.users(value)
    if not users or value in graph.outputs:
        return None
    found: list[Node] = []
    for user in users:
        if user.op is Op.LINEAR:
            found.append(user)
        elif user.op is Op.MUL and (through := _linear_readers(graph, user.outputs[0])) is not None:
            found += through
        else:
            return None
    return found


def fold_norm_gains(model: Model) -> PassResult:
    weights = model.weights.copy()
    graphs = {}
    modified = False
    for key, graph in model.graphs.items():
        graph = graph.copy()
        for norm in [n for n in graph.nodes if n.op in (Op.RMSNORM, Op.HEAD_LAYERNORM) and "weight" in n.weights]:
            users = _linear_readers(graph, norm.outputs[0])
            if users is None:
                continue
            gamma = model.weights[norm.weights["weight"]]
            for name in dict.fromkeys(u.name for u in users):  # a reader met twice is folded once
                user = graph.find(name)
                folded = user.weights["weight"] + "@gain_folded"
                if folded not in weights:
                    weights[folded] = model.weights[user.weights["weight"]] * gamma[None, :]
                graph.replace_node(user, replace(user, weights={**user.weights, "weight": folded}))
            graph.replace_node(norm, replace(norm, weights={}))
            modified = True
        graphs[key] = graph
    return PassResult(model.with_graphs(graphs, weights), modified)
