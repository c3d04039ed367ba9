"""Model families as plug-ins: one table entry per family, keyed by the config's ``model_type``.

A family is a spec class (``from_config(cfg, source)`` validating config.json, ``expected_shapes()``,
``to_config()``, ``num_hidden_layers``; language models also ``vocab_size``) and a graph builder
(``build_graphs(spec)`` -> its entry graphs: "prefill" and "step" for the language models, one
"task/<name>" graph per task for ViT-MoE), plus what its graphs take (``inputs``: "tokens" or
"images") and an optional hook that adapts a checkpoint's tensor names before their shapes are
checked. Loaders, passes, simulators and targets work per op and never branch on the family; the few
family facts they need come from this table, the spec or the graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends import mamba2_graph, mamba_graph, vit_moe_graph, xlstm_graph
from edgec.frontends.mamba2_spec import Mamba2Spec, check_checkpoint
from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.validate import short
from edgec.frontends.vit_moe_checkpoint import adapt_checkpoint
from edgec.frontends.vit_moe_spec import VitMoeSpec
from edgec.frontends.weights import WeightStore
from edgec.frontends.xlstm_spec import XlstmSpec
from edgec.ir import Graph

__all__ = ["FAMILIES", "Family", "ModelSpec", "family_of"]


class ModelSpec(Protocol):
    """What every family's spec provides (a language model's also has ``vocab_size``)."""

    family: str
    num_hidden_layers: int

    def expected_shapes(self) -> dict[str, tuple[int, ...]]: ...

    def to_config(self) -> dict[str, Any]: ...


def _names_as_they_are(spec: Any, store: WeightStore, source: str) -> None:
    """Checkpoints of the family use expected_shapes()'s names exactly; extra tensors are ignored."""


@dataclass(frozen=True)
class Family:
    """A model family: its name, how messages call it, the class whose checkpoints it reads, its spec and
    graph builder, what its graphs take, and a hook adapting a checkpoint's names (in place, or refusing)."""

    name: str
    title: str
    hf_class: str
    spec: Callable[..., Any]  # from_config(cfg, source=...) -> ModelSpec
    build_graphs: Callable[[Any], dict[str, Graph]]
    inputs: str = "tokens"  # "tokens" (language models: token data, tokenizer.json) or "images"
    adapt_checkpoint: Callable[[Any, WeightStore, str], None] = _names_as_they_are


FAMILIES: dict[str, Family] = {
    "mamba": Family("mamba", "Mamba", "MambaForCausalLM", MambaSpec.from_config, mamba_graph.build_graphs),
    "mamba2": Family("mamba2", "Mamba-2", "Mamba2ForCausalLM", Mamba2Spec.from_config, mamba2_graph.build_graphs,
                     adapt_checkpoint=check_checkpoint),
    "xlstm": Family("xlstm", "xLSTM", "xLSTMForCausalLM", XlstmSpec.from_config, xlstm_graph.build_graphs),
    "vit_moe": Family("vit_moe", "ViT-MoE", "VitMoe (M3ViT, timm ViT)", VitMoeSpec.from_config,
                      vit_moe_graph.build_graphs, inputs="images", adapt_checkpoint=adapt_checkpoint),
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
        titles = [f.title for f in FAMILIES.values()]
        raise UnsupportedModelError(f"{source}: architecture {short(name or 'an unnamed model')} (model_type "
                                    f"{short(model_type)}) is not {', '.join(titles[:-1])} or {titles[-1]}; edgec "
                                    f"compiles {', '.join(f.hf_class for f in FAMILIES.values())} checkpoints")
    return FAMILIES[model_type]

