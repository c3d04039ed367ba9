"""Which values need more than int8: perplexity with one group of values stored at 8, 16 or 32 bits.

Run: python bench/bench_formats.py [--model xlstm-tiny] [--tokens 8192]

Per op, not per family: the values of the prefill graph are grouped by the op that produces or reads
them, and each group in turn is fake-quantized in the float model (symmetric, per tensor, scale from
the calibrated maximum: max / 127 for 8 bits, with one bit of headroom for wider formats), everything
else left in float. The table is the evidence behind the int profile's wide formats
(passes/quantize.py): a group whose 8-bit row costs perplexity is stored wider.
"""

from __future__ import annotations

import argparse

import numpy as np

from edgec.data import model_tokens, windows
from edgec.evaluate import nll_sum
from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.frontends.model import Model
from edgec.ir import Node, Op
from edgec.passes.calibrate import CalibrationStats, calibrate
from edgec.runtime.float_ref import FloatInterpreter
from edgec.zoo import BUNDLED

GROUPS = {  # label -> which values of a graph belong to it
    "soft-cap inputs (gate pre-activations, raw logits)": lambda g, n: any(u.op is Op.SOFTCAP
                                                                          for u in g.users(n.outputs[0])),
    "recurrent cell outputs (scan y, mLSTM h)": lambda g, n: n.op in (Op.SELECTIVE_SCAN, Op.MLSTM_SEQUENCE),
    "per-head norm outputs": lambda g, n: n.op is Op.HEAD_LAYERNORM,
    "gating LUT outputs (SiLU, sigmoid read by a product)": lambda g, n: n.op in (Op.SILU, Op.SIGMOID)
    and any(u.op is Op.MUL for u in g.users(n.outputs[0])),
}


class FakeQuant(FloatInterpreter):
    """The float model with the ``chosen`` values rounded to ``bits``-bit codes."""

    def __init__(self, model: Model, stats: CalibrationStats, chosen: set[str], bits: int) -> None:
        super().__init__(model.weights)
        self.scales = {v: float(stats.absmax[v].max()) / (127 if bits == 8 else 2 ** (bits - 2)) for v in chosen}
        self.bits = bits

    def emit(self, node: Node, name: str, value: np.ndarray) -> np.ndarray:
        scale = self.scales.get(name)
        if not scale:
            return value
        top = 2 ** (self.bits - 1)
        return (np.clip(np.rint(value / scale), -top, top - 1) * scale).astype(value.dtype)


def perplexity(interp: FloatInterpreter, model: Model, batches: list[np.ndarray]) -> float:
    total = sum(nll_sum(interp.run(model.graphs["prefill"], {"tokens": t})["logits"], t) for t in batches)
    return float(np.exp(total / sum(t.shape[0] * (t.shape[1] - 1) for t in batches)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="xlstm-tiny", choices=sorted(BUNDLED))
    parser.add_argument("--tokens", type=int, default=8192, help="held-out tokens for perplexity")
    args = parser.parse_args()
    entry = BUNDLED[args.model]
    model = load_checkpoint(entry.folder)
    stats = calibrate(model, windows(model_tokens(model, entry.calib), 256, 8, 8192))
    batches = windows(model_tokens(model, entry.eval), 512, 8, args.tokens)
    graph = model.graphs["prefill"]
    base = perplexity(FloatInterpreter(model.weights), model, batches)
    print(f"{args.model}: float perplexity {base:.4f}; ratio with one group fake-quantized")
    print(f"{'values':56s} {'count':>5s} {'8-bit':>8s} {'16-bit':>8s} {'32-bit':>8s}")
    for label, member in GROUPS.items():
        chosen = {n.outputs[0] for n in graph.nodes if member(graph, n)}
        if not chosen:
            continue
        ratios = [perplexity(FakeQuant(model, stats, chosen, bits), model, batches) / base for bits in (8, 16, 32)]
        print(f"{label:56s} {len(chosen):5d} " + " ".join(f"{r:8.5f}" for r in ratios))


if __name__ == "__main__":
    main()
