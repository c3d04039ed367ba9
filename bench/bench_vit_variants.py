"""Integer softmax / GELU / LayerNorm variants, each alone inside the float ViT-MoE: accuracy and SQNR.

Run: python bench/bench_vit_variants.py [--model vitmoe-tiny] [--images 450]

Per op, not per model: every attention SOFTMAX, every GELU (dense MLPs and each expert's) or every
LAYERNORM of the float model is replaced by one integer variant of edgec/numerics (its input quantized
to int8 at the calibrated per-tensor scale, its output dequantized), everything else left in float. The
table gives top-1 per task and the SQNR (dB) of the logits against the float model, so that each
variant's own cost is visible (the full int profile uses: softmax "lut", GELU "lut", LayerNorm integer).
"""

from __future__ import annotations

import argparse

import numpy as np

from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.frontends.model import Model
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import image_batches, load_images
from edgec.ir import Node
from edgec.numerics.gelu import build_gelu, gelu_int
from edgec.numerics.layernorm import build_layernorm, layernorm_int
from edgec.numerics.softmax import build_softmax, softmax_int
from edgec.passes.calibrate import CalibrationStats, calibrate
from edgec.runtime.compare import sqnr_db
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.vit_float import gelu, moe
from edgec.zoo import BUNDLED

SOFTMAX = ("lut", "exp2", "ibert", "shiftmax")
GELU = ("lut", "edgemoe", "ibert", "shiftgelu")


def _codes(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(x / scale), -128, 127).astype(np.int64)


class Variant(FloatInterpreter):
    """The float model with one op kind computed by an integer variant (None: float)."""

    def __init__(self, model: Model, stats: CalibrationStats, softmax: str | None = None,
                 gelu_variant: str | None = None, layernorm: bool = False) -> None:
        super().__init__(model.weights)
        self.stats, self.softmax, self.gelu_variant, self.layernorm = stats, softmax, gelu_variant, layernorm

    def _scale(self, key: str) -> float:
        amax = self.stats.absmax[key].max() if key in self.stats.absmax else self.stats.state_absmax[key]
        return float(max(amax, 1e-8) / 127)

    def _int_gelu(self, x: np.ndarray, s_in: float) -> np.ndarray:
        s_out = float(max(gelu(np.array([127 * s_in]))[0], 1e-8) / 127)
        return gelu_int(build_gelu(self.gelu_variant, s_in, s_out), _codes(x, s_in)) * np.float32(s_out)

    def op_softmax(self, node: Node, x: np.ndarray) -> np.ndarray:
        if self.softmax is None or node.name.endswith("route_softmax"):  # routers keep float: attention only
            return super().op_softmax(node, x)
        s = self._scale(node.inputs[0])
        return softmax_int(build_softmax(self.softmax, s, 8, 8), _codes(x, s)) / np.float32(255)

    def op_gelu(self, node: Node, x: np.ndarray) -> np.ndarray:
        return super().op_gelu(node, x) if self.gelu_variant is None else self._int_gelu(x, self._scale(node.inputs[0]))

    def op_moe(self, node: Node, x: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
        if self.gelu_variant is None:
            return super().op_moe(node, x, weights, indices)
        w2, b2 = self.w(node, "fc2_weight"), self.w(node, "fc2_bias")

        def expert(e: int, rows: np.ndarray) -> np.ndarray:
            out = self._int_gelu(self.expert_fc1(node, e, rows), self._scale(f"{node.name}/fc1/{e}")) @ w2[e].T
            return out if b2 is None else out + b2[e]

        return moe(x, weights, indices, expert, w2.shape[1])

    def op_layernorm(self, node: Node, x: np.ndarray) -> np.ndarray:
        if not self.layernorm:
            return super().op_layernorm(node, x)
        s_in, s_out = self._scale(node.inputs[0]), self._scale(node.outputs[0])
        k = build_layernorm(x.shape[-1], s_in, s_out, node.attrs["eps"], self.w(node, "weight"), self.w(node, "bias"))
        return layernorm_int(k, _codes(x, s_in)) * np.float32(s_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vitmoe-tiny", choices=[n for n, e in BUNDLED.items() if e.data == ".npz"])
    parser.add_argument("--images", type=int, default=450)
    args = parser.parse_args()
    entry = BUNDLED[args.model]
    model = load_checkpoint(entry.folder)
    stats = calibrate(model, [b.images for b in image_batches(load_images(entry.calib, model.spec, False), 32)])
    data = image_batches(load_images(entry.eval, model.spec), 64, args.images)
    tasks = model.spec.task_names
    reference = {t: np.concatenate([FloatInterpreter(model.weights).run(model.graphs[graph_name(t)],
                                                                        {"images": b.images})["logits"] for b in data])
                 for t in tasks}
    rows = [("float", {})] + [(f"softmax {v}", {"softmax": v}) for v in SOFTMAX] + \
        [(f"gelu {v}", {"gelu_variant": v}) for v in GELU] + [("layernorm integer", {"layernorm": True})]
    print(f"{args.model}: one op kind integer at a time, the rest float ({sum(len(b.images) for b in data)} images)")
    print(f"{'variant':20s} " + " ".join(f"{t + ' top-1':>13s} {t + ' dB':>10s}" for t in tasks))
    for label, kw in rows:
        interp = Variant(model, stats, **kw)
        cells = []
        for t in tasks:
            logits = np.concatenate([interp.run(model.graphs[graph_name(t)], {"images": b.images})["logits"]
                                     for b in data])
            labels = np.concatenate([b.labels[t] for b in data])
            cells.append(f"{100 * np.mean(logits.argmax(-1) == labels):12.2f}% {sqnr_db(reference[t], logits):10.1f}")
        print(f"{label:20s} " + " ".join(cells))


if __name__ == "__main__":
    main()
