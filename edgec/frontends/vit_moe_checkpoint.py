"""ViT-MoE checkpoint names: timm's single-task head, and tensors of ViT variants this family does not compute.

Run on a checkpoint's weight store before its shapes are checked against the config:
- a single-task checkpoint may carry timm's ``head.{weight,bias}`` instead of ``heads.{task}.*``;
- a tensor of the model (under patch_embed, blocks, norm, heads, ...) that the config does not imply
  is refused, naming what it means (layer scale, a distillation token, a block past ``depth``, ...),
  since ignoring it would compute another model. Tensors outside the model (M3ViT's dense-prediction
  decoders, optimizer state) and gates' auxiliary weights (``w_gate_aux``) are left alone.
"""

from __future__ import annotations

import re

from edgec.errors import CheckpointError
from edgec.frontends.validate import short
from edgec.frontends.vit_moe_spec import VitMoeSpec
from edgec.frontends.weights import WeightStore

__all__ = ["adapt_checkpoint"]

_MODEL_ROOTS = frozenset({"patch_embed", "cls_token", "pos_embed", "blocks", "norm", "fc_norm", "head", "heads",
                          "dist_token", "reg_token", "head_dist", "pre_logits"})
_HARMLESS = re.compile(r"blocks\.\d+\.mlp\.gate\.(\d+\.)?w_gate_aux")
#: What an unexpected tensor means, by pattern (the first match wins).
_MEANINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), m) for p, m in (
    (r"fc_norm\.", "average pooling with fc_norm (timm global_pool='avg'); this format pools the cls token"),
    (r"(dist_token|head_dist\.)", "DeiT's distillation token; this format has the cls token only"),
    (r"reg_token", "register tokens; this format has the cls token only"),
    (r"blocks\.\d+\.ls[12]\.", "layer scale, which this format does not have"),
    (r"blocks\.\d+\.attn\.(q_norm|k_norm|norm)\.", "normalization inside attention, which this format does not have"),
    (r"blocks\.\d+\.mlp\.norm\.", "a norm after the MLP, which this format does not have"),
    (r"blocks\.\d+\.mlp\.gate\.w_gate$", "one gate shared by all tasks: set multi_gate false"),
    (r"blocks\.\d+\.mlp\.gate\.\d+\.w_gate$", "one gate per task: set multi_gate true and list every task"),
    (r"blocks\.\d+\.mlp\.fc[12]\.", "a dense MLP block: remove it from moe_layers"),
    (r"blocks\.\d+\.attn\.qkv\.bias", "a qkv bias: set qkv_bias true"),
    (r"head\.", "timm's head of a single-task model, but tasks lists several"),
    (r"heads\.", "a head for a task that tasks does not list"),
))


def adapt_checkpoint(spec: VitMoeSpec, store: WeightStore, source: str) -> None:
    """Rename timm's head of a single-task checkpoint in ``store``, then refuse tensors of other ViT variants."""
    if len(spec.tasks) == 1:
        _rename_timm_head(spec.task_names[0], store, source)
    expected = spec.expected_shapes()
    for name in store:
        root = name.split(".", 1)[0]
        if root in _MODEL_ROOTS and name not in expected and not _HARMLESS.fullmatch(name):
            raise CheckpointError(f"{source}: tensor {short(name)} is not part of the model config.json describes "
                                  f"({_meaning(spec, name)}); fix config.json, or convert a model of this format")


def _rename_timm_head(task: str, store: WeightStore, source: str) -> None:
    for part in ("weight", "bias"):
        timm, ours = f"head.{part}", f"heads.{task}.{part}"
        if timm in store and ours in store:
            raise CheckpointError(f"{source}: has both {timm} (timm's head) and {ours}; keep one of them")
        if timm in store:
            store.rename(timm, ours)


def _meaning(spec: VitMoeSpec, name: str) -> str:
    block = re.match(r"blocks\.(\d+)\.(mlp\.(experts|gate)\.)?", name)
    if block and int(block.group(1)) >= spec.depth:
        return f"block {block.group(1)}, but depth is {spec.depth}"
    if block and block.group(2) and int(block.group(1)) not in spec.moe_layers:
        return f"block {block.group(1)} is an MoE block: list it in moe_layers"
    return next((meaning for pattern, meaning in _MEANINGS if pattern.match(name)),
                "a tensor this format does not have")
