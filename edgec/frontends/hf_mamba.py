"""Frontends for Hugging Face Mamba: a checkpoint directory, or a live MambaForCausalLM object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import CheckpointError
from edgec.frontends.mamba_graph import build_graphs
from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.model import Model
from edgec.frontends.weights import WeightStore

__all__ = ["from_torch", "load_checkpoint"]


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json; pass a folder written by "
                              "MambaForCausalLM.save_pretrained, or a bundled model name (edgec models)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return cfg


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted({str(s) for s in json.loads(index.read_text())["weight_map"].values()})
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
            raise CheckpointError(f"{index}: garbled shard index ({err})") from None
        files = [folder / s for s in shards]
    else:
        files = sorted(folder.glob("*.safetensors"))
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{missing[0]}: shard listed in the index is missing")
    if not files:
        pickled = any(folder.glob("*.bin")) or any(folder.glob("*.pt"))
        hint = (" (only pickled .bin/.pt weights found; edgec never unpickles: re-save with "
                "safe_serialization=True)") if pickled else ""
        raise CheckpointError(f"{folder}: no .safetensors weights{hint}")
    return files


def check_weights(spec: MambaSpec, store: WeightStore, source: str) -> None:
    """Every tensor the config implies must exist with exactly the implied shape."""
    for name, shape in spec.expected_shapes().items():
        if name not in store:
            raise CheckpointError(f"{source}: tensor {name!r} is missing (config implies shape {shape})")
        if tuple(store.shape(name)) != shape:
            raise CheckpointError(f"{source}: tensor {name!r} has shape {tuple(store.shape(name))}, "
                                  f"but config.json implies {shape}")


def load_checkpoint(folder: str | Path) -> Model:
    """Read a Hugging Face Mamba checkpoint folder (config.json + safetensors) into the IR."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such model folder; pass a checkpoint folder or a bundled "
                              "model name (edgec models)")
    spec = MambaSpec.from_config(_read_config(folder), source=str(folder / "config.json"))
    store = WeightStore.from_safetensors(_weight_files(folder))
    check_weights(spec, store, str(folder))
    tokenizer = folder / "tokenizer.json"
    return Model(spec=spec, weights=store, graphs=build_graphs(spec), source=str(folder),
                 tokenizer=tokenizer if tokenizer.is_file() else None)


def from_torch(model: Any) -> Model:
    """Import a live ``transformers.MambaForCausalLM`` (weights copied to float32 NumPy)."""
    cfg = model.config.to_dict()
    spec = MambaSpec.from_config(cfg, source=f"{type(model).__name__}.config")
    arrays = {name: t.detach().float().cpu().numpy().copy() for name, t in model.state_dict().items()}
    if spec.tie_word_embeddings:
        arrays.pop("lm_head.weight", None)
    store = WeightStore({k: v for k, v in arrays.items() if k in spec.expected_shapes()})
    for name in store:
        if not np.isfinite(store[name]).all():
            raise CheckpointError(f"live model: weight {name!r} contains NaN or Inf")
    check_weights(spec, store, "live model")
    return Model(spec=spec, weights=store, graphs=build_graphs(spec), source=f"live {type(model).__name__}")
