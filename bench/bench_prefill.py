"""Prompt processing (prefill) speed: prefill.onnx at several chunk lengths against HF torch, same process.

Run: python bench/bench_prefill.py [--prompt 512] [--chunks 16 32 64 128] [--models mamba-130m mamba-tiny xlstm-tiny
mamba2-tiny]

Tokens/s over one ``--prompt``-token prompt, batch 1, one thread everywhere: HF torch fp32 (one forward over the
whole prompt, the family's transformers class), and ONNX Runtime running prefill.onnx chunk by chunk (the state
carried between calls) for each chunk length, in its int8 cpu form (u8 MatMulInteger) and its fp32 twin. Each
timed three times, interleaved, the best round counting. The chunk length edgec uses by default
(targets/onnx/prefill.py, DEFAULT_CHUNK) is chosen from these figures; for a model with a Mamba-2 SSD both of its
prefill forms are timed (closed chunk form and unrolled, SSD_PREFILL_FORM there is chosen from them).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from baselines import ROUNDS, best_of

import edgec
from edgec.data import model_tokens, windows
from edgec.families import FAMILIES
from edgec.ir import Op
from edgec.targets.onnx.export import dequantized_weights
from edgec.targets.onnx.prefill import SSD_FORMS, SSD_PREFILL_FORM, export_prefill, export_prefill_float
from edgec.targets.onnx.verify import decode, ort_session
from edgec.zoo import BUNDLED


def torch_prefill(folder: Path, hf_class: str) -> Callable[[np.ndarray], None]:
    import torch
    import transformers

    torch.set_num_threads(1)
    hf = getattr(transformers, hf_class).from_pretrained(folder).eval()

    def run(tokens: np.ndarray) -> None:
        with torch.no_grad():
            hf(torch.from_numpy(tokens), use_cache=True)

    return run


def ort_prefill(model) -> Callable[[np.ndarray], None]:
    session = ort_session(model, optimize=True)
    return lambda tokens: decode(session, tokens)


def bench(name: str, folder: Path, calib: list[np.ndarray], prompt: int, chunks: list[int]) -> None:
    model = edgec.load_checkpoint(folder)
    qm = edgec.quantize(model, calib)
    weights = dequantized_weights(qm)  # the fp32 twin: the same rewritten model's weights, no Q/DQ
    runners = {"HF torch fp32": torch_prefill(folder, FAMILIES[model.spec.family].hf_class)}
    ssd = any(n.op is Op.SSD_SCAN for n in qm.graphs["prefill"].nodes)
    for chunk in chunks:
        for form in SSD_FORMS if ssd else (SSD_PREFILL_FORM,):
            tag = f" ssd {form}" if ssd else ""
            runners[f"prefill.onnx int8, chunk {chunk}{tag}"] = ort_prefill(
                export_prefill(qm, chunk, integer_matmul=True, ssd_form=form)[0])
            runners[f"prefill.onnx fp32, chunk {chunk}{tag}"] = ort_prefill(
                export_prefill_float(qm, weights, chunk, ssd_form=form))
    tokens = np.random.default_rng(0).integers(0, model.spec.vocab_size, (1, prompt)).astype(np.int64)
    best = best_of(runners, [tokens])
    base = prompt / best["HF torch fp32"]
    print(f"\n{name}: prefill of {prompt} tokens, batch 1, one thread, best of {ROUNDS} (tokens/s, ratio to torch)")
    for label, seconds in best.items():
        print(f"  {label:42s} {prompt / seconds:10.0f} tokens/s  {prompt / seconds / base:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--models", nargs="+", default=["mamba-130m", "mamba-tiny", "xlstm-tiny"],
                        choices=["mamba-130m", "mamba-tiny", "xlstm-tiny", "mamba2-tiny"])
    args = parser.parse_args()
    for name in args.models:
        if name != "mamba-130m":
            entry = BUNDLED[name]
            model = edgec.load_checkpoint(entry.folder)
            bench(name, entry.folder, windows(model_tokens(model, entry.calib), 256, 8, 4096), args.prompt,
                  args.chunks)
            continue
        import torch
        from transformers import MambaConfig, MambaForCausalLM

        torch.manual_seed(0)
        cfg = MambaConfig(vocab_size=50280, hidden_size=768, intermediate_size=1536, state_size=16,
                          num_hidden_layers=2, conv_kernel=4, time_step_rank=48)
        with tempfile.TemporaryDirectory() as tmp:
            MambaForCausalLM(cfg).save_pretrained(tmp)
            calib = [np.random.default_rng(0).integers(0, cfg.vocab_size, (4, 128))]
            bench("mamba-130m widths, 2 layers (random init)", Path(tmp), calib, args.prompt, args.chunks)


if __name__ == "__main__":
    main()
