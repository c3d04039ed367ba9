"""C simulation of an image model's project (tb_edgec_image) against the int simulator, call by call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.ir import entry_graphs
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.sim_int import IntSimulator
from edgec.targets.fpga.csim import CsimResult, first_difference, run_testbench

__all__ = ["golden_calls", "run_image_csim", "simulate_images"]


def golden_calls(tasks: int, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every image under every task: (images [N x tasks, H, W, C], task index per call)."""
    return np.repeat(images, tasks, axis=0), np.tile(np.arange(tasks, dtype=np.int64), len(images))


def simulate_images(qm: QuantizedModel, images: np.ndarray, tasks: np.ndarray, trace: bool = False
                    ) -> tuple[np.ndarray, list[dict]]:
    """The int simulator's logit codes per call, padded with 0 to the widest head, and with ``trace`` every
    value of each call."""
    keys = list(entry_graphs(qm.graphs))
    width = max(int(qm.graphs[k].values["logits"].shape[-1]) for k in keys)
    sim, out, envs = IntSimulator(qm), np.zeros((len(images), width), np.int64), []
    for t, key in enumerate(keys):
        rows = np.flatnonzero(tasks == t)
        if len(rows):
            env = sim.run(qm.graphs[key], {"images": images[rows]}, keep_all=trace)
            out[rows, :env["logits"].shape[-1]] = env["logits"]
            if trace:
                envs += [(int(r), {k: v[i] for k, v in env.items()}) for i, r in enumerate(rows)]
    return out, [env for _, env in sorted(envs, key=lambda e: e[0])]


def run_image_csim(project: Path, qm: QuantizedModel, images: np.ndarray, tasks: np.ndarray, traced: list[str],
                   trace: bool = False, expected: np.ndarray | None = None, workdir: Path | None = None) -> CsimResult:
    """Compile the project's testbench, run every (image, task) call and compare every logit with the
    simulator; with ``trace`` every shared node's output of every call, naming the first difference."""
    envs: list[dict] = []
    if expected is None or trace:
        expected, envs = simulate_images(qm, images, tasks, trace)
    got, records, compile_s, run_s = run_testbench(
        project, "tb_edgec_image", {"images.bin": images.astype(np.uint8), "tasks.bin": tasks.astype("<i8")},
        len(images), trace, workdir)
    first = ""
    if trace:
        from edgec.targets.fpga.emit_images import merge_task_graphs

        graph, _ = merge_task_graphs({k: qm.graphs[k] for k in entry_graphs(qm.graphs)})
        first = first_difference(records, envs, len(traced), graph, "call")
    equal = int(np.sum(got == expected)) if got.shape == expected.shape else 0
    return CsimResult(len(images), equal, int(expected.size), compile_s, run_s, first)
