"""Speed of edgec's ViT-MoE simulators against the torch reference, in the same process.

Run: python bench/bench_vit_speed.py [--model vitmoe-tiny] [--images 256] [--batch 64]

Images per second of one task's graph, batch ``--batch``: the torch reference (edgec.zoo.vit_moe_ref, fp32,
one thread), edgec's float interpreter, and the int and qdq simulators of the quantized model; each timed
three times, interleaved, the best round counting (the machine is shared).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from baselines import ROUNDS, best_of

import edgec
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import image_batches, load_images
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.sim_int import IntSimulator
from edgec.runtime.sim_qdq import QdqSimulator
from edgec.zoo import BUNDLED


def reference_module(folder):
    """The torch reference (edgec.zoo.vit_moe_ref) of a checkpoint folder."""
    from safetensors.torch import load_file

    from edgec.zoo.vit_moe_ref import VitMoe

    ref = VitMoe(edgec.load_checkpoint(folder).spec).eval()
    ref.load_state_dict(load_file(str(folder / "model.safetensors")))
    return ref


def torch_runner(ref, task: str) -> Callable[[np.ndarray], object]:
    """Run ``ref`` on uint8 images, one thread, no autograd."""
    import torch

    torch.set_num_threads(1)

    def run(images: np.ndarray) -> object:
        with torch.no_grad():
            return ref(torch.from_numpy(images), task)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vitmoe-tiny", choices=[n for n, e in BUNDLED.items() if e.data == ".npz"])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    entry = BUNDLED[args.model]
    model = edgec.load_checkpoint(entry.folder)
    calib = [b.images for b in image_batches(load_images(entry.calib, model.spec, False), 32)]
    qm = edgec.quantize(model, calib)
    task = model.spec.task_names[0]
    name = graph_name(task)
    batches = [b.images for b in image_batches(load_images(entry.eval, model.spec), args.batch, args.images)]
    interpreters = {"edgec float interpreter": (FloatInterpreter(model.weights), model.graphs[name]),
                    "edgec int simulator": (IntSimulator(qm), qm.graphs[name]),
                    "edgec qdq simulator": (QdqSimulator(qm), qm.graphs[name])}
    runners = {"torch reference fp32": torch_runner(reference_module(entry.folder), task)} | {
        label: (lambda x, i=interp, g=graph: i.run(g, {"images": x}))
        for label, (interp, graph) in interpreters.items()}
    best = best_of(runners, batches)
    count = sum(len(b) for b in batches)
    base = count / best["torch reference fp32"]
    print(f"{args.model}, task {task}: {count} images, batch {args.batch}, best of {ROUNDS} (images/s, ratio to torch)")
    for label, seconds in best.items():
        print(f"  {label:24s} {count / seconds:9.1f}  {count / seconds / base:6.2f}x")


if __name__ == "__main__":
    main()
