"""Fold each norm's affine into the linear layers that read it: W' = W diag(gamma), b' = b + W beta.

Readers are LINEARs, ROUTE_LOGITS (weight [D, E]: rows scaled, a bias role added) and the first linear
layer of every expert of an MOE (fc1 [E, Hm, D]). A gain (no bias) also commutes with elementwise
products, so it folds through MULs whose outputs only such readers read (xLSTM's per-head norm ->
output gate -> out_proj). After this pass such a norm only normalises, so its output scale no longer
depends on gamma or beta (absorbed exactly, in float, before weights are quantized per output channel).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Graph, Node, Op
from edgec.passes.base import PassResult, row_blocks

__all__ = ["fold_norm_gains"]

_NORMS = (Op.RMSNORM, Op.HEAD_LAYERNORM, Op.LAYERNORM)
# reader op -> (weight role, bias role, axis of the weight's input dimension)
_READERS = {Op.LINEAR: ("weight", "bias", -1), Op.ROUTE_LOGITS: ("weight", "bias", 0),
            Op.MOE: ("fc1_weight", "fc1_bias", -1)}


def _linear_readers(graph: Graph, value: str, through_mul: bool) -> list[Node] | None:
    """The readers that read ``value`` directly (or through elementwise MULs); None if anything else reads it."""
    users = graph.users(value)
    if not users or value in graph.outputs:
        return None
    found: list[Node] = []
    for user in users:
        if user.op in _READERS and user.inputs[0] == value and value not in user.inputs[1:]:
            found.append(user)
        elif through_mul and user.op is Op.MUL and (through := _linear_readers(graph, user.outputs[0], True)):
            found += through
        else:
            return None
    return found


def _fold(weights, user: Node, gamma: np.ndarray, beta: np.ndarray | None) -> dict[str, str]:
    """The reader's new weight (and bias) names, their tensors derived in ``weights`` once."""
    wrole, brole, axis = _READERS[user.op]
    wname, bname = user.weights[wrole], user.weights.get(brole)
    wshape = weights.shape(wname)
    shape = [1] * len(wshape)
    shape[axis] = -1

    def weight(store) -> np.ndarray:
        w, g = store.read(wname), gamma.reshape(shape)
        out = np.empty(w.shape, np.float32)
        for rows in row_blocks(w.shape):  # an embedding tied to the head: no float64 copy of the whole table
            out[rows] = w[rows].astype(np.float64) * (g[rows] if axis == 0 else g)
        return out

    def bias(store) -> np.ndarray:
        shift = np.moveaxis(store.read(wname).astype(np.float64), axis, -1) @ beta  # W beta per output
        old = store.read(bname).astype(np.float64) if bname is not None else 0.0
        return (old + shift).astype(np.float32)

    folded = {wrole: wname + "@gain_folded"}
    if folded[wrole] not in weights:
        weights.derive(folded[wrole], wshape, weight)
    if beta is None:
        return folded
    folded[brole] = (bname or wname + ".bias") + "@beta_folded"
    if folded[brole] not in weights:
        weights.derive(folded[brole], tuple(np.delete(np.array(wshape), axis)), bias)
    return folded


def fold_norm_gains(model: Model) -> PassResult:
    weights = model.weights.copy()
    graphs = {}
    modified = False
    for key, graph in model.graphs.items():
        graph = graph.copy()
        for norm in [n for n in graph.nodes if n.op in _NORMS and n.weights]:
            beta_name = norm.weights.get("bias")
            users = _linear_readers(graph, norm.outputs[0], through_mul=beta_name is None)
            if users is None:
                continue
            one = np.ones(graph.values[norm.outputs[0]].shape[-1])
            gamma = model.weights[norm.weights["weight"]].astype(np.float64) if "weight" in norm.weights else one
            beta = None if beta_name is None else model.weights[beta_name].astype(np.float64)
            for name in dict.fromkeys(u.name for u in users):  # a reader met twice is folded once
                user = graph.find(name)
                graph.replace_node(user, replace(user, weights={**user.weights, **_fold(weights, user, gamma, beta)}))
            graph.replace_node(norm, replace(norm, weights={}))
            modified = True
        graphs[key] = graph
    return PassResult(model.with_graphs(graphs, weights), modified)
