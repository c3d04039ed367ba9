"""Fold the image normalization into the patch embedding: the first value becomes pixel - 128.

(p / 255 - mean_c) / std_c = (u + 128) / 255 / std_c - mean_c / std_c with u = p - 128, so the patch
weights of channel c are divided by 255 std_c and the bias takes sum W (128 / 255 - mean_c) / std_c. The
NORMALIZE_IMAGE node keeps its op with mean 128/255 and std 1/255 (float semantics unchanged); its output
is then an exact int8 code at scale 1, which the int profile reads as is (no requantization of pixels).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Op
from edgec.passes.base import PassResult

__all__ = ["CENTRED_MEAN", "CENTRED_STD", "fold_image_normalization", "is_centred"]

CENTRED_MEAN = 128 / 255
CENTRED_STD = 1 / 255


def is_centred(attrs) -> bool:
    """Whether a NORMALIZE_IMAGE computes pixel - 128."""
    return bool(np.all(np.asarray(attrs["mean"]) == CENTRED_MEAN) and np.all(np.asarray(attrs["std"]) == CENTRED_STD))


def fold_image_normalization(model: Model) -> PassResult:
    weights = model.weights.copy()
    graphs = {}
    modified = False
    for key, graph in model.graphs.items():
        graph = graph.copy()
        for norm in [n for n in graph.nodes if n.op is Op.NORMALIZE_IMAGE and not is_centred(n.attrs)]:
            users = graph.users(norm.outputs[0])
            if not users or any(u.op is not Op.PATCH_EMBED for u in users):
                continue
            c = graph.values[norm.inputs[0]].shape[-1]
            mean = np.broadcast_to(np.asarray(norm.attrs["mean"], np.float64), (c,))
            std = np.broadcast_to(np.asarray(norm.attrs["std"], np.float64), (c,))
            for user in users:
                wname, bname = user.weights["weight"], user.weights["bias"]
                folded = {"weight": wname + "@norm_folded", "bias": bname + "@norm_folded"}
                if folded["weight"] not in weights:
                    _derive_folded(weights, wname, bname, folded, mean, std)
                graph.replace_node(user, replace(user, weights={**user.weights, **folded}))
            graph.replace_node(norm, replace(norm, attrs={**norm.attrs, "mean": (CENTRED_MEAN,) * c,
                                                          "std": (CENTRED_STD,) * c}))
            modified = True
        graphs[key] = graph
    return PassResult(model.with_graphs(graphs, weights), modified)


def _derive_folded(weights, wname: str, bname: str, folded: dict[str, str], mean: np.ndarray, std: np.ndarray) -> None:
    """The patch embedding's weight [D, C, P, P] divided by 255 std per channel, its bias shifted to match."""
    def weight(store) -> np.ndarray:
        return (store.read(wname).astype(np.float64) / (255 * std)[None, :, None, None]).astype(np.float32)

    def bias(store) -> np.ndarray:
        shift = np.einsum("dcyx,c->d", store.read(wname).astype(np.float64), (CENTRED_MEAN - mean) / std)
        return (store.read(bname).astype(np.float64) + shift).astype(np.float32)

    weights.derive(folded["weight"], weights.shape(wname), weight)
    weights.derive(folded["bias"], weights.shape(bname), bias)
