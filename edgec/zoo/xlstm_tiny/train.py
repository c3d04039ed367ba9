"""Train the bundled byte-level ``xlstm-tiny`` model (HF ``xLSTMForCausalLM``, the xLSTM-7B block design).

Deterministic CPU training on random windows of the same Vim-help prose as mamba-tiny
(``edgec/zoo/mamba_tiny/train.txt``; token id == byte value, vocabulary 256, no tokenizer files).
Writes ``config.json``, ``model.safetensors`` and ``train_stats.json`` into ``--out`` (default: this
folder), and copies mamba-tiny's held-out ``calib.txt`` and ``eval.txt`` beside them (``--no-copy-text``: not).

    python -m edgec.zoo.xlstm_tiny.train --steps 1500

The widths (``--hidden-size``, ``--blocks``, ``--heads``, ``--qk-dim-factor``, ``--ffn-proj-factor``,
``--chunk-size``, ``--weight-mode``) default to the bundled model's; tests/assets/xlstm_alt was trained
with other widths (its README has the command).

transformers initialises the input-gate bias to -10; a briefly trained model then has exp(-m) win
the denominator's max(|q.n|, exp(-m)) everywhere, so the n path is never exercised. The bias starts
at 0 here instead, and train_stats.json records how often each branch wins on held-out text.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
from pathlib import Path

import torch
from transformers import xLSTMConfig, xLSTMForCausalLM
from transformers.initialization import no_init_weights

from edgec.zoo.mamba_tiny.train import eval_loss, load_bytes, train_bytes  # the same corpus and loop

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "mamba_tiny"


def make_config(hidden_size: int = 128, blocks: int = 3, heads: int = 4, qk_dim_factor: float = 0.5,
                ffn_proj_factor: float = 2.667, chunk_size: int = 16, weight_mode: str = "single") -> xLSTMConfig:
    """The training config; the defaults are the bundled model's (q/k 64, 16 per head; v 128, 32 per head;
    feed-forward 384)."""
    return xLSTMConfig(
        vocab_size=256, hidden_size=hidden_size, num_hidden_layers=blocks, num_heads=heads,
        qk_dim_factor=qk_dim_factor, v_dim_factor=1.0,
        ffn_proj_factor=ffn_proj_factor, ffn_round_up_to_multiple_of=64,
        chunk_size=chunk_size, mode="train", use_bias=False, weight_mode=weight_mode,
        gate_soft_cap=15.0, output_logit_soft_cap=30.0, norm_eps=1e-6, eps=1e-6,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, use_cache=True,
    )


def make_model(cfg: xLSTMConfig) -> xLSTMForCausalLM:
    """A freshly initialised float32 model of ``cfg`` whose input-gate biases start at 0 (see above).

    transformers' initialiser fails for ``weight_mode="fused"`` (it writes a 2 x heads bias into a
    heads-wide slice), so a fused model is initialised as its single-weight twin, whose weights are then
    concatenated in the order the fused forward splits them: q|k|v|o, i|f and gate|up.
    """
    if cfg.weight_mode == "single":
        model = xLSTMForCausalLM(cfg).float()
        with torch.no_grad():
            for block in model.backbone.blocks:
                block.mlstm_layer.igate_preact.bias.zero_()
        return model
    single = copy.deepcopy(cfg)
    single.weight_mode = "single"
    weights = make_model(single).state_dict()
    fused = {"q|k|v|ogate_preact": "qkv_opreact", "igate_preact|fgate_preact": "ifgate_preact",
             "proj_up_gate|proj_up": "proj_up_gate_z"}
    for b in range(cfg.num_hidden_layers):
        for parts, name in fused.items():
            where = f"backbone.blocks.{b}.{'ffn' if name.startswith('proj') else 'mlstm_layer'}."
            for kind in ("weight", "bias") if name == "ifgate_preact" else ("weight",):
                weights[f"{where}{name}.{kind}"] = torch.cat([weights.pop(f"{where}{p}.{kind}")
                                                              for p in parts.split("|")])
    with no_init_weights():
        model = xLSTMForCausalLM(cfg).float()
    model.load_state_dict(weights, strict=True)
    return model


def denominator_branches(folder: Path, data: torch.Tensor, tokens: int = 2048) -> dict[str, int]:
    """How often |q.n| and how often exp(-m) wins the denominator's max (heads x blocks per token), decoding
    ``tokens`` held-out bytes with edgec's float interpreter."""
    from edgec.frontends.hf_checkpoint import load_checkpoint
    from edgec.runtime.mlstm_stats import denominator_branches as count

    return count(load_checkpoint(folder), data[:tokens].numpy()[None])


def main() -> None:
    ap = argparse.ArgumentParser(description="train xlstm-tiny (byte-level)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--qk-dim-factor", type=float, default=0.5)
    ap.add_argument("--ffn-proj-factor", type=float, default=2.667)
    ap.add_argument("--chunk-size", type=int, default=16)
    ap.add_argument("--weight-mode", choices=("single", "fused"), default="single")
    ap.add_argument("--copy-text", action=argparse.BooleanOptionalAction, default=True,
                    help="copy mamba-tiny's calib.txt and eval.txt into --out")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    train, evald = load_bytes(DATA / "train.txt"), load_bytes(DATA / "eval.txt")
    model = make_model(make_config(a.hidden_size, a.blocks, a.heads, a.qk_dim_factor, a.ffn_proj_factor,
                                   a.chunk_size, a.weight_mode))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params:,}  train bytes: {len(train):,}  eval bytes: {len(evald):,}", flush=True)

    def evaluate(model: torch.nn.Module, step: int) -> None:
        print(f"  eval @ {step}: {eval_loss(model, evald[:8192], 128, 16):.4f} nats/byte", flush=True)

    train_s = train_bytes(model, train, a, lambda name, p: p.ndim < 2 or "embed" in name, 25, evaluate)
    model.config.mode = "inference"  # what a user's transformers run and edgec's float reference use
    final = eval_loss(model, evald, 128, 16)
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    for name in ("calib.txt", "eval.txt") if a.copy_text else ():
        if (a.out / name).resolve() != (DATA / name).resolve():
            shutil.copyfile(DATA / name, a.out / name)
    branches = denominator_branches(a.out, evald)
    stats = {"steps": a.steps, "seed": a.seed, "seq_len": a.seq_len, "batch": a.batch, "lr": a.lr,
             "params": n_params, "train_seconds": round(train_s, 1), "eval_loss_nats_per_byte": round(final, 4),
             "eval_bits_per_byte": round(final / math.log(2), 4), "eval_ppl_per_byte": round(math.exp(final), 4),
             "denominator_branches": branches, "torch": torch.__version__}
    (a.out / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats, indent=2), flush=True)


if __name__ == "__main__":
    main()
