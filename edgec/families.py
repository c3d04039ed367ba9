"""Model families as plug-ins: one table entry per family, keyed by the config's ``model_type``.

A family is a spec class (``from_config(cfg, source)`` validating config.json, ``expected_shapes()``,
``to_config()``, ``vocab_size``, ``num_hidden_layers``) and a graph builder (``build_graphs(spec)`` ->
{"prefill": Graph, "step": Graph}). Loaders, passes, simulators and targets work per op and never
branch on the family; the few family facts they need come from the spec or the graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends import mamba_graph, xlstm_graph
from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.validate import short
from edgec.frontends.xlstm_spec import XlstmSpec
from edgec.ir import Graph

__all__ = ["FAMILIES", "Family", "ModelSpec", "family_of"]


class ModelSpec(Protocol):
    """What every family's spec provides."""

    family: str
    vocab_size: int
    num_hidden_layers: int

    def expected_shapes(self) -> dict[str, tuple[int, ...]]: ...

    def to_config(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Family:
    """A model family: its name, the transformers class it mirrors, its spec and its graph builder."""

    name: str
    hf_class: str
    spec: Callable[..., Any]  # from_config(cfg, source=...) -> ModelSpec
    build_graphs: Callable[[Any], dict[str, Graph]]


FAMILIES: dict[str, Family] = {
    "mamba": Family("mamba", "MambaForCausalLM", MambaSpec.from_config, mamba_graph.build_graphs),
    "xlstm": Family("xlstm", "xLSTMForCausalLM", XlstmSpec.from_config, xlstm_graph.build_graphs),
}


def family_of(cfg: Mapping[str, Any], source: str) -> Family:
    """The family a config.json belongs to, by its ``model_type``; an unknown one is named with the known ones."""
    model_type = cfg.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise CheckpointError(f"{source}: model_type must be a string, got {short(model_type)}; write one of "
                              f"{', '.join(FAMILIES)}")
    if model_type not in FAMILIES:
        arch = cfg.get("architectures")
        name = arch[0] if isinstance(arch, list) and arch and isinstance(arch[0], str) else model_type
        raise UnsupportedModelError(f"{source}: architecture {short(name or 'an unnamed model')} (model_type "
                                    f"{short(model_type)}) is not Mamba or xLSTM; edgec compiles "
                                    f"{', '.join(f.hf_class for f in FAMILIES.values())} checkpoints")
    return FAMILIES[model_type]

