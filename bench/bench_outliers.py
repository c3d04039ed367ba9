"""Where the activation outliers are: every linear layer's input, before and after an online Hadamard rotation.

Run: python bench/bench_outliers.py [--model xlstm-tiny | vitmoe-tiny | ...] [--checkpoint DIR] [--tokens 2048]

Per op, not per family: the input of every int8 linear node (LINEAR, and for vision models PATCH_EMBED
excluded as it reads pixels, ROUTE_LOGITS and the experts' fc1 in MOE) of every entry graph (the prefill
graph, or each task graph) is measured on the model's calibration data (text windows, or the first
batch of images), as the int8 quantizer sees it (after the norm gains are folded; one scale per tensor):

- ``max/rms``: max |x| over the root mean square of x; per-tensor int8 spends its 127 steps on the max,
  so a large ratio leaves few steps for the typical value;
- ``int8 SQNR``: the signal-to-noise ratio (dB) of quantizing x with scale max|x| / 127;
- the same two after x @ H^T / sqrt(n) (n padded to a known Hadamard order), which a rotation pass
  would apply online and fold into the weights.

The rows are sorted by the gain in SQNR: the top rows are where a rotation pays.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.report.outliers import linear_inputs
from edgec.workloads import CalibOptions, workload_of
from edgec.zoo import BUNDLED


def measure(model_name: str, tokens: int, checkpoint: Path | None = None) -> list[dict]:
    """One row per distinct linear input of the entry graphs (after the folds), the Hadamard's gain first."""
    model = load_checkpoint(checkpoint or BUNDLED[model_name].folder)
    options = CalibOptions(256, tokens) if model.spec.family != "vit_moe" else CalibOptions()
    batch = workload_of(model).calibration(model, BUNDLED[model_name].calib, options)[0]
    rows = [{"value": o.value, "feeds": o.feeds, "width": o.width, "ratio": o.ratio, "sqnr": o.sqnr,
             "ratio_h": o.ratio_rotated, "sqnr_h": o.sqnr_rotated} for o in linear_inputs(model, batch)]
    return sorted(rows, key=lambda r: r["sqnr_h"] - r["sqnr"], reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="xlstm-tiny", choices=sorted(BUNDLED))
    ap.add_argument("--checkpoint", type=Path, help="another checkpoint of the model's family (its calibration data)")
    ap.add_argument("--tokens", type=int, default=2048, help="language models: calibration tokens")
    args = ap.parse_args()
    rows = measure(args.model, args.tokens, args.checkpoint)
    print(f"{args.checkpoint or args.model}: linear inputs on its calibration data (per-tensor int8)")
    print(f"{'value':14s} {'feeds':34s} {'width':>5s} {'max/rms':>8s} {'SQNR':>6s} {'rotated max/rms':>16s} "
          f"{'SQNR':>6s} {'gain dB':>8s}")
    for r in rows:
        print(f"{r['value']:14s} {r['feeds'][:34]:34s} {r['width']:5d} {r['ratio']:8.1f} {r['sqnr']:6.1f} "
              f"{r['ratio_h']:16.1f} {r['sqnr_h']:6.1f} {r['sqnr_h'] - r['sqnr']:8.1f}")


if __name__ == "__main__":
    main()
