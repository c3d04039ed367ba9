"""A small, readable PyTorch reference of the ViT-MoE family (M3ViT-style multi-task ViT with experts).

``VitMoe(config)`` takes the config.json dict of edgec.frontends.vit_moe_spec (validated there), and its
``state_dict()`` names are exactly that checkpoint format, so ``save_pretrained(folder)`` writes a folder
``edgec.load_checkpoint`` reads, and ``edgec.from_torch(model)`` imports it live (through
``model.config.to_dict()``, as for transformers models). It is the float reference of the tests and
the model the bundled ViT-MoE is trained with. Semantics at inference (issue 9):

- pixels [B, H, W, C] in [0, 255] -> (pixel / 255 - mean) / std -> patches (row-major) -> cls token
  first, + pos_embed; pre-norm blocks x += attn(norm1(x)); x += mlp(norm2(x)); logits = head(norm(x)[cls]);
- attention softmax(q k^T * (D/h)^-0.5) v; GELU is the exact erf form;
- an MoE block routes each token with its task's gate: p = softmax(x @ w_gate), the top_k experts by
  p (ties to the lower index), output = sum over them of p_e * expert_e(x), not renormalized, with
  no capacity limit, token dropping or noise; the sum runs in rank order (highest p first).

torch is imported here only; the core never imports this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgec.frontends.vit_moe_spec import VitMoeSpec

__all__ = ["VitMoe"]


class _Config:
    """The model's config in transformers' shape (``to_dict()``), which edgec.from_torch reads."""

    def __init__(self, spec: VitMoeSpec) -> None:
        self.spec = spec

    def to_dict(self) -> dict[str, Any]:
        return self.spec.to_config()


class PatchEmbed(nn.Module):
    """A conv with kernel = stride = patch: [B, C, H, W] -> [B, N, D], patches row-major."""

    def __init__(self, spec: VitMoeSpec) -> None:
        super().__init__()
        self.proj = nn.Conv2d(spec.in_chans, spec.embed_dim, spec.patch_size, stride=spec.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one qkv projection (q, k, v in that order; heads of D/h channels)."""

    def __init__(self, spec: VitMoeSpec) -> None:
        super().__init__()
        d = spec.embed_dim
        self.heads, self.scale = spec.num_heads, (d // spec.num_heads) ** -0.5
        self.qkv = nn.Linear(d, 3 * d, bias=spec.qkv_bias)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        probs = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((probs @ v).transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """The dense MLP: fc2(gelu(fc1(x)))."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ExpertLinear(nn.Module):
    """E independent linear layers: weight [E, out, in], bias [E, out] (fastmoe's FMoELinear layout)."""

    def __init__(self, experts: int, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)  # nn.Linear's default initialization, per expert
        self.weight = nn.Parameter(torch.empty(experts, d_out, d_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(experts, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, expert: int) -> torch.Tensor:
        return F.linear(x, self.weight[expert], self.bias[expert])


class Experts(nn.Module):
    """The experts of one MoE block: h4toh(gelu(htoh4(x))) with expert e's weights."""

    def __init__(self, spec: VitMoeSpec) -> None:
        super().__init__()
        self.htoh4 = ExpertLinear(spec.num_experts, spec.embed_dim, spec.moe_hidden)
        self.h4toh = ExpertLinear(spec.num_experts, spec.moe_hidden, spec.embed_dim)

    def forward(self, x: torch.Tensor, expert: int) -> torch.Tensor:
        return self.h4toh(F.gelu(self.htoh4(x, expert)), expert)


class Gate(nn.Module):
    """A router: logits = x @ w_gate, w_gate [D, E] (M3ViT's NoisyGate_VMoE at inference: no bias, no noise)."""

    def __init__(self, dim: int, experts: int) -> None:
        super().__init__()
        self.w_gate = nn.Parameter(torch.empty(dim, experts))
        nn.init.kaiming_uniform_(self.w_gate, a=math.sqrt(5))


class MoeMlp(nn.Module):
    """Experts with one gate per task (``multi_gate``) or one shared gate.

    ``last_route`` holds the expert indices [B, T, k] of the last forward, for routing comparisons.
    """

    def __init__(self, spec: VitMoeSpec) -> None:
        super().__init__()
        self.top_k = spec.top_k
        self.experts = Experts(spec)
        gates = [Gate(spec.embed_dim, spec.num_experts) for _ in (spec.tasks if spec.multi_gate else [None])]
        self.gate: nn.Module = nn.ModuleList(gates) if spec.multi_gate else gates[0]
        self.last_route: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        gate = self.gate[task] if isinstance(self.gate, nn.ModuleList) else self.gate
        flat = x.reshape(-1, x.shape[-1])
        probs = (flat @ gate.w_gate).softmax(dim=-1)
        # a stable descending sort keeps equal probabilities in index order: ties go to the lower index
        chosen = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, : self.top_k]
        weights = probs.gather(-1, chosen)
        self.last_route = chosen.reshape(*x.shape[:-1], self.top_k).detach()
        slots = flat.new_zeros(flat.shape[0], self.top_k, flat.shape[-1])
        for e in chosen.unique().tolist():
            rows, cols = (chosen == e).nonzero(as_tuple=True)
            slots = slots.index_put((rows, cols), self.experts(flat[rows], e))
        out = sum(weights[:, j, None] * slots[:, j] for j in range(self.top_k))
        return out.reshape(x.shape)


class Block(nn.Module):
    """A pre-norm transformer block with a dense or an MoE MLP."""

    def __init__(self, spec: VitMoeSpec, index: int) -> None:
        super().__init__()
        d = spec.embed_dim
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=spec.norm_eps), nn.LayerNorm(d, eps=spec.norm_eps)
        self.attn = Attention(spec)
        self.moe = index in spec.moe_layers
        self.mlp = MoeMlp(spec) if self.moe else Mlp(d, spec.mlp_hidden)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + (self.mlp(self.norm2(x), task) if self.moe else self.mlp(self.norm2(x)))


class VitMoe(nn.Module):
    """The whole model; ``forward(images, task)`` gives one task's logits."""

    def __init__(self, config: Mapping[str, Any] | VitMoeSpec) -> None:
        super().__init__()
        spec = config if isinstance(config, VitMoeSpec) else VitMoeSpec.from_config(config, source="VitMoe config")
        self.spec, self.config = spec, _Config(spec)
        d = spec.embed_dim
        self.patch_embed = PatchEmbed(spec)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, spec.num_tokens, d) * 0.02)
        self.blocks = nn.ModuleList(Block(spec, i) for i in range(spec.depth))
        self.norm = nn.LayerNorm(d, eps=spec.norm_eps)
        self.heads = nn.ModuleDict({name: nn.Linear(d, classes) for name, classes in spec.tasks})
        self.register_buffer("mean", torch.tensor(spec.mean), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std), persistent=False)

    def forward(self, images: torch.Tensor, task: str | None = None) -> torch.Tensor:
        """images [B, H, W, C], pixel values in [0, 255] (uint8, or float for training) -> logits [B, classes].

        ``task`` may be left out when the model has one task.
        """
        if task is None and len(self.spec.tasks) == 1:
            task = self.spec.task_names[0]
        index = self.spec.task_names.index(task)
        x = (images.float() / 255 - self.mean) / self.std
        x = self.patch_embed(x.permute(0, 3, 1, 2))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x, index)
        return self.heads[task](self.norm(x)[:, 0])

    def routes(self) -> dict[int, torch.Tensor]:
        """The expert indices [B, T, k] of each MoE block in the last forward, by block index."""
        return {i: b.mlp.last_route for i, b in enumerate(self.blocks) if b.moe and b.mlp.last_route is not None}

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json and model.safetensors (float32) into ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.spec.to_config(), indent=2) + "\n")
        save_file({k: v.detach().float().contiguous() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))
