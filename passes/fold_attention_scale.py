"""Fold the attention scale into the query projection: (q k^T) * s == (s q) k^T.

For an ATTN_SCORES node whose q comes from a segment of a LINEAR (through the SPLIT that names q, k, v),
the rows of that segment in the weight and bias are multiplied by s and the node's scale becomes 1. Float
semantics are unchanged; q's calibrated scale shrinks by s, so its int8 codes are the same. The exported
graphs then multiply int8 q by int8 k^T with nothing after the MatMul (QDQBERT / TensorRT's pattern), and
the int profile's requant of the scores carries no extra factor. Per op: any attention whose q is a
linear segment, whatever the family.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Op
from edgec.passes.base import PassResult

__all__ = ["fold_attention_scale"]


def fold_attention_scale(model: Model) -> PassResult:
    weights = model.weights.copy()
    graphs = {}
    modified = False
    for key, graph in model.graphs.items():
        graph = graph.copy()
        for scores in [n for n in graph.nodes if n.op is Op.ATTN_SCORES and n.attrs["scale"] != 1.0]:
            split = graph.producer(scores.inputs[0])
            linear = graph.producer(split.inputs[0]) if split is not None and split.op is Op.SPLIT else None
            if linear is None or linear.op is not Op.LINEAR or len(graph.users(scores.inputs[0])) != 1:
                continue
            segment = split.outputs.index(scores.inputs[0])
            start = sum(split.attrs["sizes"][:segment])
            rows = slice(start, start + split.attrs["sizes"][segment])
            s = float(scores.attrs["scale"])
            folded = {role: linear.weights[role] + "@qscaled" for role in ("weight", "bias") if role in linear.weights}
            for role, name in folded.items():
                if name not in weights:
                    weights.derive(name, weights.shape(linear.weights[role]),
                                   _rows_scaled(linear.weights[role], rows, s))
            graph.replace_node(linear, replace(linear, weights={**linear.weights, **folded}))
            graph.replace_node(scores, replace(scores, attrs={**scores.attrs, "scale": 1.0}))
            modified = True
        graphs[key] = graph
    return PassResult(model.with_graphs(graphs, weights), modified)


def _rows_scaled(name: str, rows: slice, scale: float):
    """The derivation of tensor ``name`` with ``rows`` multiplied by ``scale`` (in float64)."""
    def derive(store) -> np.ndarray:
        w = store.read(name).astype(np.float64)  # a copy
        w[rows] *= scale
        return w.astype(np.float32)
    return derive
