"""Build the prefill and step graphs of a Mamba language model from its spec."""

from __future__ import annotations

from edgec.frontends.mamba_spec import MambaSpec
from edgec.ir import Graph, Node, Op, Value

__all__ = ["build_graphs", "state_names"]


def state_names(layer: int) -> tuple[str, str]:
    """Names of a layer's (conv, ssm) state inputs in the step graph; outputs add "_out"."""
    return f"l{layer}.conv_state", f"l{layer}.ssm_state"


def _build(spec: MambaSpec, step: bool) -> Graph:
    d, e, n, r, k = (spec.hidden_size, spec.intermediate_size, spec.state_size, spec.time_step_rank,
                     spec.conv_kernel)
    lead: tuple[int | str, ...] = ("B",) if step else ("B", "L")
    values: dict[str, Value] = {}
    nodes: list[Node] = []
    inputs = ["tokens"]
    outputs: list[str] = []
    values["tokens"] = Value("tokens", lead, "i64")

    def add(op: Op, name: str, ins: list[str], outs: dict[str, int | tuple], weights=None, **attrs) -> None:
        for o, width in outs.items():
            shape = (*lead, *width) if isinstance(width, tuple) else (*lead, width)
            values[o] = Value(o, shape)
        nodes.append(Node(op, tuple(ins), tuple(outs), weights or {}, attrs, name))

    add(Op.EMBED, "embed", ["tokens"], {"h0": d}, {"weight": "backbone.embeddings.weight"})
    h = "h0"
    for i in range(spec.num_hidden_layers):
        p, w = f"l{i}.", f"backbone.layers.{i}."
        m = w + "mixer."
        add(Op.RMSNORM, f"layers.{i}.norm", [h], {p + "norm": d}, {"weight": w + "norm.weight"},
            eps=spec.layer_norm_epsilon)
        in_w = {"weight": m + "in_proj.weight"} | ({"bias": m + "in_proj.bias"} if spec.use_bias else {})
        add(Op.LINEAR, f"layers.{i}.in_proj", [p + "norm"], {p + "xz": 2 * e}, in_w, segments=(e, e))
        add(Op.SPLIT, f"layers.{i}.split_xz", [p + "xz"], {p + "x": e, p + "z": e}, sizes=(e, e))
        conv_w = {"weight": m + "conv1d.weight"} | ({"bias": m + "conv1d.bias"} if spec.use_conv_bias else {})
        if step:
            cs, ss = state_names(i)
            values[cs] = Value(cs, ("B", e, k - 1))
            values[ss] = Value(ss, ("B", e, n))
            inputs += [cs, ss]
            add(Op.CONV1D_STEP, f"layers.{i}.conv1d", [p + "x", cs], {p + "xc": e, cs + "_out": (e, k - 1)},
                conv_w)
        else:
            add(Op.CONV1D_CAUSAL, f"layers.{i}.conv1d", [p + "x"], {p + "xc": e}, conv_w)
        add(Op.SILU, f"layers.{i}.conv_act", [p + "xc"], {p + "u": e})
        add(Op.LINEAR, f"layers.{i}.x_proj", [p + "u"], {p + "dbc": r + 2 * n},
            {"weight": m + "x_proj.weight"}, segments=(r, n, n))
        add(Op.SPLIT, f"layers.{i}.split_dbc", [p + "dbc"], {p + "dtr": r, p + "B": n, p + "C": n},
            sizes=(r, n, n))
        add(Op.LINEAR, f"layers.{i}.dt_proj", [p + "dtr"], {p + "dtp": e},
            {"weight": m + "dt_proj.weight", "bias": m + "dt_proj.bias"}, segments=(e,))
        add(Op.SOFTPLUS, f"layers.{i}.dt_act", [p + "dtp"], {p + "dt": e})
        scan_w = {"A_log": m + "A_log", "D": m + "D"}
        if step:
            add(Op.SCAN_STEP, f"layers.{i}.scan", [p + "u", p + "dt", p + "B", p + "C", ss],
                {p + "y": e, ss + "_out": (e, n)}, scan_w)
            outputs += [cs + "_out", ss + "_out"]
        else:
            add(Op.SELECTIVE_SCAN, f"layers.{i}.scan", [p + "u", p + "dt", p + "B", p + "C"], {p + "y": e},
                scan_w)
        add(Op.SILU, f"layers.{i}.gate_act", [p + "z"], {p + "g": e})
        add(Op.MUL, f"layers.{i}.gate", [p + "y", p + "g"], {p + "yg": e})
        out_w = {"weight": m + "out_proj.weight"} | ({"bias": m + "out_proj.bias"} if spec.use_bias else {})
        add(Op.LINEAR, f"layers.{i}.out_proj", [p + "yg"], {p + "o": d}, out_w, segments=(d,))
        add(Op.ADD, f"layers.{i}.residual", [h, p + "o"], {f"h{i + 1}": d})
        h = f"h{i + 1}"
    add(Op.RMSNORM, "norm_f", [h], {"nf": d}, {"weight": "backbone.norm_f.weight"}, eps=spec.layer_norm_epsilon)
    add(Op.LINEAR, "lm_head", ["nf"], {"logits": spec.vocab_size}, {"weight": spec.lm_head_name},
        segments=(spec.vocab_size,))
    return Graph("step" if step else "prefill", nodes, values, inputs, ["logits", *outputs])


def build_graphs(spec: MambaSpec) -> dict[str, Graph]:
    """Both entry graphs of the model: "prefill" and "step"."""
    return {"prefill": _build(spec, step=False), "step": _build(spec, step=True)}
