"""Build the prefill and step graphs of an xLSTM language model from its spec.

Per block: x += out_proj(sigmoid(o) * head_layernorm(mLSTM(q, k, v, softcap(i), softcap(f))))
on rmsnorm(x), then x += proj_down(silu(gate) * up) on rmsnorm(x); finally rmsnorm, lm_head and
the logit soft cap. The step graph carries each block's (C, n, m) as explicit state.
"""

from __future__ import annotations

from edgec.frontends.graph_builder import GraphBuilder
from edgec.frontends.xlstm_spec import XlstmSpec
from edgec.ir import Graph, Op, Value

__all__ = ["build_graphs", "state_names"]


def state_names(block: int) -> tuple[str, str, str]:
    """Names of a block's (C, n, m) state inputs in the step graph; outputs add "_out"."""
    return f"b{block}.C", f"b{block}.n", f"b{block}.m"


def _projections(g: GraphBuilder, spec: XlstmSpec, b: int, x: str) -> tuple[str, str, str, str, str, str]:
    """q, k, v, o and the soft-capped gate pre-activations i, f of block ``b`` from its normed input ``x``."""
    p, m = f"b{b}.", f"backbone.blocks.{b}.mlstm_layer."
    qk, v, h = spec.qk_dim, spec.v_dim, spec.num_heads
    names = [p + n for n in ("q", "k", "v", "o", "i_raw", "f_raw")]
    if spec.weight_mode == "single":
        for out, (weight, width) in zip(names[:4], (("q", qk), ("k", qk), ("v", v), ("ogate_preact", v)),
                                        strict=True):
            g.add(Op.LINEAR, f"blocks.{b}.{weight}", [x], {out: width}, {"weight": m + weight + ".weight"},
                  segments=(width,))
        for out, weight in zip(names[4:], ("igate_preact", "fgate_preact"), strict=True):
            g.add(Op.LINEAR, f"blocks.{b}.{weight}", [x], {out: h},
                  {"weight": m + weight + ".weight", "bias": m + weight + ".bias"}, segments=(h,))
    else:
        sizes = (qk, qk, v, v)
        g.add(Op.LINEAR, f"blocks.{b}.qkv_opreact", [x], {p + "qkvo": sum(sizes)},
              {"weight": m + "qkv_opreact.weight"}, segments=sizes)
        g.add(Op.SPLIT, f"blocks.{b}.split_qkvo", [p + "qkvo"], dict(zip(names[:4], sizes, strict=True)), sizes=sizes)
        g.add(Op.LINEAR, f"blocks.{b}.ifgate_preact", [x], {p + "if": 2 * h},
              {"weight": m + "ifgate_preact.weight", "bias": m + "ifgate_preact.bias"}, segments=(h, h))
        g.add(Op.SPLIT, f"blocks.{b}.split_if", [p + "if"], {names[4]: h, names[5]: h}, sizes=(h, h))
    gates = names[4:]
    if spec.gate_soft_cap is not None:
        for raw, gate in zip(names[4:], ("i", "f"), strict=True):
            g.add(Op.SOFTCAP, f"blocks.{b}.{gate}gate_cap", [raw], {p + gate: h}, cap=spec.gate_soft_cap)
        gates = [p + "i", p + "f"]
    return names[0], names[1], names[2], names[3], gates[0], gates[1]


def _ffn(g: GraphBuilder, spec: XlstmSpec, b: int, x: str) -> str:
    """The SiLU-gated feed-forward of block ``b`` on ``x``; returns its output value."""
    p, w, f = f"b{b}.", f"backbone.blocks.{b}.ffn.", spec.ffn_dim
    if spec.weight_mode == "single":
        g.add(Op.LINEAR, f"blocks.{b}.proj_up_gate", [x], {p + "gate_raw": f}, {"weight": w + "proj_up_gate.weight"},
              segments=(f,))
        g.add(Op.LINEAR, f"blocks.{b}.proj_up", [x], {p + "up": f}, {"weight": w + "proj_up.weight"}, segments=(f,))
    else:
        g.add(Op.LINEAR, f"blocks.{b}.proj_up_gate_z", [x], {p + "gate_up": 2 * f},
              {"weight": w + "proj_up_gate_z.weight"}, segments=(f, f))
        g.add(Op.SPLIT, f"blocks.{b}.split_gate_up", [p + "gate_up"], {p + "gate_raw": f, p + "up": f}, sizes=(f, f))
    g.add(Op.SILU, f"blocks.{b}.ffn_act", [p + "gate_raw"], {p + "gate": f})
    g.add(Op.MUL, f"blocks.{b}.ffn_gate", [p + "gate", p + "up"], {p + "ffn_h": f})
    g.add(Op.LINEAR, f"blocks.{b}.proj_down", [p + "ffn_h"], {p + "ffn_out": spec.hidden_size},
          {"weight": w + "proj_down.weight"}, segments=(spec.hidden_size,))
    return p + "ffn_out"


def _build(spec: XlstmSpec, step: bool) -> Graph:
    d, v, h = spec.hidden_size, spec.v_dim, spec.num_heads
    lead: tuple[int | str, ...] = ("B",) if step else ("B", "L")
    g = GraphBuilder(lead, [Value("tokens", lead, "i64")])
    inputs, state_outputs = ["tokens"], []
    g.add(Op.EMBED, "embed", ["tokens"], {"x0": d}, {"weight": "backbone.embeddings.weight"})
    x = "x0"
    for b in range(spec.num_hidden_layers):
        p, w = f"b{b}.", f"backbone.blocks.{b}."
        g.add(Op.RMSNORM, f"blocks.{b}.norm_mlstm", [x], {p + "xn": d}, {"weight": w + "norm_mlstm.weight"},
              eps=spec.norm_eps)
        q, k, val, o, i, f = _projections(g, spec, b, p + "xn")
        cell = {"heads": h, "eps": spec.eps}
        if step:
            names = state_names(b)
            shapes = spec.state_shapes()
            for name, key in zip(names, ("C", "n", "m"), strict=True):
                g.values[name] = Value(name, ("B", *shapes[key]))
            inputs += names
            state_outputs += [n + "_out" for n in names]
            g.add(Op.MLSTM_STEP, f"blocks.{b}.mlstm", [q, k, val, i, f, *names],
                  {p + "h": v, **{n + "_out": shapes[key] for n, key in zip(names, ("C", "n", "m"), strict=True)}},
                  **cell)
        else:
            g.add(Op.MLSTM_SEQUENCE, f"blocks.{b}.mlstm", [q, k, val, i, f], {p + "h": v}, **cell,
                  chunk=spec.chunk_size)
        g.add(Op.HEAD_LAYERNORM, f"blocks.{b}.multihead_norm", [p + "h"], {p + "hn": v},
              {"weight": w + "mlstm_layer.multihead_norm.weight"}, heads=h, eps=spec.norm_eps)
        g.add(Op.SIGMOID, f"blocks.{b}.ogate_act", [o], {p + "og": v})
        g.add(Op.MUL, f"blocks.{b}.ogate", [p + "og", p + "hn"], {p + "ho": v})
        g.add(Op.LINEAR, f"blocks.{b}.out_proj", [p + "ho"], {p + "mlstm_out": d},
              {"weight": w + "mlstm_layer.out_proj.weight"}, segments=(d,))
        g.add(Op.ADD, f"blocks.{b}.residual_mlstm", [x, p + "mlstm_out"], {p + "x_mid": d})
        g.add(Op.RMSNORM, f"blocks.{b}.norm_ffn", [p + "x_mid"], {p + "xf": d}, {"weight": w + "norm_ffn.weight"},
              eps=spec.norm_eps)
        g.add(Op.ADD, f"blocks.{b}.residual_ffn", [p + "x_mid", _ffn(g, spec, b, p + "xf")], {f"x{b + 1}": d})
        x = f"x{b + 1}"
    g.add(Op.RMSNORM, "out_norm", [x], {"xo": d}, {"weight": "backbone.out_norm.weight"}, eps=spec.norm_eps)
    logits = "logits_raw" if spec.output_logit_soft_cap is not None else "logits"
    g.add(Op.LINEAR, "lm_head", ["xo"], {logits: spec.vocab_size}, {"weight": "lm_head.weight"},
          segments=(spec.vocab_size,))
    if spec.output_logit_soft_cap is not None:
        g.add(Op.SOFTCAP, "logit_cap", [logits], {"logits": spec.vocab_size}, cap=spec.output_logit_soft_cap)
    return Graph("step" if step else "prefill", g.nodes, g.values, inputs, ["logits", *state_outputs])


def build_graphs(spec: XlstmSpec) -> dict[str, Graph]:
    """Both entry graphs of the model: "prefill" and "step"."""
    return {"prefill": _build(spec, step=False), "step": _build(spec, step=True)}
