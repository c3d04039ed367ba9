"""Checkpoints of every family (edgec.families): a Hugging Face-style folder (config.json + safetensors), or a
live torch model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import CheckpointError
from edgec.families import Family, ModelSpec, family_of
from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.model import Model
from edgec.frontends.validate import is_present, load_tokenizer, loads_json, path_problem, read_bytes, short
from edgec.frontends.weights import WeightStore
from edgec.limits import MAX_CONFIG_BYTES

__all__ = ["check_weights", "from_torch", "load_checkpoint"]


def checkpoint_family(folder: Path) -> Family:
    """The family of a checkpoint folder, from its config.json alone (nothing else is read)."""
    return family_of(_read_config(folder), str(folder / "config.json"))


def _read_config(folder: Path) -> dict[str, Any]:
    """config.json as a dict: a small regular UTF-8 file of strict JSON holding an object."""
    path = folder / "config.json"
    if not is_present(path):
        raise CheckpointError(f"{folder}: no config.json; pass a folder written by "
                              "a transformers model's save_pretrained, or a bundled model name (edgec models)")
    raw = read_bytes(path, "a config.json written by save_pretrained", CheckpointError,
                     MAX_CONFIG_BYTES, "MAX_CONFIG_BYTES")
    cfg = loads_json(raw, path, infinity=True)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got a JSON {type(cfg).__name__}; "
                              "pass a config.json written by save_pretrained")
    return cfg


def _plain_shard_name(name: str) -> bool:
    """A .safetensors file name directly in the checkpoint folder: no path, no '..', no NUL."""
    return name.endswith(".safetensors") and not name.startswith("..") and not any(c in name for c in "/\\\0")


def _read_index(index: Path) -> dict[str, str]:
    """The weight_map (tensor name -> shard file name) of model.safetensors.index.json."""
    raw = read_bytes(index, "a model.safetensors.index.json written by save_pretrained", CheckpointError,
                     MAX_CONFIG_BYTES, "MAX_CONFIG_BYTES")
    data = loads_json(raw, index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: garbled shard index (weight_map is {short(weight_map)}, not a non-empty "
                              "object of tensor name -> shard file); re-save the checkpoint")
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise CheckpointError(f"{index}: garbled shard index (weight_map[{short(name)}] is {short(shard)}, not "
                                  "a shard file name); re-save the checkpoint")
        if not _plain_shard_name(shard):
            raise CheckpointError(f"{index}: shard {short(shard)} of tensor {short(name)} is not a .safetensors "
                                  "file name inside the checkpoint folder (paths and '..' are refused)")
    return weight_map


def _weight_files(folder: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The safetensors files of a checkpoint and, if it is sharded, its weight_map.

    As in transformers' from_pretrained: a model.safetensors is the whole model (an index beside it
    is ignored); otherwise the index lists the shards; otherwise every .safetensors file is read.
    """
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if is_present(single) and is_present(index):
        return [single], None
    if is_present(index):
        weight_map = _read_index(index)
        files = [folder / s for s in sorted(set(weight_map.values()))]
        for f in files:
            problem = path_problem(f)
            if problem is not None:
                problem = "is missing" if problem == "does not exist" else problem
                raise CheckpointError(f"{f}: shard listed in the index {problem}; download it again")
        return files, weight_map
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = any(folder.glob("*.bin")) or any(folder.glob("*.pt"))
        hint = (" (only pickled .bin/.pt weights found; edgec never unpickles: re-save with "
                "safe_serialization=True)") if pickled else ""
        raise CheckpointError(f"{folder}: no .safetensors weights{hint}")
    return files, None


def _intermediate_hint(cfg: dict[str, Any], spec: ModelSpec) -> str:
    """Why shapes may disagree: intermediate_size given unlike expand * hidden_size (transformers uses the latter)."""
    expand = cfg.get("expand")
    if not isinstance(spec, MambaSpec) or cfg.get("intermediate_size") is None:
        return ""
    if (not isinstance(expand, int | float) or isinstance(expand, bool)
            or expand * spec.hidden_size == spec.intermediate_size):
        return ""
    return (f" (its intermediate_size {spec.intermediate_size} disagrees with expand {expand} x hidden_size "
            f"{spec.hidden_size}, which transformers uses)")


def check_weights(spec: ModelSpec, store: WeightStore, source: str, hint: str = "") -> None:
    """Every tensor the config implies must exist with exactly the implied shape."""
    for name, shape in spec.expected_shapes().items():
        if name not in store:
            raise CheckpointError(f"{source}: tensor {name!r} is missing (config implies shape {shape})")
        if tuple(store.shape(name)) != shape:
            raise CheckpointError(f"{source}: tensor {name!r} has shape {tuple(store.shape(name))}, "
                                  f"but config.json implies {shape}{hint}")


def load_checkpoint(folder: str | Path) -> Model:
    """Read a Hugging Face checkpoint folder (config.json + safetensors) of any supported family into the IR.

    Every file is validated (config fields, safetensors headers, shard index, tokenizer.json) before
    any tensor data is read or any graph is built.
    """
    folder = Path(folder)
    problem = path_problem(folder, want_dir=True)
    if problem == "does not exist":
        raise CheckpointError(f"{folder}: no such model folder; pass a checkpoint folder or a bundled "
                              "model name (edgec models)")
    if problem is not None:
        raise CheckpointError(f"{folder}: {problem}; pass a checkpoint folder or a bundled model name (edgec models)")
    cfg = _read_config(folder)
    family = family_of(cfg, str(folder / "config.json"))
    spec = family.spec(cfg, source=str(folder / "config.json"))
    files, weight_map = _weight_files(folder)
    store = WeightStore.from_safetensors(files, weight_map)
    family.adapt_checkpoint(spec, store, str(folder))
    check_weights(spec, store, str(folder), _intermediate_hint(cfg, spec))
    tokenizer = folder / "tokenizer.json"
    if family.inputs == "tokens" and is_present(tokenizer):
        ids = load_tokenizer(tokenizer).get_vocab_size()  # a garbled tokenizer.json fails now, not after calibration
        if ids > spec.vocab_size:
            raise CheckpointError(f"{tokenizer}: has {ids} token ids, but config.json's vocab_size is "
                                  f"{spec.vocab_size}; pass the tokenizer of this model")
    else:
        tokenizer = None
    return Model(spec=spec, weights=store, graphs=family.build_graphs(spec), source=str(folder), tokenizer=tokenizer)


def from_torch(model: Any) -> Model:
    """Import a live torch model of a supported family (transformers' ``MambaForCausalLM``,
    ``Mamba2ForCausalLM`` or ``xLSTMForCausalLM``, edgec's ViT-MoE reference ``VitMoe``): its
    ``config.to_dict()`` names the family; its weights are copied to float32 NumPy."""
    cfg = model.config.to_dict()
    source = f"{type(model).__name__}.config"
    family = family_of(cfg, source)
    spec = family.spec(cfg, source=source)
    expected = spec.expected_shapes()  # a tied lm_head is not among them
    store = WeightStore({name: t.detach().float().cpu().numpy().copy() for name, t in model.state_dict().items()
                         if name in expected})
    for name in store:
        if not np.isfinite(store[name]).all():
            raise CheckpointError(f"live model: weight {name!r} contains NaN or Inf")
    check_weights(spec, store, "live model")
    return Model(spec=spec, weights=store, graphs=family.build_graphs(spec), source=f"live {type(model).__name__}")
