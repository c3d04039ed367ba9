"""A float model in the IR: architecture, weights and its entry graphs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgec.frontends.weights import WeightStore
from edgec.ir import Graph

if TYPE_CHECKING:
    from edgec.families import ModelSpec

__all__ = ["Model"]


@dataclass
class Model:
    """``graphs`` holds the family's entry graphs: "prefill" (a sequence, zero initial state) and "step" (one
    token, state in/out) for a language model; "task/<name>" (images to one task's logits) per task for ViT-MoE."""

    spec: ModelSpec  # of the model's family (edgec.families)
    weights: WeightStore
    graphs: dict[str, Graph]
    source: str = ""
    tokenizer: Path | None = None

    def with_graphs(self, graphs: dict[str, Graph], weights: WeightStore | None = None) -> Model:
        return Model(self.spec, weights if weights is not None else self.weights, graphs, self.source,
                     self.tokenizer)
