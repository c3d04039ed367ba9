"""Build the prefill and step graphs of a Mamba language model from its spec."""

from __future__ import annotations

from edgec.frontends.graph_builder import GraphBuilder
from edgec.frontends.mamba_spec import MambaSpec
from edgec.ir import Graph, Op, Value

__all__ = ["build_graphs", "state_names"]


def state_names(layer: int) -> tuple[str, str]:
    """Names of a layer's (conv, ssm) state inputs in the step graph; outputs add "_out"."""
    return f"l{layer}.conv_state", f"l{layer}.ssm_state"


def _weights(module: str, bias: bool) -> dict[str, str]:
    """The weight of ``module``, and its bias if it has one."""
    return {"weight": module + ".weight"} | ({"bias": module + ".bias"} if bias else {})


def _conv(b: GraphBuilder, spec: MambaSpec, i: int, states: tuple[str, str] | None) -> None:
    """Layer ``i``'s causal conv1d and silu, x -> u; in the step graph, over the conv window in ``states``."""
    e, k, p = spec.intermediate_size, spec.conv_kernel, f"l{i}."
    weights = _weights(f"backbone.layers.{i}.mixer.conv1d", spec.use_conv_bias)
    if states is None:
        b.add(Op.CONV1D_CAUSAL, f"layers.{i}.conv1d", [p + "x"], {p + "xc": e}, weights)
    else:
        cs, ss = states
        b.values[cs] = Value(cs, ("B", e, k - 1))
        b.values[ss] = Value(ss, ("B", e, spec.state_size))
        b.add(Op.CONV1D_STEP, f"layers.{i}.conv1d", [p + "x", cs], {p + "xc": e, cs + "_out": (e, k - 1)}, weights)
    b.add(Op.SILU, f"layers.{i}.conv_act", [p + "xc"], {p + "u": e})


def _scan(b: GraphBuilder, spec: MambaSpec, i: int, states: tuple[str, str] | None) -> None:
    """Layer ``i``'s selective scan of u -> y, with dt, B and C projected from u; in the step graph, one step."""
    e, n, r, p = spec.intermediate_size, spec.state_size, spec.time_step_rank, f"l{i}."
    m = f"backbone.layers.{i}.mixer."
    b.add(Op.LINEAR, f"layers.{i}.x_proj", [p + "u"], {p + "dbc": r + 2 * n}, {"weight": m + "x_proj.weight"},
          segments=(r, n, n))
    b.add(Op.SPLIT, f"layers.{i}.split_dbc", [p + "dbc"], {p + "dtr": r, p + "B": n, p + "C": n}, sizes=(r, n, n))
    b.add(Op.LINEAR, f"layers.{i}.dt_proj", [p + "dtr"], {p + "dtp": e}, _weights(m + "dt_proj", bias=True),
          segments=(e,))
    b.add(Op.SOFTPLUS, f"layers.{i}.dt_act", [p + "dtp"], {p + "dt": e})
    scan_in, scan_w = [p + "u", p + "dt", p + "B", p + "C"], {"A_log": m + "A_log", "D": m + "D"}
    if states is None:
        b.add(Op.SELECTIVE_SCAN, f"layers.{i}.scan", scan_in, {p + "y": e}, scan_w)
    else:
        ss = states[1]
        b.add(Op.SCAN_STEP, f"layers.{i}.scan", [*scan_in, ss], {p + "y": e, ss + "_out": (e, n)}, scan_w)


def _mixer(b: GraphBuilder, spec: MambaSpec, i: int, states: tuple[str, str] | None) -> str:
    """Layer ``i``'s mixer on its normed input: out_proj(scan(silu(conv1d(x))) * silu(z)) with x | z = in_proj.

    ``states`` names the step graph's (conv, ssm) state inputs, None in the prefill graph; returns the output.
    """
    d, e, p = spec.hidden_size, spec.intermediate_size, f"l{i}."
    m = f"backbone.layers.{i}.mixer."
    b.add(Op.LINEAR, f"layers.{i}.in_proj", [p + "norm"], {p + "xz": 2 * e}, _weights(m + "in_proj", spec.use_bias),
          segments=(e, e))
    b.add(Op.SPLIT, f"layers.{i}.split_xz", [p + "xz"], {p + "x": e, p + "z": e}, sizes=(e, e))
    _conv(b, spec, i, states)
    _scan(b, spec, i, states)
    b.add(Op.SILU, f"layers.{i}.gate_act", [p + "z"], {p + "g": e})
    b.add(Op.MUL, f"layers.{i}.gate", [p + "y", p + "g"], {p + "yg": e})
    b.add(Op.LINEAR, f"layers.{i}.out_proj", [p + "yg"], {p + "o": d}, _weights(m + "out_proj", spec.use_bias),
          segments=(d,))
    return p + "o"


def _build(spec: MambaSpec, step: bool) -> Graph:
    d = spec.hidden_size
    lead: tuple[int | str, ...] = ("B",) if step else ("B", "L")
    b = GraphBuilder(lead, [Value("tokens", lead, "i64")])
    inputs, state_outputs = ["tokens"], []
    b.add(Op.EMBED, "embed", ["tokens"], {"h0": d}, {"weight": "backbone.embeddings.weight"})
    h = "h0"
    for i in range(spec.num_hidden_layers):
        states = state_names(i) if step else None
        if states is not None:
            inputs += states
            state_outputs += [s + "_out" for s in states]
        b.add(Op.RMSNORM, f"layers.{i}.norm", [h], {f"l{i}.norm": d}, {"weight": f"backbone.layers.{i}.norm.weight"},
              eps=spec.layer_norm_epsilon)
        b.add(Op.ADD, f"layers.{i}.residual", [h, _mixer(b, spec, i, states)], {f"h{i + 1}": d})
        h = f"h{i + 1}"
    b.add(Op.RMSNORM, "norm_f", [h], {"nf": d}, {"weight": "backbone.norm_f.weight"}, eps=spec.layer_norm_epsilon)
    b.add(Op.LINEAR, "lm_head", ["nf"], {"logits": spec.vocab_size}, {"weight": spec.lm_head_name},
          segments=(spec.vocab_size,))
    return Graph("step" if step else "prefill", b.nodes, b.values, inputs, ["logits", *state_outputs])


def build_graphs(spec: MambaSpec) -> dict[str, Graph]:
    """Both entry graphs of the model: "prefill" and "step"."""
    return {"prefill": _build(spec, step=False), "step": _build(spec, step=True)}
