"""Quantization benchmark: perplexity with each pass on and off, and int-simulator decode speed.

Run: python bench/bench_quant.py [--model mamba-tiny|xlstm-tiny] [--tokens 16384] [--decode 64]

Prints, in one run: a perplexity table (float / int / qdq) for the full recipe and with each
pass switched off, and decode throughput of the int simulator's step graph against Hugging Face
torch fp32 decode of the same model, as a ratio measured in the same process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from baselines import torch_decoder

from edgec.data import model_tokens, windows
from edgec.evaluate import perplexities
from edgec.families import FAMILIES
from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.passes.pipeline import quantize
from edgec.passes.quantize import QuantOptions
from edgec.runtime.float_ref import FloatInterpreter
from edgec.runtime.sim_int import IntSimulator
from edgec.zoo import BUNDLED

CONFIGS = {
    "full recipe": QuantOptions(),
    "no hadamard": QuantOptions(hadamard=False),
    "no percentile": QuantOptions(percentile=False),
    "no per-channel": QuantOptions(per_channel=False),
    "all off": QuantOptions(hadamard=False, percentile=False, per_channel=False),
}


def perplexity_table(folder, entry, max_tokens: int) -> None:
    model = load_checkpoint(folder)
    calib = windows(model_tokens(model, entry.calib), 256, 8, 8192)
    batches = windows(model_tokens(model, entry.eval), 512, 8, max_tokens)
    tokens = sum(b.shape[0] * (b.shape[1] - 1) for b in batches)
    print(f"perplexity on {tokens} held-out tokens of {entry.eval.name}")
    print(f"{'configuration':16s} {'float':>9s} {'int':>9s} {'qdq':>9s} {'int/float':>10s} {'qdq/float':>10s}")
    ref = perplexities(model, None, batches, ("float",))["float"]
    for name, options in CONFIGS.items():
        ppl = perplexities(None, quantize(model, calib, options), batches, ("int", "qdq"))
        print(f"{name:16s} {ref:9.4f} {ppl['int']:9.4f} {ppl['qdq']:9.4f} "
              f"{ppl['int'] / ref:10.4f} {ppl['qdq'] / ref:10.4f}")


def _sim_decode(interp, graph, n: int, dtype) -> float:
    state = {name: np.zeros((1, *graph.values[name].shape[1:]), dtype) for name in graph.inputs if name != "tokens"}
    token = np.array([84])
    start = time.perf_counter()
    for _ in range(n):
        res = interp.run(graph, {"tokens": token, **state})
        state = {k: res[k + "_out"] for k in state}
        token = res["logits"].argmax(-1)
    return n / (time.perf_counter() - start)


def decode_speed(folder, entry, n: int) -> None:
    model = load_checkpoint(folder)
    qm = quantize(model, windows(model_tokens(model, entry.calib), 256, 8, 8192))
    torch_ms = torch_decoder(folder, FAMILIES[model.spec.family].hf_class)
    torch_ms(4)  # warm-up
    hf = 1e3 / torch_ms(n)
    sim = _sim_decode(IntSimulator(qm), qm.graphs["step"], n, np.int64)
    flt = _sim_decode(FloatInterpreter(model.weights), model.graphs["step"], n, np.float32)
    print(f"\ndecode, batch 1, {n} tokens (tokens/s, ratio to HF torch fp32 on one thread in this process)")
    print(f"{'HF torch fp32':24s} {hf:9.1f}  1.00x")
    print(f"{'edgec float interpreter':24s} {flt:9.1f}  {flt / hf:.2f}x")
    print(f"{'edgec int simulator':24s} {sim:9.1f}  {sim / hf:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mamba-tiny", choices=sorted(BUNDLED))
    parser.add_argument("--tokens", type=int, default=32768, help="held-out tokens for perplexity")
    parser.add_argument("--decode", type=int, default=64, help="tokens to decode for the speed ratio")
    args = parser.parse_args()
    entry = BUNDLED[args.model]
    perplexity_table(entry.folder, entry, args.tokens)
    decode_speed(entry.folder, entry, args.decode)


if __name__ == "__main__":
    main()
