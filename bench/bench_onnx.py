"""Decode speed of the ONNX artifacts: ONNX Runtime int8 (Q/DQ) and fp32 against HF torch fp32.

Run: python bench/bench_onnx.py [--tokens 128] [--models mamba-tiny xlstm-tiny mamba-130m] [--torch-threads 1]
                                [--layers 2]

Same model, batch 1, one process; prints milliseconds per token, tokens/s and ratios to HF torch fp32
(the family's transformers class, generate() with its cache). Models: the bundled mamba-tiny and
xlstm-tiny, and a random-init model with mamba-130m's widths (2 layers, or --layers 24), where weights dominate and
int8 kernels have something to win. Then, from ONNX Runtime's own profiler, where the int8 cpu graph's
time goes: the ops (and the kernels' providers) that ran, by share of kernel time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from baselines import torch_decoder

import edgec
from edgec.data import model_tokens, windows
from edgec.families import FAMILIES
from edgec.passes.base import run_passes
from edgec.passes.fold_norm import fold_norm_gains
from edgec.passes.hadamard import rotate_gated_products
from edgec.targets.onnx.export import export_step, export_step_float
from edgec.targets.onnx.verify import ort_session
from edgec.zoo import BUNDLED

ROUNDS = 3  # each decoder is timed this often, interleaved; the best round counts (the machine is shared)


def _ort_decoder(model) -> Callable[[int], float]:
    """A function that decodes ``tokens`` greedily with ONNX Runtime and returns ms/token."""
    session = ort_session(model, optimize=True)
    names = [o.name for o in session.get_outputs()]

    def run(tokens: int) -> float:
        state = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs() if i.name != "tokens"}
        token = np.array([84], np.int64)
        start = time.perf_counter()
        for _ in range(tokens):
            out = dict(zip(names, session.run(None, {"tokens": token, **state}), strict=True))
            state = {k: out[k + "_out"] for k in state}
            token = out["logits"].argmax(-1).astype(np.int64)
        return 1e3 * (time.perf_counter() - start) / tokens

    return run


def kernel_profile(model, steps: int = 16) -> list[tuple[str, float, int]]:
    """(op type @ provider, share of kernel time, nodes) from ONNX Runtime's profiler over ``steps`` decode
    steps of a step graph, largest share first."""
    import json

    import onnxruntime as ort

    from edgec.targets.onnx.verify import BROKEN_ORT_FUSIONS

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=BROKEN_ORT_FUSIONS)
        state = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs() if i.name != "tokens"}
        for _ in range(steps):
            session.run(None, {"tokens": np.array([84], np.int64), **state})
        events = json.loads(Path(session.end_profiling()).read_text())
    total: dict[str, float] = {}
    nodes: dict[str, set[str]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            key = f"{e['args'].get('op_name', '?')} @ {e['args'].get('provider', '?')}"
            total[key] = total.get(key, 0.0) + float(e.get("dur", 0))
            nodes.setdefault(key, set()).add(e["name"])
    whole = sum(total.values()) or 1.0
    return sorted(((k, v / whole, len(nodes[k])) for k, v in total.items()), key=lambda r: -r[1])


def bench(name: str, folder: Path, calib: list[np.ndarray], tokens: int, torch_threads: int = 1) -> None:
    model = edgec.load_checkpoint(folder)
    qm = edgec.quantize(model, calib)
    rewritten, _ = run_passes(model, [("fold_norm", fold_norm_gains), ("hadamard", rotate_gated_products)])
    int8_qdq, _ = export_step(qm)  # the --target orin graph (TensorRT Q/DQ pattern)
    int8_cpu, _ = export_step(qm, integer_matmul=True)  # the --target cpu graph (MatMulInteger)
    fp32 = export_step_float(qm, rewritten.weights)
    decoders = {"HF torch fp32": torch_decoder(folder, FAMILIES[model.spec.family].hf_class, torch_threads),
                "ONNX Runtime fp32": _ort_decoder(fp32), "ORT int8 (cpu graph)": _ort_decoder(int8_cpu),
                "ORT int8 (orin graph)": _ort_decoder(int8_qdq)}
    for run in decoders.values():
        run(8)  # warm-up
    rounds = [{label: run(tokens) for label, run in decoders.items()} for _ in range(ROUNDS)]
    best = {label: min(r[label] for r in rounds) for label in decoders}
    base = best["HF torch fp32"]
    print(f"\n{name}: decode, batch 1, {tokens} tokens, best of {ROUNDS} interleaved rounds, torch on "
          f"{torch_threads} thread(s), ONNX Runtime on 1")
    for label, ms in best.items():
        print(f"  {label:21s} {ms:8.3f} ms/token {1e3 / ms:8.0f} tokens/s   {base / ms:6.2f}x HF torch fp32")
    print("  int8 cpu graph, ONNX Runtime profile (kernel time by op):")
    for op, share, count in kernel_profile(int8_cpu)[:6]:
        print(f"    {op:40s} {share:6.1%}  ({count} nodes)")


def _bundled(name: str, tokens: int, torch_threads: int) -> None:
    entry = BUNDLED[name]
    model = edgec.load_checkpoint(entry.folder)
    bench(name, entry.folder, windows(model_tokens(model, entry.calib), 256, 8, 8192), tokens, torch_threads)


def _mamba_130m_widths(tokens: int, torch_threads: int, layers: int) -> None:
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    cfg = MambaConfig(vocab_size=50280, hidden_size=768, intermediate_size=1536, state_size=16,
                      num_hidden_layers=layers, conv_kernel=4, time_step_rank=48, initializer_range=0.02)
    with tempfile.TemporaryDirectory() as tmp:
        MambaForCausalLM(cfg).save_pretrained(tmp)
        calib = [np.random.default_rng(0).integers(0, cfg.vocab_size, (4, 128))]
        bench(f"mamba-130m widths, {layers} layers, vocab 50280 (random init)", Path(tmp), calib, tokens,
              torch_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=["mamba-tiny", "xlstm-tiny", "mamba-130m"],
                        choices=["mamba-tiny", "xlstm-tiny", "mamba-130m"])
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="1 (default) matches ONNX Runtime's one intra-op thread; more threads on a busy machine "
                             "make torch's timings erratic")
    parser.add_argument("--layers", type=int, default=2, help="mamba-130m widths: layers (24: the full model)")
    args = parser.parse_args()
    for name in args.models:
        if name == "mamba-130m":
            _mamba_130m_widths(args.tokens, args.torch_threads, args.layers)
        else:
            _bundled(name, args.tokens, args.torch_threads)


if __name__ == "__main__":
    main()
