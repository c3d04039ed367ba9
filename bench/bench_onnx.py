"""Decode latency of the ONNX artifacts: ONNX Runtime int8 (Q/DQ) and fp32 against HF torch fp32.

Run: python bench/bench_onnx.py [--tokens 128]

Same model, batch 1, one process; prints milliseconds per token and ratios to HF torch fp32. Models:
the bundled mamba-tiny, and a random-init model with mamba-130m's widths (2 layers), where weights
dominate and int8 kernels have something to win.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import edgec
from edgec.data import model_tokens, windows
from edgec.passes.base import run_passes
from edgec.passes.fold_norm import fold_norm_gains
from edgec.passes.hadamard import rotate_gated_products
from edgec.targets.onnx.export import export_step, export_step_float
from edgec.targets.onnx.verify import ort_session
from edgec.zoo import BUNDLED


def _ort_ms(model, tokens: int) -> float:
    session = ort_session(model, optimize=True)
    names = [o.name for o in session.get_outputs()]
    state = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs() if i.name != "tokens"}
    token = np.array([84], np.int64)
    for warm in (True, False):
        start = time.perf_counter()
        for _ in range(8 if warm else tokens):
            out = dict(zip(names, session.run(None, {"tokens": token, **state}), strict=True))
            state = {k: out[k + "_out"] for k in state}
            token = out["logits"].argmax(-1).astype(np.int64)
    return 1e3 * (time.perf_counter() - start) / tokens


def _torch_ms(folder: Path, tokens: int) -> float:
    import torch
    from transformers import MambaForCausalLM

    torch.set_num_threads(2)
    hf = MambaForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([[84]])
    with torch.no_grad():
        hf.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        start = time.perf_counter()
        hf.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return 1e3 * (time.perf_counter() - start) / tokens


def bench(name: str, folder: Path, calib: list[np.ndarray], tokens: int) -> None:
    model = edgec.load_checkpoint(folder)
    qm = edgec.quantize(model, calib)
    rewritten, _ = run_passes(model, [("fold_norm", fold_norm_gains), ("hadamard", rotate_gated_products)])
    int8_qdq, _ = export_step(qm)  # the --target orin graph (TensorRT Q/DQ pattern)
    int8_cpu, _ = export_step(qm, integer_matmul=True)  # the --target cpu graph (MatMulInteger)
    fp32 = export_step_float(qm, rewritten.weights)
    rows = {"HF torch fp32": _torch_ms(folder, tokens), "ONNX Runtime fp32": _ort_ms(fp32, tokens),
            "ORT int8 (cpu graph)": _ort_ms(int8_cpu, tokens), "ORT int8 (orin graph)": _ort_ms(int8_qdq, tokens)}
    base = rows["HF torch fp32"]
    print(f"\n{name}: decode, batch 1, {tokens} tokens")
    for label, ms in rows.items():
        print(f"  {label:20s} {ms:8.3f} ms/token   {base / ms:6.2f}x the speed of HF torch fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    entry = BUNDLED["mamba-tiny"]
    tiny = edgec.load_checkpoint(entry.folder)
    bench("mamba-tiny", entry.folder, windows(model_tokens(tiny, entry.calib), 256, 8, 8192), args.tokens)
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    cfg = MambaConfig(vocab_size=50280, hidden_size=768, intermediate_size=1536, state_size=16, num_hidden_layers=2,
                      conv_kernel=4, time_step_rank=48, initializer_range=0.02)
    with tempfile.TemporaryDirectory() as tmp:
        MambaForCausalLM(cfg).save_pretrained(tmp)
        calib = [np.random.default_rng(0).integers(0, cfg.vocab_size, (4, 128))]
        bench("mamba-130m widths, 2 layers, vocab 50280 (random init)", Path(tmp), calib, args.tokens)


if __name__ == "__main__":
    main()
