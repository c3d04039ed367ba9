"""Where the activation outliers are: every linear layer's input, before and after an online Hadamard rotation.

Run: python bench/bench_outliers.py [--model xlstm-tiny] [--tokens 2048]

Per op, not per family: the input of every LINEAR node of the prefill graph is measured on held-out
calibration text, as the int8 quantizer sees it (one scale per tensor):

- ``max/rms``: max |x| over the root mean square of x; per-tensor int8 spends its 127 steps on the max,
  so a large ratio leaves few steps for the typical value;
- ``int8 SQNR``: the signal-to-noise ratio (dB) of quantizing x with scale max|x| / 127;
- the same two after x @ H^T / sqrt(n) (n padded to a known Hadamard order), which a rotation pass
  would apply online and fold into the weights.

The rows are sorted by the gain in SQNR: the top rows are where a rotation pays.
"""

from __future__ import annotations

import argparse

import numpy as np

from edgec.data import model_tokens, windows
from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.ir import Op
from edgec.numerics.hadamard import hadamard_transform_float, plan_hadamard
from edgec.runtime.float_ref import FloatInterpreter
from edgec.zoo import BUNDLED


def int8_sqnr(x: np.ndarray) -> float:
    """SQNR (dB) of per-tensor symmetric int8 quantization of ``x``."""
    x = x.astype(np.float64)
    scale = np.abs(x).max() / 127 or 1.0
    noise = x - np.clip(np.rint(x / scale), -128, 127) * scale
    return float(10 * np.log10(np.sum(x * x) / max(np.sum(noise * noise), 1e-300)))


def outlier_ratio(x: np.ndarray) -> float:
    return float(np.abs(x).max() / np.sqrt(np.mean(np.square(x.astype(np.float64)))))


def measure(model_name: str, tokens: int) -> list[dict]:
    """One row per distinct linear input of the prefill graph."""
    model = load_checkpoint(BUNDLED[model_name].folder)
    batch = windows(model_tokens(model, BUNDLED[model_name].calib), 256, 8, tokens)[0]
    graph = model.graphs["prefill"]
    env = FloatInterpreter(model.weights).run(graph, {"tokens": batch}, keep_all=True)
    rows, seen = [], set()
    for node in graph.nodes:
        value = node.inputs[0]
        if node.op is not Op.LINEAR or value in seen:
            continue
        seen.add(value)
        x = env[value].reshape(-1, env[value].shape[-1])
        rotated = hadamard_transform_float(x.astype(np.float64), plan_hadamard(x.shape[-1]))
        users = [n.name.split(".")[-1] for n in graph.nodes if n.op is Op.LINEAR and n.inputs[0] == value]
        rows.append({"value": value, "feeds": "/".join(users), "width": x.shape[-1],
                     "ratio": outlier_ratio(x), "sqnr": int8_sqnr(x),
                     "ratio_h": outlier_ratio(rotated), "sqnr_h": int8_sqnr(rotated)})
    return sorted(rows, key=lambda r: r["sqnr_h"] - r["sqnr"], reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="xlstm-tiny", choices=sorted(BUNDLED))
    ap.add_argument("--tokens", type=int, default=2048)
    args = ap.parse_args()
    rows = measure(args.model, args.tokens)
    print(f"{args.model}: linear inputs on {args.tokens} calibration tokens (per-tensor int8)")
    print(f"{'value':14s} {'feeds':34s} {'width':>5s} {'max/rms':>8s} {'SQNR':>6s} {'rotated max/rms':>16s} "
          f"{'SQNR':>6s} {'gain dB':>8s}")
    for r in rows:
        print(f"{r['value']:14s} {r['feeds'][:34]:34s} {r['width']:5d} {r['ratio']:8.1f} {r['sqnr']:6.1f} "
              f"{r['ratio_h']:16.1f} {r['sqnr_h']:6.1f} {r['sqnr_h'] - r['sqnr']:8.1f}")


if __name__ == "__main__":
    main()
