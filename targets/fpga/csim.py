"""C simulation of a generated project with g++ and hls4ml's ap_types, checked against the simulator."""

from __future__ import annotations

import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgec.errors import VerificationError
from edgec.hls.toolchain import ap_types_dir, compile_program, run_program
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.sim_int import IntSimulator

__all__ = ["CsimResult", "first_difference", "read_trace", "require_bit_exact", "run_csim", "run_testbench",
           "simulate_steps"]


@dataclass(frozen=True)
class CsimResult:
    """Outcome of one C simulation: timings and the agreement with the simulator."""

    tokens: int
    logits_equal: int  # logits (token x vocab) that equal the simulator's
    logits_total: int
    compile_s: float
    run_s: float
    first_difference: str = ""

    @property
    def bit_exact(self) -> bool:
        return self.logits_equal == self.logits_total


def simulate_steps(qm: QuantizedModel, tokens: np.ndarray, trace: bool = False) -> tuple[np.ndarray, list[dict]]:
    """The int simulator's step graph over ``tokens`` from zero state (every step-graph input but the token):
    logits [T, V] and, with ``trace``, every value."""
    sim = IntSimulator(qm)
    graph = qm.graphs["step"]
    state = {name: np.zeros((1, *graph.values[name].shape[1:]), np.int64) for name in graph.inputs if name != "tokens"}
    logits, envs = [], []
    for token in tokens:
        env = sim.run(graph, {"tokens": np.array([token]), **state}, keep_all=trace)
        state = {k: env[k + "_out"] for k in state}
        logits.append(env["logits"][0])
        if trace:
            envs.append(env)
    return np.stack(logits), envs


def read_trace(path: Path) -> list[tuple[str, np.ndarray]]:
    raw, records, pos = path.read_bytes(), [], 0
    while pos < len(raw):
        (length,) = struct.unpack_from("<I", raw, pos)
        name = raw[pos + 4:pos + 4 + length].decode()
        (count,) = struct.unpack_from("<Q", raw, pos + 4 + length)
        start = pos + 12 + length
        records.append((name, np.frombuffer(raw, "<i8", count, start)))
        pos = start + 8 * count
    return records


def first_difference(records: list[tuple[str, np.ndarray]], envs: list[dict], per_call: int, graph,
                     unit: str = "token") -> str:
    """The first traced value (``per_call`` records per call, in call order) that differs from the simulator's
    environment of its call, named with its node; '' when all agree."""
    for t, env in enumerate(envs):
        for name, got in records[t * per_call:(t + 1) * per_call]:
            want = np.asarray(env[name]).reshape(-1)
            if not np.array_equal(got, want):
                node = graph.producer(name)
                bad = int(np.flatnonzero(got != want)[0])
                return (f"{unit} {t}: %{name} of node {node.name} ({node.op.value}) differs first at index {bad}: "
                        f"csim {int(got[bad])}, simulator {int(want[bad])}")
    return ""


def run_testbench(project: Path, testbench: str, inputs: dict[str, np.ndarray], calls: int, trace: bool,
                  workdir: Path | None) -> tuple[np.ndarray, list[tuple[str, np.ndarray]], float, float]:
    """Compile ``tb/<testbench>.cpp`` with the project's top, run it on the weights and ``inputs`` (file name ->
    array, written as is, in that order) in a scratch folder inside ``workdir`` (removed on return):
    (logits [calls, -1], trace records (empty without ``trace``), compile seconds, run seconds)."""
    with tempfile.TemporaryDirectory(prefix="edgec-csim-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        exe = compile_program([project / "tb" / f"{testbench}.cpp", project / "firmware" / "edgec_top.cpp"],
                              tmp_path / testbench, [project / "firmware", ap_types_dir()])
        compile_s = time.perf_counter() - start
        for name, array in inputs.items():
            array.tofile(tmp_path / name)
        args = [project / "data" / "weights.bin", *(tmp_path / name for name in inputs), tmp_path / "logits.bin"]
        if trace:
            args += ["--trace", tmp_path / "trace.bin"]
        start = time.perf_counter()
        run_program(exe, args)
        run_s = time.perf_counter() - start
        got = np.fromfile(tmp_path / "logits.bin", "<i8").reshape(calls, -1)
        records = read_trace(tmp_path / "trace.bin") if trace else []
    return got, records, compile_s, run_s


def run_csim(project: Path, qm: QuantizedModel, tokens: np.ndarray, traced: list[str], trace: bool = False,
             expected: np.ndarray | None = None, workdir: Path | None = None) -> CsimResult:
    """Compile the project's testbench, run it on ``tokens`` and compare every logit with the simulator.

    With ``trace``, every node output of every step is compared and the first difference is named.
    Scratch files (executable, logits, trace) go to a folder inside ``workdir`` (default: $TMPDIR),
    removed on return.
    """
    if expected is None or trace:
        expected, envs = simulate_steps(qm, tokens, trace)
    got, records, compile_s, run_s = run_testbench(project, "tb_edgec", {"tokens.bin": tokens.astype("<i8")},
                                                   len(tokens), trace, workdir)
    first = first_difference(records, envs, len(traced), qm.graphs["step"]) if trace else ""
    equal = int(np.sum(got == expected)) if got.shape == expected.shape else 0
    result = CsimResult(len(tokens), equal, int(expected.size), compile_s, run_s, first)
    return result


def require_bit_exact(result: CsimResult) -> None:
    """Raise VerificationError naming the first difference when C simulation and simulator disagree."""
    if not result.bit_exact:
        where = result.first_difference or "rerun with --trace to find the first layer that differs"
        wrong = result.logits_total - result.logits_equal
        raise VerificationError(f"C simulation differs from the simulator on {wrong} of {result.logits_total} "
                                f"logits; {where}")
