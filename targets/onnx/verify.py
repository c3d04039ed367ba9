"""Check an exported ONNX graph against the qdq simulator with ONNX Runtime, step by step.

Every int8 tensor (each QuantizeLinear output) must agree within 1 LSB, the contract of DESIGN.md;
the logits are compared by their largest relative difference. With graph optimizations off (the
reference run) ONNX Runtime evaluates the graph as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgec.frontends.mamba_graph import state_names
from edgec.numerics.agreement import relative_error
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.sim_qdq import QdqSimulator

__all__ = [
    "BROKEN_ORT_FUSIONS",
    "OnnxAgreement",
    "compare_with_simulator",
    "ort_session",
    "simulate_io",
    "simulate_logits",
    "step_perplexity",
]

#: Fusions of ONNX Runtime 1.32 that change results beyond tolerance on edgec graphs (see ort_session).
BROKEN_ORT_FUSIONS = ["QDQSelectorActionTransformer", "MatMulAddFusion"]


@dataclass(frozen=True)
class OnnxAgreement:
    """How the ONNX graph under ONNX Runtime agrees with the qdq simulator over ``tokens`` steps."""

    tokens: int
    int8_tensors: int  # int8 tensors compared (per step, summed)
    max_lsb: int  # largest |code difference| over every int8 element
    off_by_one: int  # int8 elements that differ by exactly one step
    elements: int
    logits_max_rel: float  # max |ort - sim| / max |sim| over all logits


def ort_session(model: onnx.ModelProto, optimize: bool = False, extra_outputs: list[str] | None = None):
    """An ONNX Runtime CPU session; ``extra_outputs`` exposes intermediate tensors by name."""
    import onnxruntime as ort

    if extra_outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in extra_outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: a failure reaches the user as edgec's one line, not ORT's log
    # ONNX Runtime 1.32's QDQ selector/action fusion applies per-channel weight scales wrongly to
    # Q/DQ -> MatMul (axis 1) and Q/DQ -> Gemm (transB, axis 0): one such layer alone is off by ~20%
    # of its output (tests/test_onnx_export.py keeps a reproducer). MatMul + Add -> Gemm changed the
    # bundled model's logits by 6% at one of 32 decode steps (cause not isolated yet). Both stay off;
    # every other optimization is kept.
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=BROKEN_ORT_FUSIONS if optimize else [])


def _zero_state(qm: QuantizedModel) -> dict[str, np.ndarray]:
    spec, state = qm.spec, {}
    for i in range(spec.num_hidden_layers):
        conv, ssm = state_names(i)
        state[conv] = np.zeros((1, spec.intermediate_size, spec.conv_kernel - 1), np.float32)
        state[ssm] = np.zeros((1, spec.intermediate_size, spec.state_size), np.float32)
    return state


class _PinnedQdq(QdqSimulator):
    """The qdq simulator with every int8 tensor pinned to ONNX Runtime's codes after comparing them.

    Each int8 tensor is then compared from the same int8 inputs: a code that flips by one step in an
    early layer (float summation order) is measured where it happens, not again in every later layer.
    """

    def __init__(self, qm: QuantizedModel) -> None:
        super().__init__(qm)
        self.ort_codes: dict[str, np.ndarray] = {}
        self.diffs: list[np.ndarray] = []

    def emit(self, node, name, value):
        value = super().emit(node, name, value)
        if name in self.ort_codes:
            scale = np.float32(self.qm.scales[name])
            self.diffs.append(np.abs(np.rint(value / scale).astype(np.int64) - self.ort_codes[name]))
            return self.ort_codes[name].astype(np.float32) * scale
        return value


def compare_with_simulator(model: onnx.ModelProto, quantized: list[str], qm: QuantizedModel, tokens: np.ndarray,
                           optimize: bool = False, teacher_forcing: bool = True,
                           pin_int8: bool = False) -> OnnxAgreement:
    """Run the step graph in ONNX Runtime and the qdq simulator side by side over ``tokens``.

    With ``teacher_forcing`` (the default), ONNX Runtime gets the simulator's state at every step, so
    each step is compared from the same starting point; without it, both recur on their own state and
    float rounding differences (summation order) may accumulate over the sequence. With ``pin_int8``,
    each int8 tensor is compared given the same int8 inputs (see _PinnedQdq).
    """
    session = ort_session(model, optimize, None if optimize else quantized)
    names = [o.name for o in session.get_outputs()]
    sim = _PinnedQdq(qm) if pin_int8 else QdqSimulator(qm)
    graph = qm.graphs["step"]
    ort_state, sim_state = _zero_state(qm), _zero_state(qm)
    max_lsb = off_by_one = elements = compared = 0
    max_rel = 0.0
    for token in tokens:
        feeds = {"tokens": np.array([token], np.int64), **ort_state}
        got = dict(zip(names, session.run(None, feeds), strict=True))
        if pin_int8:
            sim.ort_codes = {q.removesuffix(".q"): got[q].astype(np.int64) for q in quantized}
            sim.diffs = []
        env = sim.run(graph, {"tokens": np.array([token]), **sim_state}, keep_all=True)
        sim_state = {k: env[k + "_out"] for k in sim_state}
        ort_state = dict(sim_state) if teacher_forcing else {k: got[k + "_out"] for k in ort_state}
        ref = env["logits"]
        max_rel = max(max_rel, relative_error(got["logits"], ref))
        for i, q in enumerate(quantized if not optimize else ()):
            value = q.removesuffix(".q")
            want = np.rint(env[value] / np.float32(qm.scales[value])).astype(np.int64)
            diff = sim.diffs[i] if pin_int8 else np.abs(got[q].astype(np.int64) - want)
            max_lsb = max(max_lsb, int(diff.max()))
            off_by_one += int(np.sum(diff == 1))
            elements += diff.size
            compared += 1
    return OnnxAgreement(len(tokens), compared, max_lsb, off_by_one, elements, max_rel)


def simulate_logits(qm: QuantizedModel, tokens: np.ndarray) -> np.ndarray:
    """The qdq simulator's step-graph logits [T, V] over ``tokens`` from a zero state."""
    sim, state, out = QdqSimulator(qm), _zero_state(qm), []
    for token in tokens:
        env = sim.run(qm.graphs["step"], {"tokens": np.array([token]), **state})
        state = {k: env[k + "_out"] for k in state}
        out.append(env["logits"][0])
    return np.stack(out)


def step_perplexity(model: onnx.ModelProto, batches: list[np.ndarray], optimize: bool = True) -> float:
    """Perplexity of [B, L] token windows decoded step by step through the ONNX graph (zero state each)."""
    from edgec.evaluate import nll_sum

    session = ort_session(model, optimize)
    names = [o.name for o in session.get_outputs()]
    total, count = 0.0, 0
    for tokens in batches:
        state = {i.name: np.zeros([tokens.shape[0], *i.shape[1:]], np.float32)
                 for i in session.get_inputs() if i.name != "tokens"}
        logits = []
        for t in range(tokens.shape[1]):
            out = dict(zip(names, session.run(None, {"tokens": tokens[:, t].astype(np.int64), **state}), strict=True))
            state = {k: out[k + "_out"] for k in state}
            logits.append(out["logits"])
        total += nll_sum(np.stack(logits, axis=1), tokens)
        count += tokens.shape[0] * (tokens.shape[1] - 1)
    return float(np.exp(total / count))


def simulate_io(qm: QuantizedModel, tokens: np.ndarray) -> tuple[list[dict], list[dict]]:
    """Per decode step: the step graph's inputs (token and state) and the qdq simulator's outputs."""
    sim, state, feeds, outputs = QdqSimulator(qm), _zero_state(qm), [], []
    for token in tokens:
        feed = {"tokens": np.array([token], np.int64), **state}
        env = sim.run(qm.graphs["step"], feed)
        feeds.append(feed)
        outputs.append({k: np.asarray(v, np.float32) for k, v in env.items()})
        state = {k: env[k + "_out"] for k in state}
    return feeds, outputs
