"""Small helpers shared by tests: decode loops over the step graph."""

from __future__ import annotations

import numpy as np

from edgec.frontends.mamba_graph import state_names
from edgec.frontends.mamba_spec import MambaSpec


def zero_state(spec: MambaSpec, batch: int, dtype=np.float32) -> dict[str, np.ndarray]:
    feeds = {}
    for i in range(spec.num_hidden_layers):
        conv, ssm = state_names(i)
        feeds[conv] = np.zeros((batch, spec.intermediate_size, spec.conv_kernel - 1), dtype)
        feeds[ssm] = np.zeros((batch, spec.intermediate_size, spec.state_size), dtype)
    return feeds


def decode(interp, graph, spec: MambaSpec, tokens: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Run the step graph token by token over tokens [B, L]; return logits [B, L, V]."""
    state = zero_state(spec, tokens.shape[0], dtype)
    out = []
    for t in range(tokens.shape[1]):
        res = interp.run(graph, {"tokens": tokens[:, t], **state})
        state = {k: res[k + "_out"] for k in state}
        out.append(res["logits"])
    return np.stack(out, axis=1)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max |ref|."""
    return float(np.abs(a - ref).max() / np.abs(ref).max())
