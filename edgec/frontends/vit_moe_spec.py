"""The architecture of a ViT-MoE (M3ViT-style multi-task vision transformer with experts), from its config.json.

The format (issue 9; M3ViT and timm names, so their checkpoints map onto it)::

    {"model_type": "vit_moe", "image_size": [H, W], "in_chans": C, "patch_size": P, "embed_dim": D,
     "depth": L, "num_heads": h, "mlp_ratio": r, "moe_layers": [block indices], "num_experts": E,
     "top_k": k, "moe_hidden": Hm, "multi_gate": true, "tasks": {"name": num_classes, ...},
     "norm_eps": 1e-6, "qkv_bias": true, "mean": [...], "std": [...]}

Dense blocks have an MLP of hidden width int(D * r) (timm's rounding); MoE blocks have E experts of
hidden width Hm and, with ``multi_gate``, one gate per task, named by the task's index in ``tasks``
(M3ViT's nn.ModuleList) — heads are named by the task's name. ``mean``/``std`` (default 0.5 per
channel) normalize pixel / 255. A plain ViT/DeiT is the same format with ``moe_layers: []``, and then
num_experts, top_k and moe_hidden may be left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends.config_fields import as_float, as_int, bool_field, float_field, int_field
from edgec.frontends.validate import short
from edgec.limits import (
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_EXPERTS,
    MAX_IMAGE_SIDE,
    MAX_LAYERS,
    MAX_PATCHES,
    MAX_TASKS,
    MAX_WIDTH,
)

__all__ = ["VitMoeSpec"]

_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_MAX_PIXEL_STAT = 1e6  # |mean| and std bounds: far above any real normalization


@dataclass(frozen=True)
class VitMoeSpec:
    """Sizes and switches of a ViT-MoE model; ``tasks`` is ordered (name, num_classes) pairs.

    ``num_experts``, ``top_k`` and ``moe_hidden`` are 0 when the config has no MoE layer and leaves them out.
    """

    image_size: tuple[int, int]
    in_chans: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    moe_layers: tuple[int, ...]
    num_experts: int
    top_k: int
    moe_hidden: int
    multi_gate: bool
    tasks: tuple[tuple[str, int], ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    norm_eps: float = 1e-6
    qkv_bias: bool = True

    family = "vit_moe"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], source: str = "config.json") -> VitMoeSpec:
        """Validate a config dict (types, ranges, cross-field) before anything is sized from it.

        Raises a one-line CheckpointError (UnsupportedModelError for another family) naming the field.
        """
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
        _check_family(cfg, source)
        chans = int_field(cfg, "in_chans", source, MAX_CHANNELS, "MAX_CHANNELS", default=3)
        image = _image_size(cfg, source)
        patch = int_field(cfg, "patch_size", source, MAX_IMAGE_SIDE, "MAX_IMAGE_SIDE")
        if image[0] % patch or image[1] % patch:
            raise CheckpointError(f"{source}: image_size {list(image)} is not a multiple of patch_size {patch} "
                                  "in both sides; the patches must tile the image: fix image_size or patch_size")
        if (image[0] // patch) * (image[1] // patch) > MAX_PATCHES:
            raise CheckpointError(f"{source}: image_size {list(image)} with patch_size {patch} makes more than "
                                  f"{MAX_PATCHES} patches (MAX_PATCHES); fix config.json")
        dim = int_field(cfg, "embed_dim", source, MAX_WIDTH, "MAX_WIDTH")
        heads = int_field(cfg, "num_heads", source, MAX_WIDTH, "MAX_WIDTH")
        if dim % heads:
            raise CheckpointError(f"{source}: embed_dim {dim} is not divisible by num_heads {heads}; "
                                  "each head takes embed_dim / num_heads channels: fix one of them")
        depth = int_field(cfg, "depth", source, MAX_LAYERS, "MAX_LAYERS")
        moe_layers = _moe_layers(cfg, source, depth)
        ratio = float_field(cfg, "mlp_ratio", source, 4.0, 0, 64)
        if len(moe_layers) < depth and not 1 <= int(dim * ratio) <= MAX_WIDTH:
            raise CheckpointError(f"{source}: the dense MLP width int(embed_dim * mlp_ratio) = {int(dim * ratio)} "
                                  f"is outside [1, {MAX_WIDTH}] (MAX_WIDTH); fix mlp_ratio")
        experts, top_k, hidden = _moe_sizes(cfg, source, required=bool(moe_layers))
        return cls(
            image_size=image, in_chans=chans, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
            mlp_ratio=ratio, moe_layers=moe_layers, num_experts=experts, top_k=top_k, moe_hidden=hidden,
            multi_gate=bool_field(cfg, "multi_gate", source, True), tasks=_tasks(cfg, source),
            mean=_pixel_stats(cfg, "mean", source, chans), std=_pixel_stats(cfg, "std", source, chans),
            norm_eps=float_field(cfg, "norm_eps", source, 1e-6, 0, 1), qkv_bias=bool_field(cfg, "qkv_bias", source,
                                                                                          True),
        )

    def to_config(self) -> dict[str, Any]:
        """The config.json dict of the format (from_config(to_config()) == self)."""
        cfg: dict[str, Any] = {
            "model_type": "vit_moe", "image_size": list(self.image_size), "in_chans": self.in_chans,
            "patch_size": self.patch_size, "embed_dim": self.embed_dim, "depth": self.depth,
            "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio, "moe_layers": list(self.moe_layers),
            "multi_gate": self.multi_gate, "tasks": dict(self.tasks), "norm_eps": self.norm_eps,
            "qkv_bias": self.qkv_bias, "mean": list(self.mean), "std": list(self.std),
        }
        if self.num_experts:
            cfg.update(num_experts=self.num_experts, top_k=self.top_k, moe_hidden=self.moe_hidden)
        return cfg

    @property
    def num_hidden_layers(self) -> int:
        return self.depth

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per column and per row."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_tokens(self) -> int:
        """The cls token and one token per patch."""
        return self.grid[0] * self.grid[1] + 1

    @property
    def mlp_hidden(self) -> int:
        """The hidden width of a dense block's MLP (timm's int(embed_dim * mlp_ratio))."""
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.tasks)

    def gate_weight(self, block: int, task: str) -> str:
        """The router weight [D, E] of MoE block ``block`` for ``task`` (one shared gate unless multi_gate)."""
        prefix = f"blocks.{block}.mlp.gate."
        return f"{prefix}{self.task_names.index(task)}.w_gate" if self.multi_gate else prefix + "w_gate"

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The tensor names and shapes a checkpoint of this spec must contain."""
        d, e, hm, hd = self.embed_dim, self.num_experts, self.moe_hidden, self.mlp_hidden
        p = self.patch_size
        shapes: dict[str, tuple[int, ...]] = {
            "patch_embed.proj.weight": (d, self.in_chans, p, p), "patch_embed.proj.bias": (d,),
            "cls_token": (1, 1, d), "pos_embed": (1, self.num_tokens, d), "norm.weight": (d,), "norm.bias": (d,),
        }
        for b in range(self.depth):
            w = f"blocks.{b}."
            shapes |= {w + "norm1.weight": (d,), w + "norm1.bias": (d,), w + "norm2.weight": (d,),
                       w + "norm2.bias": (d,), w + "attn.qkv.weight": (3 * d, d), w + "attn.proj.weight": (d, d),
                       w + "attn.proj.bias": (d,)}
            if self.qkv_bias:
                shapes[w + "attn.qkv.bias"] = (3 * d,)
            if b in self.moe_layers:
                x = w + "mlp.experts."
                shapes |= {x + "htoh4.weight": (e, hm, d), x + "htoh4.bias": (e, hm),
                           x + "h4toh.weight": (e, d, hm), x + "h4toh.bias": (e, d)}
                shapes |= {self.gate_weight(b, task): (d, e) for task in self.task_names}
            else:
                shapes |= {w + "mlp.fc1.weight": (hd, d), w + "mlp.fc1.bias": (hd,), w + "mlp.fc2.weight": (d, hd),
                           w + "mlp.fc2.bias": (d,)}
        for task, classes in self.tasks:
            shapes |= {f"heads.{task}.weight": (classes, d), f"heads.{task}.bias": (classes,)}
        return shapes


def _check_family(cfg: Mapping[str, Any], source: str) -> None:
    """model_type "vit_moe", and architectures (if any) a list of strings."""
    arch = cfg.get("architectures") or []
    if not isinstance(arch, list) or not all(isinstance(a, str) for a in arch):
        raise CheckpointError(f"{source}: architectures must be a list of strings, got {short(arch)}")
    if cfg.get("model_type") != "vit_moe":
        raise UnsupportedModelError(f"{source}: model_type {short(cfg.get('model_type'))} is not \"vit_moe\"; "
                                    "this reader takes ViT-MoE checkpoints")


def _list(cfg: Mapping[str, Any], name: str, source: str, what: str) -> list[Any]:
    value = cfg.get(name)
    if not isinstance(value, list):
        state = "missing" if value is None else f"{short(value)}, not a list"
        raise CheckpointError(f"{source}: {name} is {state}; write {what}")
    return value


def _image_size(cfg: Mapping[str, Any], source: str) -> tuple[int, int]:
    """[H, W] (a single integer means a square image)."""
    value = cfg.get("image_size")
    if isinstance(value, int | float) and not isinstance(value, bool):
        side = as_int(value, "image_size", source, MAX_IMAGE_SIDE, "MAX_IMAGE_SIDE")
        return side, side
    sides = _list(cfg, "image_size", source, "[height, width] in pixels")
    if len(sides) != 2:
        raise CheckpointError(f"{source}: image_size {short(sides)} has {len(sides)} entries; write [height, width]")
    h, w = (as_int(v, f"image_size[{i}]", source, MAX_IMAGE_SIDE, "MAX_IMAGE_SIDE") for i, v in enumerate(sides))
    return h, w


def _moe_layers(cfg: Mapping[str, Any], source: str, depth: int) -> tuple[int, ...]:
    """Distinct block indices in [0, depth), sorted; [] (or a missing field) for a plain ViT."""
    if cfg.get("moe_layers") is None:
        return ()
    blocks = [as_int(v, f"moe_layers[{i}]", source, depth - 1, f"block indices of depth {depth}", low=0)
              for i, v in enumerate(_list(cfg, "moe_layers", source, "a list of block indices"))]
    if len(set(blocks)) != len(blocks):
        twice = next(b for b in blocks if blocks.count(b) > 1)
        raise CheckpointError(f"{source}: moe_layers lists block {twice} twice; list each MoE block once")
    return tuple(sorted(blocks))


def _moe_sizes(cfg: Mapping[str, Any], source: str, required: bool) -> tuple[int, int, int]:
    """(num_experts, top_k, moe_hidden): required with MoE layers, checked if given without; 0 when absent."""
    if not required and all(cfg.get(k) is None for k in ("num_experts", "top_k", "moe_hidden")):
        return 0, 0, 0
    experts = int_field(cfg, "num_experts", source, MAX_EXPERTS, "MAX_EXPERTS")
    top_k = int_field(cfg, "top_k", source, MAX_EXPERTS, "MAX_EXPERTS")
    if top_k > experts:
        raise CheckpointError(f"{source}: top_k {top_k} is larger than num_experts {experts}; each token is "
                              "routed to top_k of the num_experts experts: fix one of them")
    return experts, top_k, int_field(cfg, "moe_hidden", source, MAX_WIDTH, "MAX_WIDTH")


def _tasks(cfg: Mapping[str, Any], source: str) -> tuple[tuple[str, int], ...]:
    """The ordered {name: num_classes} object: 1 to MAX_TASKS tasks, identifier-like names, classes >= 1."""
    tasks = cfg.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        state = "missing" if tasks is None else f"{short(tasks)}, not a non-empty object"
        raise CheckpointError(f"{source}: tasks is {state}; write {{\"task name\": number of classes, ...}}")
    if len(tasks) > MAX_TASKS:
        raise CheckpointError(f"{source}: tasks lists {len(tasks)} tasks, more than {MAX_TASKS} (MAX_TASKS)")
    for name in tasks:
        if not _TASK_NAME.fullmatch(name):
            raise CheckpointError(f"{source}: task name {short(name)} is not 1 to 64 letters, digits, '_' or '-' "
                                  "(starting with a letter or '_'); rename the task")
    return tuple((name, as_int(n, f"tasks[{name!r}]", source, MAX_CLASSES, "MAX_CLASSES"))
                 for name, n in tasks.items())


def _pixel_stats(cfg: Mapping[str, Any], name: str, source: str, chans: int) -> tuple[float, ...]:
    """Per-channel ``mean`` or ``std`` of pixel / 255: in_chans finite numbers (std > 0); 0.5 each if missing."""
    if cfg.get(name) is None:
        return (0.5,) * chans
    values = _list(cfg, name, source, f"{chans} numbers, one per channel")
    if len(values) != chans:
        raise CheckpointError(f"{source}: {name} has {len(values)} entries, but in_chans is {chans}; "
                              "write one number per channel")
    low = 0 if name == "std" else -_MAX_PIXEL_STAT
    return tuple(as_float(v, f"{name}[{i}]", source, low, _MAX_PIXEL_STAT) for i, v in enumerate(values))
