"""Images per second of the ViT-MoE ONNX graphs under ONNX Runtime against fp32, in the same process.

Run: python bench/bench_vit_onnx.py [--model vitmoe-tiny] [--m3vit-depth N] [--images 128] [--batch 32]

One task's graph, batch ``--batch``, one thread everywhere, ONNX Runtime with its optimizations (minus the
fusions edgec disables, targets/onnx/verify.py): the torch reference (fp32), the fp32 twin of the ONNX graph
(same ops, float weights, no Q/DQ), the ``--target cpu`` int8 graph (MatMulInteger linears) and the
``--target orin`` Q/DQ graph (what TensorRT takes; ONNX Runtime runs it by dequantizing). Each timed three
times, interleaved, the best round counting. ``--m3vit-depth N`` measures a random-init model of M3ViT-tiny's
widths (128x256 images, D 192, 16 experts top-2, odd blocks MoE) with N blocks instead of the bundled model.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from baselines import ROUNDS, best_of
from bench_vit_speed import reference_module, torch_runner

import edgec
from edgec.frontends.hf_checkpoint import from_torch
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import image_batches, load_images
from edgec.targets.onnx.export import dequantized_weights, export_image_graph, export_image_graph_float
from edgec.targets.onnx.verify import ort_session
from edgec.zoo import BUNDLED

M3VIT_TINY = {"model_type": "vit_moe", "image_size": [128, 256], "in_chans": 3, "patch_size": 16, "embed_dim": 192,
              "num_heads": 3, "mlp_ratio": 4.0, "num_experts": 16, "top_k": 2, "moe_hidden": 384, "multi_gate": True,
              "tasks": {"scene": 27, "objects": 40}, "norm_eps": 1e-6, "qkv_bias": True}


def m3vit(depth: int, count: int):
    """(torch reference, edgec model, calibration batches, images) of a random-init M3ViT-tiny with ``depth`` blocks."""
    import torch

    from edgec.zoo.vit_moe_ref import VitMoe

    torch.manual_seed(0)
    ref = VitMoe(M3VIT_TINY | {"depth": depth, "moe_layers": list(range(1, depth, 2))}).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 128, 256, 3), dtype=np.uint8)
    return ref, from_torch(ref), [images[:8]], images


def ort_runner(model) -> Callable[[np.ndarray], object]:
    session = ort_session(model, optimize=True)
    return lambda images: session.run(["logits"], {"images": images})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vitmoe-tiny", choices=[n for n, e in BUNDLED.items() if e.data == ".npz"])
    parser.add_argument("--m3vit-depth", type=int, help="a random-init M3ViT-tiny of this many blocks instead")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if args.m3vit_depth:
        ref, model, calib, images = m3vit(args.m3vit_depth, args.images)
        label = f"M3ViT-tiny widths, {args.m3vit_depth} blocks (random init)"
    else:
        entry = BUNDLED[args.model]
        model = edgec.load_checkpoint(entry.folder)
        ref, label = reference_module(entry.folder), args.model
        calib = [b.images for b in image_batches(load_images(entry.calib, model.spec, False), 32)]
        images = load_images(entry.eval, model.spec).images[:args.images]
    qm = edgec.quantize(model, calib)
    task = model.spec.task_names[0]
    key = graph_name(task)
    runners = {"torch reference fp32": torch_runner(ref, task),
               "ONNX Runtime fp32": ort_runner(export_image_graph_float(qm, key, dequantized_weights(qm))),
               "ONNX Runtime int8 (cpu)": ort_runner(export_image_graph(qm, key, integer_matmul=True).model),
               "ONNX Runtime Q/DQ (orin)": ort_runner(export_image_graph(qm, key).model)}
    batches = [images[i:i + args.batch] for i in range(0, len(images), args.batch)]
    best = best_of(runners, batches)
    base = len(images) / best["ONNX Runtime fp32"]
    print(f"{label}, task {task}: {len(images)} images, batch {args.batch}, one thread, best of {ROUNDS} "
          "(images/s, ratio to ONNX Runtime fp32)")
    for name, seconds in best.items():
        print(f"  {name:26s} {len(images) / seconds:9.1f}  {len(images) / seconds / base:6.2f}x")


if __name__ == "__main__":
    main()
