"""How far each integer softmax, GELU and LayerNorm variant is from float, so a recipe can choose.

Run: python bench/bench_int_approx.py [--rows 2000] [--seed 0]

Each variant is fed integer codes and compared with the float function of the same codes (the
dequantized input), so the figures are the primitive's own error, not the input quantization's:

- softmax, attention (129 scores a row, M3ViT-tiny's tokens; int8 scores at the per-tensor scale
  max|x| / 127; uint8 output, scale 1/255): max |p - p_float| in output LSBs, mean KL(p || p_float)
  (nats; p the integer row renormalized), and argmax agreement (first maximum);
- the same for 10-, 12- and 16-bit scores (one distribution): the papers' range reductions
  floor(-ln2 / S) and floor(-1 / S) are coarse on an int8 grid, but finer grids need a lower n;
- softmax, router (16 experts, int8 logits; 16-bit output, scale 1/65535, and uint8 for contrast):
  the same, plus top-2 agreement (the chosen expert set, ties to the lower index) with the float
  probabilities;
- GELU at typical scales (in and out scale R/127 for inputs in [-R, R]; int8 inputs, and 16-bit ones
  for the variants that take them): max and mean |error| in output LSBs over every input code;
- LayerNorm (d = 192, int8 and 24-bit inputs, affine folded and per channel): max |error| in LSBs.
"""

from __future__ import annotations

import argparse

import numpy as np

from edgec.numerics.agreement import mean_kl
from edgec.numerics.gelu import GELU_VARIANTS, build_gelu, gelu_int
from edgec.numerics.layernorm import build_layernorm, layernorm_int
from edgec.numerics.softmax import SOFTMAX_VARIANTS, build_softmax, softmax_int
from edgec.numerics.topk import topk_int
from edgec.runtime.vit_float import gelu, layer_norm, softmax, topk


def codes(x: np.ndarray, bits: int = 8) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric ``bits``-bit codes of x and their scale."""
    top = (1 << (bits - 1)) - 1
    scale = float(np.abs(x).max()) / top
    return np.clip(np.rint(x / scale), -top - 1, top).astype(np.int64), scale


def score_sets(rng: np.random.Generator, rows: int, width: int) -> dict[str, np.ndarray]:
    """Realistic score distributions: Gaussian of two spreads, peaked rows, heavy tails."""
    peaked = rng.normal(0, 1, (rows, width))
    peaked[np.arange(rows), rng.integers(0, width, rows)] += 6
    return {"normal s=1": rng.normal(0, 1, (rows, width)), "normal s=2.5": rng.normal(0, 2.5, (rows, width)),
            "peaked (+6)": peaked, "student-t df=3": 1.5 * rng.standard_t(3, (rows, width))}


def softmax_rows(x: np.ndarray, out_bits: int, k: int | None, in_bits: int = 8) -> list[tuple]:
    """(variant, max LSB error, mean KL, argmax or top-k agreement) per variant on scores x."""
    q, scale = codes(x, in_bits)
    ref, top = softmax(q * scale), (1 << out_bits) - 1
    out = []
    for variant in SOFTMAX_VARIANTS:
        try:
            p = softmax_int(build_softmax(variant, scale, in_bits, out_bits), q)
        except ValueError:  # outside the variant's domain (build_softmax says why)
            out.append((variant, "refused", "", ""))
            continue
        if k is None:
            agree = np.mean(np.argmax(p, -1) == np.argmax(ref, -1))
        else:
            agree = np.mean(np.all(np.sort(topk_int(p, k)[1], -1) == np.sort(topk(ref, k)[1], -1), -1))
        out.append((variant, float(np.abs(p / top - ref).max() * top), mean_kl(p, ref), float(agree)))
    return out


def print_softmax(title: str, sets: dict[str, np.ndarray], out_bits: int, k: int | None,
                  in_bits: tuple[int, ...] = (8,)) -> None:
    agree = "argmax agreement" if k is None else f"top-{k} agreement"
    print(f"\n{title}\n\n| scores | variant | max error (LSB) | mean KL | {agree} |\n|---|---|---|---|---|")
    for (name, x), bits in ((item, b) for item in sets.items() for b in in_bits):
        if len(in_bits) > 1:
            name = f"{name}, int{bits}"
        for row in softmax_rows(x, out_bits, k, bits):
            cells = row[1:] if row[1] == "refused" else (f"{row[1]:.3f}", f"{row[2]:.2e}", f"{row[3]:.4f}")
            print(f"| {name} | {row[0]} | " + " | ".join(cells) + " |")


def print_gelu() -> None:
    print("\nGELU (error in output LSBs over every input code)\n\n| input | range R | variant | max | mean |"
          "\n|---|---|---|---|---|")
    for bits in (8, 16):
        codes = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
        for r in (4.0, 8.0, 16.0):
            s_in, s_out = r / ((1 << (bits - 1)) - 1), r / 127
            ref = np.clip(gelu(codes * s_in) / s_out, -128, 127)
            for variant in GELU_VARIANTS:
                if variant == "lut" and bits != 8:
                    continue
                err = np.abs(gelu_int(build_gelu(variant, s_in, s_out, in_bits=bits), codes) - ref)
                print(f"| int{bits} | {r:g} | {variant} | {err.max():.3f} | {err.mean():.3f} |")


def print_layernorm(rng: np.random.Generator, rows: int) -> None:
    print("\nLayerNorm (d = 192; error in output LSBs, int8 output at scale 8/127)\n\n"
          "| input | affine | max | mean |\n|---|---|---|---|")
    d, s_out = 192, 8 / 127
    x = rng.normal(0, 1, (rows, d)) * rng.uniform(0.01, 3, (rows, 1)) + rng.normal(0, 0.5, (rows, 1))
    x[:, 7] *= 10  # one outlier channel, as post-residual ViT activations have
    gamma, beta = rng.normal(1, 0.3, d), rng.normal(0, 0.2, d)
    for bits in (8, 24):
        q, s_in = codes(x, bits)
        xhat = layer_norm(q * s_in, 1e-6)
        for label, g, b in (("folded", None, None), ("per channel", gamma, beta)):
            ref = np.clip((xhat if g is None else xhat * g + b) / s_out, -128, 127)
            k = build_layernorm(d, s_in, s_out, 1e-6, g, b, in_bits=bits)
            err = np.abs(layernorm_int(k, q) - ref)
            print(f"| int{bits} | {label} | {err.max():.3f} | {err.mean():.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="score rows per distribution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    attention = score_sets(rng, args.rows, 129)
    print_softmax("Softmax, attention (129 scores, uint8 output)", attention, 8, None)
    print_softmax("Softmax, attention: wider scores (the papers' range reductions want a finer grid)",
                  {"normal s=2.5": attention["normal s=2.5"]}, 8, None, (8, 10, 12, 16))
    router = {"normal s=0.5": rng.normal(0, 0.5, (args.rows, 16))} | score_sets(rng, args.rows, 16)
    print_softmax("Softmax, router (16 logits, 16-bit output)", router, 16, 2)
    print_softmax("Softmax, router (16 logits, uint8 output, for contrast)", router, 8, 2)
    print_gelu()
    print_layernorm(rng, args.rows)


if __name__ == "__main__":
    main()
