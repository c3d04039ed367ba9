"""Train the bundled byte-level ``mamba2-tiny`` model (HF ``Mamba2ForCausalLM``).

Deterministic CPU training on random windows of the same Vim-help prose as mamba-tiny
(``edgec/zoo/mamba_tiny/train.txt``; token id == byte value, vocabulary 256, no tokenizer files).
Writes ``config.json``, ``generation_config.json``, ``model.safetensors`` and ``train_stats.json`` into
``--out`` (default: this folder), and copies mamba-tiny's held-out ``calib.txt`` and ``eval.txt`` beside
them (``--no-copy-text``: not).

    python -m edgec.zoo.mamba2_tiny.train --steps 2000

The widths (``--hidden-size``, ``--layers``, ``--head-dim``, ``--state-size``, ``--groups``,
``--conv-kernel``, ``--chunk-size``, ``--tie``/``--no-tie``) default to the bundled model's;
tests/assets/mamba2_alt was trained with other widths (its README has the command).

transformers runs Mamba-2 through mamba_ssm / causal_conv1d when they are installed (CUDA kernels);
they are blocked here so that training, like edgec's reference, uses its torch path (the chunked SSD,
whose backward pass needs no replacement, unlike Mamba-1's reference scan).

The final evaluation scores non-overlapping windows of ``--eval-window`` bytes the way ``edgec eval``
does (L - 1 predictions per window of L), so that edgec's float perplexity can be checked against it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

from edgec.zoo.mamba2_torch_path import block_kernels, kernel_functions

block_kernels()  # before transformers' modeling_mamba2 is imported

import torch  # noqa: E402
from transformers import Mamba2Config, Mamba2ForCausalLM  # noqa: E402

from edgec.zoo.mamba_tiny.train import eval_loss, load_bytes, train_bytes  # noqa: E402  (same corpus and loop)

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "mamba_tiny"


def make_config(hidden_size: int = 128, layers: int = 4, head_dim: int = 32, state_size: int = 16,
                groups: int = 2, conv_kernel: int = 4, chunk_size: int = 64, tie: bool = True,
                expand: int = 2) -> Mamba2Config:
    """The training config; the defaults are the bundled model's (inner width 256 = 8 heads of 32)."""
    inner = expand * hidden_size
    if inner % head_dim:
        raise SystemExit(f"expand x hidden_size = {inner} is not a multiple of head_dim {head_dim}")
    return Mamba2Config(
        vocab_size=256, hidden_size=hidden_size, num_hidden_layers=layers, expand=expand,
        num_heads=inner // head_dim, head_dim=head_dim, state_size=state_size, n_groups=groups,
        conv_kernel=conv_kernel, chunk_size=chunk_size, use_bias=False, use_conv_bias=True,
        tie_word_embeddings=tie, layer_norm_epsilon=1e-5, residual_in_fp32=True,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, use_cache=True,
    )


def check_torch_path() -> None:
    """Refuse to train through a kernel package (the checkpoint must match transformers' torch path)."""
    kernels = kernel_functions()
    if kernels:
        raise SystemExit(f"transformers' {', '.join(kernels)} not on its torch path")


@torch.no_grad()
def eval_windows(model: torch.nn.Module, data: torch.Tensor, window: int, batch: int = 16) -> float:
    """Mean next-byte cross-entropy (nats) over non-overlapping windows of ``window`` bytes, each scoring its
    ``window - 1`` next-byte predictions (edgec.data.windows and edgec.evaluate.perplexities)."""
    was_training = model.training
    model.eval()
    n = len(data) // window
    rows = data[: n * window].view(n, window)
    tot, cnt = 0.0, 0
    for i in range(0, n, batch):
        x = rows[i : i + batch]
        logits = model(input_ids=x, use_cache=False).logits.double()
        tot += torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                 x[:, 1:].reshape(-1), reduction="sum").item()
        cnt += x[:, 1:].numel()
    model.train(was_training)
    return tot / cnt


def main() -> None:
    ap = argparse.ArgumentParser(description="train mamba2-tiny (byte-level)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-window", type=int, default=256, help="final evaluation: window of this many bytes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--state-size", type=int, default=16)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--conv-kernel", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--tie", action=argparse.BooleanOptionalAction, default=True, help="tie lm_head to the embeddings")
    ap.add_argument("--copy-text", action=argparse.BooleanOptionalAction, default=True,
                    help="copy mamba-tiny's calib.txt and eval.txt into --out")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    train, evald = load_bytes(DATA / "train.txt"), load_bytes(DATA / "eval.txt")
    cfg = make_config(a.hidden_size, a.layers, a.head_dim, a.state_size, a.groups, a.conv_kernel, a.chunk_size,
                      a.tie)
    model = Mamba2ForCausalLM(cfg).float()
    check_torch_path()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params:,}  train bytes: {len(train):,}  eval bytes: {len(evald):,}", flush=True)

    def evaluate(model: torch.nn.Module, step: int) -> None:
        el = eval_loss(model, evald[:8192], 128, 16)
        print(f"  eval @ {step}: {el:.4f} nats/byte  {el / math.log(2):.4f} bpb", flush=True)

    # no weight decay on norms, biases, dt_bias, A_log, D (all 1-d) and the embeddings
    train_s = train_bytes(model, train, a, lambda name, p: p.ndim < 2 or "embed" in name, 25, evaluate)
    model.eval()
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    for name in ("calib.txt", "eval.txt") if a.copy_text else ():
        if (a.out / name).resolve() != (DATA / name).resolve():
            shutil.copyfile(DATA / name, a.out / name)
    # the reloaded checkpoint, run by the stock code, gives the recorded figures
    final = eval_windows(Mamba2ForCausalLM.from_pretrained(a.out).float(), evald, a.eval_window)
    stats = {"steps": a.steps, "seed": a.seed, "seq_len": a.seq_len, "batch": a.batch, "lr": a.lr,
             "params": n_params, "train_seconds": round(train_s, 1),
             "seconds_per_step": round(train_s / max(1, a.steps), 3), "threads": a.threads,
             "eval_bytes": len(evald), "eval_window": a.eval_window,
             "eval_loss_nats_per_byte": round(final, 4), "eval_bits_per_byte": round(final / math.log(2), 4),
             "eval_ppl_per_byte": round(math.exp(final), 4), "torch": torch.__version__}
    (a.out / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats, indent=2), flush=True)


if __name__ == "__main__":
    main()
