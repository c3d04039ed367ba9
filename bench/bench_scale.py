"""Memory and time of edgec at real sizes: peak RSS and wall time of quantize and each build, per model shape.

Run: python bench/bench_scale.py [--shapes mamba-130m:2 mamba-130m:24 mamba-2.8b:2 mamba-2.8b:64 xlstm-7b:1]
                                 [--targets cpu orin fpga] [--tokens N] [--no-csim] [--workdir DIR [--keep]]

Each shape is a random-init checkpoint of a real model's widths with the given number of layers (blocks), written
to disk in fp16 (as released checkpoints are); calibration is 8 windows of 256 random token ids. Every step runs
as its own child process (``python -m edgec ...``), its peak RSS read from the kernel (ru_maxrss of the child)
and its wall time measured around it. With two depths of one shape the report extrapolates the full-depth peak
from the per-layer slope. ``--tokens N`` sets every build's golden tokens (the FPGA build C-simulates them: a few
at 2.8b widths, each token reads every weight); ``--keep`` keeps the checkpoints in ``--workdir`` for the next run.

Measured here (2 cores, 24 GB), see the closing note of issue 11 and README "Memory at real sizes".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: name -> (transformers config class, config kwargs without the depth, depth key, full depth)
SHAPES = {
    "mamba-130m": ("MambaConfig", {"vocab_size": 50280, "hidden_size": 768, "intermediate_size": 1536,
                                   "state_size": 16, "conv_kernel": 4, "time_step_rank": 48},
                   "num_hidden_layers", 24),
    "mamba-2.8b": ("MambaConfig", {"vocab_size": 50280, "hidden_size": 2560, "intermediate_size": 5120,
                                   "state_size": 16, "conv_kernel": 4, "time_step_rank": 160},
                   "num_hidden_layers", 64),
    "xlstm-7b": ("xLSTMConfig", {"vocab_size": 50304, "hidden_size": 4096, "num_heads": 8, "qk_dim_factor": 0.5,
                                 "v_dim_factor": 1.0, "ffn_proj_factor": 2.667, "ffn_round_up_to_multiple_of": 64,
                                 "weight_mode": "single", "use_bias": False},  # fused: transformers 5.24 cannot init it
                 "num_blocks", 32),
}
HF_CLASSES = {"MambaConfig": "MambaForCausalLM", "xLSTMConfig": "xLSTMForCausalLM"}


def make_checkpoint(shape: str, depth: int, folder: Path) -> None:
    """A random-init checkpoint of ``shape`` with ``depth`` layers, fp16 on disk (in a child process)."""
    config, kwargs, key, _ = SHAPES[shape]
    code = (f"import torch, transformers; torch.manual_seed(0); "
            f"cfg = transformers.{config}(**{dict(kwargs, **{key: depth})!r}); "
            f"m = transformers.{HF_CLASSES[config]}(cfg); "
            # transformers' xLSTM init zeroes the gate projections (a constant gate: int8 has nothing to scale)
            f"[p.data.normal_(0, 0.02) for n, p in m.named_parameters() if 'gate' in n and p.ndim == 2]; "
            f"m.half().save_pretrained({str(folder)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def measured(args: list[str]) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of ``python -m edgec ARGS`` run as a child process: the kernel's
    ru_maxrss of that child alone (os.wait4)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "edgec", *args], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"edgec {' '.join(args)} failed: {err.read().decode(errors='replace').strip()[-500:]}")
    return usage.ru_maxrss / 2**20, seconds  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["mamba-130m:2", "mamba-130m:24"])
    parser.add_argument("--targets", nargs="*", default=["cpu", "orin", "fpga"], choices=["cpu", "orin", "fpga"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--tokens", type=int, default=None,
                        help="golden tokens of each build (default: the build's own; fpga C-simulates them)")
    parser.add_argument("--no-csim", action="store_true", help="fpga: skip the C simulation")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints (in --workdir) for another run")
    args = parser.parse_args()
    rows: dict[str, dict[int, dict[str, tuple[float, float]]]] = {}
    if args.keep and args.workdir is None:
        raise SystemExit("--keep needs --workdir: the folder the checkpoints stay in")
    with contextlib.nullcontext(str(args.workdir)) if args.keep else tempfile.TemporaryDirectory(dir=args.workdir) \
            as tmp:
        work = Path(tmp)
        calib = work / "calib.npy"
        np.save(calib, np.random.default_rng(0).integers(0, 50000, 8 * 256).astype(np.int64))
        for item in args.shapes:
            shape, depth = item.split(":")[0], int(item.split(":")[1])
            ckpt, qdir = work / f"{shape}-{depth}", work / f"{shape}-{depth}.q"
            if not (ckpt / "config.json").is_file():
                make_checkpoint(shape, depth, ckpt)
            for old in work.glob(f"{shape}-{depth}.*"):  # outputs of an earlier run (--keep)
                shutil.rmtree(old)
            steps = {"quantize": measured(["quantize", str(ckpt), "--calib", str(calib), "-o", str(qdir)])}
            for target in args.targets:
                extra = ["--no-csim"] if target == "fpga" and args.no_csim else []
                extra += ["--tokens", str(args.tokens)] if args.tokens else []
                steps[f"build {target}"] = measured(["build", str(qdir), "--target", target, "-o",
                                                     str(work / f"{shape}-{depth}.{target}"), *extra])
            rows.setdefault(shape, {})[depth] = steps
            cells = "; ".join(f"{k} {gb:.2f} GB {s:.1f} s" for k, (gb, s) in steps.items())
            print(f"{shape}, {depth} layers: {cells}", flush=True)
    for shape, depths in rows.items():
        if len(depths) >= 2:
            (d0, r0), (d1, r1) = sorted(depths.items())[:2]
            slope = (r1["quantize"][0] - r0["quantize"][0]) / (d1 - d0)
            full = SHAPES[shape][3]
            low, high = r0["quantize"][0], r1["quantize"][0]
            print(f"{shape}: quantize peak {low:.2f} GB at {d0} layers, {high:.2f} GB at {d1} "
                  f"(ratio {high / low:.2f}); {slope * 1024:.0f} MB per layer -> "
                  f"{low + slope * (full - d0):.1f} GB at the full {full} layers")


if __name__ == "__main__":
    main()
