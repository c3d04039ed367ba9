"""Which side wins the mLSTM denominator max(|q.n|, exp(-m)) while a model decodes (float reference).

A model whose input gates stay near transformers' init (bias -10) has exp(-m) win everywhere, so
the n path is never exercised; test and bundled models are checked with this to have both.
"""

from __future__ import annotations

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Node
from edgec.runtime.float_ref import FloatInterpreter

__all__ = ["denominator_branches"]


class _BranchCounter(FloatInterpreter):
    """The float interpreter, counting per head and token which side of the denominator's max wins."""

    def __init__(self, model: Model) -> None:
        super().__init__(model.weights)
        self.counts = {"q.n": 0, "exp(-m)": 0}

    def op_mlstm_step(self, node: Node, *args: np.ndarray) -> tuple[np.ndarray, ...]:
        h, c, n, m = super().op_mlstm_step(node, *args)
        q = args[0].reshape(*args[0].shape[:-1], node.attrs["heads"], -1)
        qn = np.abs(np.einsum("bhd,bhd->bh", q * q.shape[-1] ** -0.5, n))
        self.counts["q.n"] += int((qn > np.exp(-m)).sum())
        self.counts["exp(-m)"] += int((qn <= np.exp(-m)).sum())
        return h, c, n, m


def denominator_branches(model: Model, tokens: np.ndarray) -> dict[str, int]:
    """Decode ``tokens`` [B, T] with the step graph from the zero state; count the winning sides."""
    graph = model.graphs["step"]
    counter = _BranchCounter(model)
    state = {name: np.zeros((tokens.shape[0], *graph.values[name].shape[1:]), np.float32) for name in graph.inputs[1:]}
    for t in range(tokens.shape[1]):
        out = counter.run(graph, {"tokens": tokens[:, t], **state})
        state = {k: out[k + "_out"] for k in state}
    return counter.counts
