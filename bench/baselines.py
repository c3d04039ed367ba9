"""The baseline every speed benchmark divides by (Hugging Face torch fp32 decoding, in the same process), and
the timing rule they share (best_of)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def torch_decoder(folder: Path, hf_class: str, threads: int = 1) -> Callable[[int], float]:
    """A function that decodes ``tokens`` greedily with the family's transformers class (generate() with its
    cache) and returns milliseconds per token. One thread by default, like ONNX Runtime's intra-op pool:
    more threads on a busy machine make torch's timings erratic."""
    import torch
    import transformers

    torch.set_num_threads(threads)
    hf = getattr(transformers, hf_class).from_pretrained(folder).eval()

    def run(tokens: int) -> float:
        ids = torch.tensor([[84]])
        with torch.no_grad():
            start = time.perf_counter()
            hf.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        return 1e3 * (time.perf_counter() - start) / tokens

    return run


ROUNDS = 3  # each runner is timed this often, interleaved; the best round counts (the machine is shared)


def best_of(runners: dict[str, Callable[[object], object]], inputs: list, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds each runner takes over all ``inputs``, its best of ``rounds`` rounds, the runners interleaved."""
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for label, run in runners.items():
            start = time.perf_counter()
            for x in inputs:
                run(x)
            best[label] = min(best[label], time.perf_counter() - start)
    return best
