"""Random-init ViT-MoE reference models (edgec.zoo.vit_moe_ref) and the configs the ViT-MoE tests share."""

from __future__ import annotations

import numpy as np
import torch

from edgec.frontends.model import Model
from edgec.frontends.vit_moe_graph import graph_name
from edgec.runtime.float_ref import FloatInterpreter
from edgec.zoo.vit_moe_ref import VitMoe

__all__ = ["M3VIT_TINY", "SMALL", "make_vit_moe", "random_images", "run_task", "torch_logits"]

#: 32x48 images, patch 8 (24 patches), 4 blocks of which 1 and 3 are MoE, two tasks, non-default normalization.
SMALL = {"model_type": "vit_moe", "image_size": [32, 48], "in_chans": 3, "patch_size": 8, "embed_dim": 32, "depth": 4,
         "num_heads": 4, "mlp_ratio": 2.0, "moe_layers": [1, 3], "num_experts": 4, "top_k": 2, "moe_hidden": 24,
         "multi_gate": True, "tasks": {"digit": 10, "parity": 2}, "norm_eps": 1e-6, "qkv_bias": True,
         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

#: M3ViT-tiny's widths (Edge-MoE's model): 128x256 images, patch 16, D 192, 12 blocks, 3 heads, odd blocks MoE
#: with 16 experts, top-2, expert hidden 384, dense MLP 768.
M3VIT_TINY = {"model_type": "vit_moe", "image_size": [128, 256], "in_chans": 3, "patch_size": 16, "embed_dim": 192,
              "depth": 12, "num_heads": 3, "mlp_ratio": 4.0, "moe_layers": [1, 3, 5, 7, 9, 11], "num_experts": 16,
              "top_k": 2, "moe_hidden": 384, "multi_gate": True, "tasks": {"scene": 27, "objects": 40},
              "norm_eps": 1e-6, "qkv_bias": True}


def make_vit_moe(seed: int = 0, **changes) -> VitMoe:
    """A random-init reference model of SMALL (with ``changes``); norms and biases are moved off their init
    values so that every affine term matters."""
    torch.manual_seed(seed)
    model = VitMoe(SMALL | changes).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def random_images(model: VitMoe, batch: int, seed: int) -> np.ndarray:
    """uint8 [batch, H, W, C] noise, for the model's image size."""
    (h, w), c = model.spec.image_size, model.spec.in_chans
    return np.random.default_rng(seed).integers(0, 256, (batch, h, w, c), dtype=np.uint8)


def torch_logits(model: VitMoe, images: np.ndarray, task: str) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images), task).numpy()


def run_task(model: Model, images: np.ndarray, task: str, **run) -> dict[str, np.ndarray]:
    """The float interpreter's outputs of ``task``'s graph ({"logits": ...}; every value with keep_all=True)."""
    return FloatInterpreter(model.weights).run(model.graphs[graph_name(task)], {"images": images}, **run)
