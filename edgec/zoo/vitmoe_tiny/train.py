"""Train the bundled ``vitmoe-tiny`` (a multi-task ViT-MoE, edgec.zoo.vit_moe_ref.VitMoe) on scikit-learn's digits.

Training-only dependencies: torch and scikit-learn (``pip install -e ".[train]"``); nothing else in edgec
imports scikit-learn. Deterministic on CPU (one thread by default):

    python -m edgec.zoo.vitmoe_tiny.train

Data: the 1,797 8x8 digits, split once by ``--split-seed`` into 450 held-out digits (``eval.npz``) and
1,347 training digits, of which the first 256 of the permutation are also ``calib.npz``; rendered to
32x32 RGB by edgec.zoo.vitmoe_tiny.digits (palette pair index % 8). ``split.json`` records the split and
a digest of every training digit. Training sees each training digit once an epoch, in a random palette
pair with jittered colours (up to 24 per channel), shifted by up to 2 pixels.

Loss: the sum over tasks (digit, parity) of cross-entropy, plus ``--aux`` times the Switch load-balancing
loss E * sum_e f_e * P_e of every MoE block and task (f_e: the share of top-k assignments to expert e,
P_e: its mean router probability), so that experts are actually used. Writes ``config.json``,
``model.safetensors`` and ``train_stats.json`` (figures from edgec's float interpreter on eval.npz: top-1
per task, the expert load per MoE block and task) into ``--out``; with ``--data`` (the default for the
bundled folder), also ``calib.npz``, ``eval.npz`` and ``split.json``. tests/assets/vitmoe_alt was
trained with other widths and ``--no-data`` (its README has the command); it is scored on this folder's eval.npz.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgec.zoo.vit_moe_ref import MoeMlp, VitMoe
from edgec.zoo.vitmoe_tiny.digits import PALETTE, SCALE, TASKS, digests, render, task_labels

HERE = Path(__file__).resolve().parent


def load_split(split_seed: int, eval_size: int, calib_size: int) -> dict[str, Any]:
    """The digits (uint8 [N, 8, 8]), classes, and sorted eval / train / calib indices; eval shares no content
    with train (a held-out digit equal to a training digit would be dropped)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    digits, classes = data.images.astype(np.uint8), data.target.astype(np.int64)
    perm = np.random.default_rng(split_seed).permutation(len(digits))
    train = np.sort(perm[eval_size:])
    seen = set(digests(digits[train]))
    held = [i for i in np.sort(perm[:eval_size]) if digests(digits[i:i + 1])[0] not in seen]
    return {"digits": digits, "classes": classes, "eval": np.array(held), "train": train,
            "calib": np.sort(perm[eval_size:eval_size + calib_size])}


def config(a: argparse.Namespace) -> dict[str, Any]:
    side = 8 * SCALE
    return {"model_type": "vit_moe", "image_size": [side, side], "in_chans": 3, "patch_size": a.patch_size,
            "embed_dim": a.embed_dim, "depth": a.depth, "num_heads": a.heads, "mlp_ratio": a.mlp_ratio,
            "moe_layers": [int(b) for b in a.moe_layers.split(",") if b], "num_experts": a.experts,
            "top_k": a.top_k, "moe_hidden": a.moe_hidden, "multi_gate": True, "tasks": TASKS, "norm_eps": 1e-6,
            "qkv_bias": True}


def augment(digits: np.ndarray, rng: np.random.Generator, shift: int = 2, jitter: float = 24,
            pairs: int = len(PALETTE)) -> torch.Tensor:
    """Float [N, 32, 32, 3] images of integer pixel values: a random palette pair with each colour channel moved
    by up to ``jitter``, shifted by up to ``shift`` pixels."""
    n = len(digits)
    level = np.repeat(np.repeat(digits.astype(np.float64) / 16, SCALE, axis=1), SCALE, axis=2)
    padded = np.pad(level, ((0, 0), (shift, shift), (shift, shift)))
    dy, dx = rng.integers(0, 2 * shift + 1, (2, n))
    side = level.shape[1]
    level = np.stack([padded[i, dy[i]:dy[i] + side, dx[i]:dx[i] + side] for i in range(n)])[..., None]
    colours = PALETTE[rng.integers(0, pairs, n)]
    paper, ink = (np.clip(colours[:, j] + rng.uniform(-jitter, jitter, (n, 3)), 0, 255) for j in (0, 1))
    images = paper[:, None, None] + (ink - paper)[:, None, None] * level
    return torch.from_numpy(np.rint(images)).float()


class Balance:
    """Collects the Switch load-balancing loss of every MoE block in the forwards since the last ``take``."""

    def __init__(self, model: VitMoe) -> None:
        self.terms: list[torch.Tensor] = []
        for block in model.blocks:
            if block.moe:
                block.mlp.register_forward_hook(self._hook)

    def _hook(self, module: MoeMlp, inputs: tuple[torch.Tensor, int], _: torch.Tensor) -> None:
        x, task = inputs
        gate = module.gate[task] if isinstance(module.gate, torch.nn.ModuleList) else module.gate
        probs = (x.reshape(-1, x.shape[-1]) @ gate.w_gate).softmax(dim=-1)
        experts = probs.shape[-1]
        share = F.one_hot(module.last_route.reshape(-1), experts).float().mean(0)  # f_e, summing to 1
        self.terms.append(experts * (share * probs.mean(0)).sum())

    def take(self) -> torch.Tensor:
        loss, self.terms = torch.stack(self.terms).mean(), []
        return loss


def evaluate(folder: Path, data: Path, near: float = 0.05) -> dict[str, Any]:
    """From edgec's float interpreter on an image data file: top-1 per task, and per MoE block and task the
    expert load (the share of top-k assignments of each expert) and the share of near-ties (tokens whose
    k-th and (k+1)-th router probabilities differ by at most ``near``: their routing may flip under quantization)."""
    from edgec.frontends.hf_checkpoint import load_checkpoint
    from edgec.frontends.vit_moe_graph import graph_name
    from edgec.image_data import image_batches, load_images
    from edgec.runtime.float_ref import FloatInterpreter

    model = load_checkpoint(folder)
    spec, interp = model.spec, FloatInterpreter(model.weights)
    images = load_images(data, spec)
    top1: dict[str, float] = {}
    load: dict[str, dict[str, list[float]]] = {}
    ties: dict[str, dict[str, float]] = {}
    for task in spec.task_names:
        correct, counts = 0, {b: np.zeros(spec.num_experts, np.int64) for b in spec.moe_layers}
        close = dict.fromkeys(spec.moe_layers, 0)
        for batch in image_batches(images, 50):
            out = interp.run(model.graphs[graph_name(task)], {"images": batch.images}, keep_all=True)
            correct += int((out["logits"].argmax(-1) == batch.labels[task]).sum())
            for b in spec.moe_layers:
                counts[b] += np.bincount(out[f"b{b}.route_experts"].reshape(-1), minlength=spec.num_experts)
                if spec.top_k < spec.num_experts:
                    p = -np.sort(-out[f"b{b}.route_probs"], axis=-1)
                    close[b] += int((p[..., spec.top_k - 1] - p[..., spec.top_k] <= near).sum())
        tokens = len(images) * spec.num_tokens
        top1[task] = round(correct / len(images), 4)
        load[task] = {str(b): [round(float(c), 3) for c in counts[b] / counts[b].sum()] for b in spec.moe_layers}
        ties[task] = {str(b): round(close[b] / tokens, 4) for b in spec.moe_layers}
    return {"images": len(images), "top1": top1, "expert_load": load, f"near_ties_{near}": ties}


def main() -> None:
    ap = argparse.ArgumentParser(description="train vitmoe-tiny (multi-task ViT-MoE on scikit-learn's digits)")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--eval-size", type=int, default=450)
    ap.add_argument("--calib-size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--aux", type=float, default=0.02, help="weight of the load-balancing loss")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shift", type=int, default=2, help="augmentation: largest shift in pixels")
    ap.add_argument("--jitter", type=float, default=24, help="augmentation: largest change of a colour channel")
    ap.add_argument("--pairs", type=int, default=len(PALETTE), help="augmentation: palette pairs used (the first)")
    ap.add_argument("--patch-size", type=int, default=8)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=float, default=2.0)
    ap.add_argument("--moe-layers", default="1,3", help="comma-separated MoE block indices")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--moe-hidden", type=int, default=128)
    ap.add_argument("--data", action=argparse.BooleanOptionalAction, default=True,
                    help="write calib.npz, eval.npz and split.json into --out (else score on this folder's eval.npz)")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    split = load_split(a.split_seed, a.eval_size, a.calib_size)
    digits, classes = split["digits"], split["classes"]
    a.out.mkdir(parents=True, exist_ok=True)
    eval_file = (a.out if a.data else HERE) / "eval.npz"
    if a.data:
        _write_data(a.out, split, a.split_seed)
    elif not np.array_equal(np.load(eval_file, allow_pickle=False)["images"],
                            render(digits[split["eval"]], split["eval"] % len(PALETTE))):
        raise SystemExit(f"{eval_file} is not the held-out data of --split-seed {a.split_seed}; pass --data")

    model = VitMoe(config(a))
    balance = Balance(model)
    n_params = sum(p.numel() for p in model.parameters())
    train = split["train"]
    steps_per_epoch = math.ceil(len(train) / a.batch)
    total = a.epochs * steps_per_epoch
    print(f"params: {n_params:,}  train digits: {len(train)}  eval digits: {len(split['eval'])}  steps: {total}",
          flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n]
    rest = [p for n, p in model.named_parameters() if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr)
    warmup = min(100, total // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return a.lr * (step + 1) / warmup
        return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))

    rng = np.random.default_rng(a.seed)
    labels = {t: torch.from_numpy(y) for t, y in task_labels(classes).items()}
    t0, step, run = time.time(), 0, None
    model.train()
    for epoch in range(a.epochs):
        order = rng.permutation(train)
        for i in range(0, len(order), a.batch):
            rows = order[i:i + a.batch]
            images = augment(digits[rows], rng, a.shift, a.jitter, a.pairs)
            task_loss = sum(F.cross_entropy(model(images, t), labels[t][rows]) for t in TASKS)
            aux = balance.take()
            loss = task_loss + a.aux * aux
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            run = (task_loss.item(), aux.item()) if run is None else (
                0.9 * run[0] + 0.1 * task_loss.item(), 0.9 * run[1] + 0.1 * aux.item())
        print(f"epoch {epoch + 1:3d}  loss {run[0]:.4f}  balance {run[1]:.4f}  {time.time() - t0:6.1f} s", flush=True)
    seconds = time.time() - t0
    model.eval()
    model.save_pretrained(a.out)
    figures = evaluate(a.out, eval_file)
    import sklearn

    stats = {"command": " ".join(["python -m edgec.zoo.vitmoe_tiny.train", *_changed(ap, a)]), "seed": a.seed,
             "split_seed": a.split_seed, "epochs": a.epochs, "steps": total, "batch": a.batch, "lr": a.lr,
             "aux": a.aux, "params": n_params, "train_seconds": round(seconds, 1), "threads": a.threads,
             "final_train_loss": round(run[0], 4), "final_balance_loss": round(run[1], 4),
             "eval_file": str(eval_file.relative_to(HERE.parents[2])) if eval_file.is_relative_to(HERE.parents[2])
             else str(eval_file), **figures, "torch": torch.__version__, "scikit-learn": sklearn.__version__}
    (a.out / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps({k: stats[k] for k in ("params", "train_seconds", "top1", "expert_load")}, indent=2))


def _write_data(out: Path, split: dict[str, Any], split_seed: int) -> None:
    """calib.npz and eval.npz (palette renderings, pair index % 8) and split.json."""
    from edgec.image_data import save_images

    digits, classes = split["digits"], split["classes"]
    for name in ("calib", "eval"):
        idx = split[name]
        save_images(out / f"{name}.npz", render(digits[idx], idx % len(PALETTE)), task_labels(classes[idx]))
    record = {"dataset": "sklearn.datasets.load_digits", "digits": len(digits), "split_seed": split_seed,
              **{name: split[name].tolist() for name in ("eval", "calib", "train")},
              "train_digests": digests(digits[split["train"]])}
    (out / "split.json").write_text(json.dumps(record) + "\n")


def _changed(ap: argparse.ArgumentParser, a: argparse.Namespace) -> list[str]:
    """The options that differ from their defaults, as command-line words (--out excepted)."""
    words = []
    for key, value in vars(a).items():
        if key != "out" and value != ap.get_default(key):
            flag = "--" + key.replace("_", "-")
            words += [flag if value is True else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return words


if __name__ == "__main__":
    main()
