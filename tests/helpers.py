"""Small helpers shared by tests: decode loops over the step graph."""

from __future__ import annotations

import numpy as np

from edgec.ir import Graph


def zero_state(graph: Graph, batch: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """Zeros for every state input of a step graph (any family: the shapes come from the graph)."""
    return {name: np.zeros((batch, *graph.values[name].shape[1:]), dtype) for name in graph.inputs if name != "tokens"}


def decode(interp, graph: Graph, spec, tokens: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Run the step graph token by token over tokens [B, L]; return logits [B, L, V]."""
    state = zero_state(graph, tokens.shape[0], dtype)
    out = []
    for t in range(tokens.shape[1]):
        res = interp.run(graph, {"tokens": tokens[:, t], **state})
        state = {k: res[k + "_out"] for k in state}
        out.append(res["logits"])
    return np.stack(out, axis=1)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max |ref|."""
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def quantize_bundled(name: str):
    """(float model, QuantizedModel) of a bundled language model, calibrated on its bundled text."""
    import edgec
    from edgec.data import calibration_batches
    from edgec.zoo import BUNDLED

    entry = BUNDLED[name]
    model = edgec.load_checkpoint(entry.folder)
    return model, edgec.quantize(model, calibration_batches(model, entry.calib))


def run_kernel(driver, tmp_path, kernel: str, *parts) -> np.ndarray:
    """Run one kernel of a compiled test driver on int64 ``parts`` (flattened in order) and read its int64 output."""
    from edgec.hls.toolchain import run_program

    data = np.concatenate([np.asarray(p, dtype=np.int64).reshape(-1) for p in parts])
    data.astype("<i8").tofile(tmp_path / "in.bin")
    run_program(driver, [kernel, tmp_path / "in.bin", tmp_path / "out.bin"])
    return np.fromfile(tmp_path / "out.bin", "<i8")


def check_first_layers_twins(qm, tokens: np.ndarray, chunk: int, layers: int = 2) -> None:
    """The float twins cut to the first ``layers`` layers (export.first_layers) carry fewer weights, have no logits,
    and compute those layers' state bit for bit as the full twins do, by stepping and by prefill."""
    from edgec.targets.onnx.export import export_step_float, first_layers, state_shapes
    from edgec.targets.onnx.prefill import export_prefill_float
    from edgec.targets.onnx.verify import decode as decode_onnx
    from edgec.targets.onnx.verify import ort_session

    cut = first_layers(qm, layers)
    states = list(state_shapes(qm.graphs["step"]))
    kept = list(state_shapes(cut.graphs["step"]))
    assert kept == states[:len(states) // qm.spec.num_hidden_layers * min(layers, qm.spec.num_hidden_layers)]
    seq = np.asarray(tokens, np.int64)[None]
    for full, part in ((export_step_float(qm, None), export_step_float(cut, None)),
                       (export_prefill_float(qm, None, chunk), export_prefill_float(cut, None, chunk))):
        assert [o.name for o in part.graph.output] == [s + "_out" for s in kept]
        assert _weight_bytes(part) < _weight_bytes(full)
        logits, part_state = decode_onnx(ort_session(part), seq)
        assert logits is None
        full_state = decode_onnx(ort_session(full), seq)[1]
        for name in kept:
            np.testing.assert_array_equal(part_state[name], full_state[name], err_msg=name)


def _weight_bytes(model) -> int:
    return sum(len(i.raw_data) for i in model.graph.initializer)
