"""The numbers of the accuracy sections: what ``edgec eval --layers`` computes, expert load, and the ablation.

- :func:`evaluate`: the workload's own evaluation (perplexity, or top-1 per task and routing agreement),
  with the per-layer SQNR of the residual stream, exactly as ``edgec eval`` computes them;
- :func:`expert_load`: per MoE layer and task, the share of routed (token, slot) pairs each expert gets,
  in the float model and in the int simulator;
- :func:`ablation`: the recipe re-run with one switch changed at a time (language models: Hadamard,
  percentile clipping, per-channel scales; ViT-MoE: the integer softmax and GELU variants), on few
  tokens or images, each row next to the recipe re-run on the same data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgec.frontends.model import Model
from edgec.passes.quantize import QuantizedModel, QuantOptions
from edgec.progress import track
from edgec.workloads import CalibOptions, EvalOptions, workload_of

__all__ = ["ABLATE_IMAGES", "ABLATE_TOKENS", "Ablation", "ablation", "evaluate", "expert_load", "first_batch"]

ABLATE_TOKENS = 512  # language models: evaluation tokens per ablation row (windows of ABLATE_SEQ_LEN)
ABLATE_SEQ_LEN = 128
ABLATE_CALIB_TOKENS = 1024  # calibration tokens of the re-run recipe
ABLATE_IMAGES = 64  # ViT-MoE: evaluation and calibration images per ablation row
LOAD_IMAGES = 64  # ViT-MoE: images whose routing the expert load counts
OUTLIER_TOKENS = 1024  # language models: tokens (windows of 256) the outlier measurement runs on


@dataclass(frozen=True)
class Ablation:
    """One row: the option changed (its CLI flag), the options, and the metric per profile."""

    change: str
    options: dict[str, Any]
    metrics: dict[str, float]  # perplexity or mean top-1 over the tasks, per profile


def evaluate(fm: Model, qm: QuantizedModel, data: Path, options: EvalOptions) -> dict[str, Any]:
    """``edgec eval --json`` 's result for ``options``, plus its "layers" (per-layer SQNR of both profiles)."""
    return workload_of(fm).evaluate(fm, qm, data, replace(options, layers=True))


def first_batch(fm: Model, data: Path) -> np.ndarray:
    """The first batch of ``data`` as the quantizer's calibration reads it: [8, 256] tokens or 32 images."""
    workload = workload_of(fm)
    options = CalibOptions(None, OUTLIER_TOKENS) if workload.unit == "tokens" else CalibOptions()
    return workload.calibration(fm, data, options)[0]


def expert_load(fm: Model, qm: QuantizedModel, data: Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{profile: {"task layer": [share of each expert]}} on the first LOAD_IMAGES images of ``data``."""
    from edgec.evaluate_images import router_outputs
    from edgec.frontends.vit_moe_graph import graph_name
    from edgec.image_data import load_images
    from edgec.runtime.float_ref import FloatInterpreter
    from edgec.runtime.sim_int import IntSimulator

    images = load_images(data, fm.spec, need_labels=False).images[:LOAD_IMAGES]
    runs = {"float": (FloatInterpreter(fm.weights), fm.graphs), "int": (IntSimulator(qm), qm.graphs)}
    experts = int(fm.spec.num_experts)
    load: dict[str, dict[str, list[float]]] = {p: {} for p in runs}
    for task in track(list(fm.spec.task_names), "expert load"):
        name = graph_name(task)
        for profile, (runner, graphs) in runs.items():
            env = runner.run(graphs[name], {"images": images}, keep_all=True)
            for layer, _, chosen, _ in router_outputs(graphs[name]):
                counts = np.bincount(np.asarray(env[chosen]).astype(np.int64).ravel(), minlength=experts)
                load[profile][f"{task} {layer}"] = (counts / max(counts.sum(), 1)).tolist()
    return load


def _variants(fm: Model, base: QuantOptions) -> list[tuple[str, QuantOptions]]:
    from edgec.numerics.gelu import GELU_VARIANTS
    from edgec.numerics.softmax import SOFTMAX_VARIANTS

    rows = [("recipe (as quantized)", base)]
    if workload_of(fm).unit == "tokens":
        switches = ("hadamard", "percentile", "per_channel")
        return rows + [(f"--no-{s.replace('_', '-')}", replace(base, **{s: False})) for s in switches
                       if getattr(base, s)]
    rows += [(f"--softmax {v}", replace(base, softmax=v)) for v in SOFTMAX_VARIANTS if v != base.softmax]
    return rows + [(f"--gelu {v}", replace(base, gelu=v)) for v in GELU_VARIANTS if v != base.gelu]


def ablation(fm: Model, qm: QuantizedModel, calib: Path, data: Path) -> tuple[list[Ablation], str]:
    """The ablation rows and a line saying what they ran on (every row on the same calibration and data)."""
    from edgec.passes.pipeline import quantize

    workload = workload_of(fm)
    if workload.unit == "tokens":
        from edgec.data import model_tokens, windows
        from edgec.evaluate import perplexities

        batches = workload.calibration(fm, calib, CalibOptions(ABLATE_SEQ_LEN, ABLATE_CALIB_TOKENS))
        eval_windows = windows(model_tokens(fm, data), ABLATE_SEQ_LEN, batch=8, max_tokens=ABLATE_TOKENS)
        tokens = sum(b.shape[0] * (b.shape[1] - 1) for b in eval_windows)
        float_ppl = perplexities(fm, None, eval_windows, ("float",))["float"]

        def metrics(q: QuantizedModel) -> dict[str, float]:
            return {"float": float_ppl, **perplexities(None, q, eval_windows, ("int", "qdq"))}

        what = (f"perplexity on {tokens} tokens of {data} (windows of {ABLATE_SEQ_LEN}), each recipe calibrated "
                f"on {sum(b.size for b in batches)} tokens of {calib}")
    else:
        from edgec.evaluate_images import image_metrics
        from edgec.image_data import load_images

        batches = workload.calibration(fm, calib, CalibOptions())[:max(1, ABLATE_IMAGES // 32)]
        subset = load_images(data, fm.spec).select(slice(0, ABLATE_IMAGES))

        def metrics(q: QuantizedModel) -> dict[str, float]:
            tasks = image_metrics(fm, q, subset, 32, ("int",))["tasks"]  # the variants change the int profile only
            return {p: float(np.mean([row[p] for row in tasks.values()])) for p in ("float", "int")}

        what = (f"mean top-1 over the tasks (fraction) on the first {len(subset)} images of {data}, int profile (the "
                f"variants are its integer kernels), each recipe calibrated on {sum(len(b) for b in batches)} images "
                f"of {calib}")
    rows = [Ablation(change, asdict(options), metrics(quantize(fm, batches, options)))
            for change, options in _variants(fm, qm.options)]
    return rows, what
