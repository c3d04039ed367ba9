"""A float model in the IR: architecture, weights and its entry graphs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.weights import WeightStore
from edgec.ir import Graph

__all__ = ["Model"]


@dataclass
class Model:
    """``graphs`` holds "prefill" (a sequence, zero initial state) and "step" (one token, state in/out)."""

    spec: MambaSpec
    weights: WeightStore
    graphs: dict[str, Graph]
    source: str = ""
    tokenizer: Path | None = None

    def with_graphs(self, graphs: dict[str, Graph], weights: WeightStore | None = None) -> Model:
        return Model(self.spec, weights if weights is not None else self.weights, graphs, self.source,
                     self.tokenizer)
