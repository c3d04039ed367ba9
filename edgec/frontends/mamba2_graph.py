"""Build the prefill and step graphs of a Mamba-2 language model from its spec.

Per layer: x += out_proj(rmsnorm_groups(ssd(x, dt, B, C) * silu(z))) on rmsnorm(x), where z | xBC | dt
come from in_proj and x | B | C from silu(conv1d(xBC)); finally norm_f and lm_head. The conv's output is split
into x | B | C before the (elementwise) silu, one silu per part, so that each part gets its own int8 scales
at the conv output and after the silu (the conv's ``segments`` attr, like in_proj's). The step graph
carries each layer's conv window and SSM state as explicit state.
"""

from __future__ import annotations

from edgec.frontends.graph_builder import GraphBuilder
from edgec.frontends.mamba2_spec import Mamba2Spec
from edgec.ir import Graph, Op, Value

__all__ = ["build_graphs", "state_names"]


def state_names(layer: int) -> tuple[str, str]:
    """Names of a layer's (conv, ssm) state inputs in the step graph; outputs add "_out"."""
    return f"l{layer}.conv_state", f"l{layer}.ssm_state"


def _build(spec: Mamba2Spec, step: bool) -> Graph:
    d, e, h, g = spec.hidden_size, spec.intermediate_size, spec.num_heads, spec.n_groups
    gn, conv_dim = spec.n_groups * spec.state_size, spec.conv_dim
    lead: tuple[int | str, ...] = ("B",) if step else ("B", "L")
    b = GraphBuilder(lead, [Value("tokens", lead, "i64")])
    inputs, state_outputs = ["tokens"], []
    b.add(Op.EMBED, "embed", ["tokens"], {"h0": d}, {"weight": "backbone.embeddings.weight"})
    x = "h0"
    low, high = spec.time_step_limit
    ssd_attrs = {"heads": h, "groups": g, "dt_min": float(low), "dt_max": float(high)}
    for i in range(spec.num_hidden_layers):
        p, w = f"l{i}.", f"backbone.layers.{i}."
        m = w + "mixer."
        b.add(Op.RMSNORM, f"layers.{i}.norm", [x], {p + "norm": d}, {"weight": w + "norm.weight"},
              eps=spec.layer_norm_epsilon)
        bias = {"bias": m + "in_proj.bias"} if spec.use_bias else {}
        b.add(Op.LINEAR, f"layers.{i}.in_proj", [p + "norm"], {p + "zxbcdt": sum(spec.in_proj_segments)},
              {"weight": m + "in_proj.weight"} | bias, segments=spec.in_proj_segments)
        b.add(Op.SPLIT, f"layers.{i}.split_zxbcdt", [p + "zxbcdt"],
              {p + "z": e, p + "xBC": conv_dim, p + "dt_raw": h}, sizes=spec.in_proj_segments)
        conv_w = {"weight": m + "conv1d.weight"} | ({"bias": m + "conv1d.bias"} if spec.use_conv_bias else {})
        shapes = spec.state_shapes()
        if step:
            cs, ss = state_names(i)
            b.values[cs] = Value(cs, ("B", *shapes["conv"]))
            b.values[ss] = Value(ss, ("B", *shapes["ssm"]))
            inputs += [cs, ss]
            state_outputs += [cs + "_out", ss + "_out"]
            b.add(Op.CONV1D_STEP, f"layers.{i}.conv1d", [p + "xBC", cs], {p + "xBCc": conv_dim,
                                                                           cs + "_out": shapes["conv"]}, conv_w,
                  segments=(e, gn, gn))
        else:
            b.add(Op.CONV1D_CAUSAL, f"layers.{i}.conv1d", [p + "xBC"], {p + "xBCc": conv_dim}, conv_w,
                  segments=(e, gn, gn))
        b.add(Op.SPLIT, f"layers.{i}.split_xBC", [p + "xBCc"], {p + "xc": e, p + "Bc": gn, p + "Cc": gn},
              sizes=(e, gn, gn))
        for part, width in (("x", e), ("B", gn), ("C", gn)):
            b.add(Op.SILU, f"layers.{i}.{part}_act", [p + part + "c"], {p + part: width})
        ssd_w = {"A_log": m + "A_log", "D": m + "D", "dt_bias": m + "dt_bias"}
        ssd_in = [p + "x", p + "dt_raw", p + "B", p + "C"]
        if step:
            b.add(Op.SSD_STEP, f"layers.{i}.ssd", [*ssd_in, ss], {p + "y": e, ss + "_out": shapes["ssm"]}, ssd_w,
                  **ssd_attrs)
        else:
            b.add(Op.SSD_SCAN, f"layers.{i}.ssd", ssd_in, {p + "y": e}, ssd_w, **ssd_attrs, chunk=spec.chunk_size)
        b.add(Op.SILU, f"layers.{i}.gate_act", [p + "z"], {p + "g": e})
        b.add(Op.MUL, f"layers.{i}.gate", [p + "y", p + "g"], {p + "yg": e})
        b.add(Op.RMSNORM, f"layers.{i}.gated_norm", [p + "yg"], {p + "yn": e}, {"weight": m + "norm.weight"},
              eps=spec.layer_norm_epsilon, groups=g)
        bias = {"bias": m + "out_proj.bias"} if spec.use_bias else {}
        b.add(Op.LINEAR, f"layers.{i}.out_proj", [p + "yn"], {p + "o": d}, {"weight": m + "out_proj.weight"} | bias,
              segments=(d,))
        b.add(Op.ADD, f"layers.{i}.residual", [x, p + "o"], {f"h{i + 1}": d})
        x = f"h{i + 1}"
    b.add(Op.RMSNORM, "norm_f", [x], {"nf": d}, {"weight": "backbone.norm_f.weight"}, eps=spec.layer_norm_epsilon)
    b.add(Op.LINEAR, "lm_head", ["nf"], {"logits": spec.vocab_size}, {"weight": spec.lm_head_name},
          segments=(spec.vocab_size,))
    return Graph("step" if step else "prefill", b.nodes, b.values, inputs, ["logits", *state_outputs])


def build_graphs(spec: Mamba2Spec) -> dict[str, Graph]:
    """Both entry graphs of the model: "prefill" and "step"."""
    return {"prefill": _build(spec, step=False), "step": _build(spec, step=True)}
