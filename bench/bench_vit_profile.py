"""Every integer softmax / GELU choice inside the full int profile: top-1, routing and per-layer SQNR.

Run: python bench/bench_vit_profile.py [--model vitmoe-tiny | --checkpoint DIR] [--images 450] [--sqnr-images 32]

Unlike bench_vit_variants.py (one op kind integer, the rest float), each row here is a whole quantized
model (``QuantOptions.softmax``, ``.gelu``, ``.probs_bits``), everything integer from pixels to logits:
top-1 per task, the worst routing agreement over MoE layers and tasks, the clear-decision flips (float
margin > 0.05; "own": in images with no flip in an earlier MoE layer), and the SQNR (dB) of the residual
stream after every block and of the logits against the float model (first task, first images). LayerNorm
has one integer form (exact centring, a fixed-iteration integer square root), so it is not a row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgec.evaluate_images import image_metrics
from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import ImageData, image_batches, load_images
from edgec.numerics.gelu import GELU_VARIANTS
from edgec.numerics.softmax import SOFTMAX_VARIANTS
from edgec.passes.pipeline import quantize
from edgec.passes.quantize import QuantOptions
from edgec.runtime.compare import residual_sqnr
from edgec.zoo import BUNDLED

DEFAULT = QuantOptions()


def option_rows() -> list[QuantOptions]:
    """The default, each softmax and each GELU alone against it, and the default with uint8 probabilities."""
    rows = [DEFAULT]
    rows += [QuantOptions(softmax=v) for v in SOFTMAX_VARIANTS if v != DEFAULT.softmax]
    rows += [QuantOptions(gelu=v) for v in GELU_VARIANTS if v != DEFAULT.gelu]
    return [*rows, QuantOptions(probs_bits=8), QuantOptions(softmax="ibert", gelu="ibert", probs_bits=8)]


def measure(model, calib: list, data: ImageData, sqnr_images: int, options: QuantOptions) -> dict:
    qm = quantize(model, calib, options)
    metrics = image_metrics(model, qm, data, profiles=("int",))
    layers = [r for task in metrics["routing_agreement"]["int"].values() for r in task.values()]
    first = graph_name(model.spec.task_names[0])
    sqnr = residual_sqnr(model, qm, data.images[:sqnr_images], first)
    return {"top1": {t: row["int"] for t, row in metrics["tasks"].items()},
            "float": {t: row["float"] for t, row in metrics["tasks"].items()},
            "agreement": min((r["agreement"] for r in layers), default=1.0),
            "clear": max((r["flips_clear"] for r in layers), default=0),
            "own": max((r["flips_clear"] - r["flips_clear_cascaded"] for r in layers), default=0),
            "sqnr": {name: row["int"] for name, row in sqnr.items()}}


def label(o: QuantOptions) -> str:
    return f"{o.softmax} / {o.gelu} / {o.probs_bits}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vitmoe-tiny", choices=[n for n, e in BUNDLED.items() if e.data == ".npz"])
    parser.add_argument("--checkpoint", type=Path, help="another ViT-MoE folder (the bundled model's images)")
    parser.add_argument("--images", type=int, default=450)
    parser.add_argument("--sqnr-images", type=int, default=32)
    args = parser.parse_args()
    entry = BUNDLED[args.model]
    model = load_checkpoint(args.checkpoint or entry.folder)
    calib = [b.images for b in image_batches(load_images(entry.calib, model.spec, need_labels=False), 32)]
    full = load_images(entry.eval, model.spec)
    data = ImageData(full.images[:args.images], {t: v[:args.images] for t, v in full.labels.items()})
    results = [(o, measure(model, calib, data, args.sqnr_images, o)) for o in option_rows()]
    tasks = model.spec.task_names
    floats = ", ".join(f"{t} {100 * results[0][1]['float'][t]:.2f}%" for t in tasks)
    print(f"{args.checkpoint or args.model}: full int profile, {len(data.images)} images (float top-1: {floats})\n")
    print("| softmax / GELU / P bits | " + " | ".join(f"{t} top-1" for t in tasks) +
          " | worst routing agreement | clear flips (own) | logits dB |")
    print("|---" * (len(tasks) + 4) + "|")
    for o, r in results:
        print(f"| {label(o)} | " + " | ".join(f"{100 * r['top1'][t]:.2f}%" for t in tasks) +
              f" | {100 * r['agreement']:.2f}% | {r['clear']} ({r['own']}) | {r['sqnr']['logits']:.1f} |")
    names = list(results[0][1]["sqnr"])
    print(f"\nResidual-stream SQNR (dB), task {tasks[0]}, first {args.sqnr_images} images\n")
    print("| softmax / GELU / P bits | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|")
    for o, r in results:
        print(f"| {label(o)} | " + " | ".join(f"{r['sqnr'][n]:.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
