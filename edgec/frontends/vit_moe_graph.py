"""Build the entry graphs of a ViT-MoE from its spec: one graph per task, "task/<name>".

Each graph takes ``images`` u8 [B, H, W, C] (RGB, channels last) and returns ``logits`` [B, classes]:
normalize and patch-embed, prepend the cls token and add the position embedding, then per block
x += proj(attention(norm1(x))) and x += mlp(norm2(x)), where an MoE block's mlp routes each token
(gate matmul, softmax, top-k) to its experts; finally the cls token, the final norm and the task's head.
Attention is three ops, so that both activation x activation products are visible to passes:
q k^T * scale (ATTN_SCORES), SOFTMAX, and probs @ v (ATTN_CONTEXT).

Why one graph per task rather than one graph with a task input:
- the task is a compile-time choice (issue 9): each graph's gate weights and head are constants. A
  task input would turn them into gathered activations, which TensorRT's explicit quantization cannot
  treat as per-channel int8 weights, and heads of different widths would need padding and masking;
- every graph has static shapes (its own number of classes), as static-shape ONNX for TensorRT needs;
- the graphs share every value name and every weight except the gates and the head, so a target that
  wants the task at run time (the FPGA top) merges them: one datapath, a task index selecting the gate
  and head weight addresses. Quantization must then give a shared value one scale across the task
  graphs (calibrate over all tasks), which the shared names make explicit.
"""

from __future__ import annotations

from edgec.frontends.graph_builder import GraphBuilder
from edgec.frontends.vit_moe_spec import VitMoeSpec
from edgec.ir import Graph, Op, Value

__all__ = ["build_graphs", "graph_name"]


def graph_name(task: str) -> str:
    """The name of ``task``'s entry graph."""
    return f"task/{task}"


def _layernorm(g: GraphBuilder, spec: VitMoeSpec, name: str, x: str, out: str, width: tuple[int, ...]) -> str:
    g.add(Op.LAYERNORM, name, [x], {out: width}, {"weight": name + ".weight", "bias": name + ".bias"},
          eps=spec.norm_eps)
    return out


def _attention(g: GraphBuilder, spec: VitMoeSpec, b: int, x: str) -> str:
    """Block ``b``'s attention on normed tokens ``x``; returns its output (after proj)."""
    p, w, t, d, h = f"b{b}.", f"blocks.{b}.attn.", spec.num_tokens, spec.embed_dim, spec.num_heads
    qkv = {"weight": w + "qkv.weight"} | ({"bias": w + "qkv.bias"} if spec.qkv_bias else {})
    g.add(Op.LINEAR, w + "qkv", [x], {p + "qkv": (t, 3 * d)}, qkv, segments=(d, d, d))
    g.add(Op.SPLIT, w + "split_qkv", [p + "qkv"], {p + "q": (t, d), p + "k": (t, d), p + "v": (t, d)}, sizes=(d, d, d))
    g.add(Op.ATTN_SCORES, w + "scores", [p + "q", p + "k"], {p + "scores": (h, t, t)}, heads=h,
          scale=(d // h) ** -0.5)
    g.add(Op.SOFTMAX, w + "softmax", [p + "scores"], {p + "probs": (h, t, t)})
    g.add(Op.ATTN_CONTEXT, w + "context", [p + "probs", p + "v"], {p + "context": (t, d)}, heads=h)
    g.add(Op.LINEAR, w + "proj", [p + "context"], {p + "attn_out": (t, d)},
          {"weight": w + "proj.weight", "bias": w + "proj.bias"}, segments=(d,))
    return p + "attn_out"


def _dense_mlp(g: GraphBuilder, spec: VitMoeSpec, b: int, x: str) -> str:
    p, w, t, d, hd = f"b{b}.", f"blocks.{b}.mlp.", spec.num_tokens, spec.embed_dim, spec.mlp_hidden
    g.add(Op.LINEAR, w + "fc1", [x], {p + "fc1": (t, hd)}, {"weight": w + "fc1.weight", "bias": w + "fc1.bias"},
          segments=(hd,))
    g.add(Op.GELU, w + "act", [p + "fc1"], {p + "act": (t, hd)})
    g.add(Op.LINEAR, w + "fc2", [p + "act"], {p + "mlp_out": (t, d)},
          {"weight": w + "fc2.weight", "bias": w + "fc2.bias"}, segments=(d,))
    return p + "mlp_out"


def _moe_mlp(g: GraphBuilder, spec: VitMoeSpec, b: int, x: str, task: str) -> str:
    """Route each token to its top_k experts (``task``'s gate) and mix their outputs."""
    p, w, t, e, k = f"b{b}.", f"blocks.{b}.mlp.", spec.num_tokens, spec.num_experts, spec.top_k
    gate = spec.gate_weight(b, task)  # the node is named after its weight: equal names, equal nodes across tasks
    g.add(Op.ROUTE_LOGITS, gate.removesuffix(".w_gate"), [x], {p + "route_logits": (t, e)}, {"weight": gate})
    g.add(Op.SOFTMAX, w + "route_softmax", [p + "route_logits"], {p + "route_probs": (t, e)})
    g.add(Op.TOPK, w + "route_topk", [p + "route_probs"], {p + "route_weights": (t, k), p + "route_experts": (t, k)},
          dtypes={p + "route_experts": "i64"}, k=k)
    experts = w + "experts."
    g.add(Op.MOE, w + "experts", [x, p + "route_weights", p + "route_experts"], {p + "mlp_out": (t, spec.embed_dim)},
          {"fc1_weight": experts + "htoh4.weight", "fc1_bias": experts + "htoh4.bias",
           "fc2_weight": experts + "h4toh.weight", "fc2_bias": experts + "h4toh.bias"}, experts=e,
          hidden=spec.moe_hidden)
    return p + "mlp_out"


def _build(spec: VitMoeSpec, task: str, classes: int) -> Graph:
    (h, w), c, d, t = spec.image_size, spec.in_chans, spec.embed_dim, spec.num_tokens
    g = GraphBuilder(("B",), [Value("images", ("B", h, w, c), "u8")])
    g.add(Op.NORMALIZE_IMAGE, "normalize", ["images"], {"pixels": (h, w, c)}, mean=spec.mean, std=spec.std)
    g.add(Op.PATCH_EMBED, "patch_embed.proj", ["pixels"], {"patches": (t - 1, d)},
          {"weight": "patch_embed.proj.weight", "bias": "patch_embed.proj.bias"}, patch=spec.patch_size)
    g.add(Op.CLS_POS, "cls_pos", ["patches"], {"x0": (t, d)}, {"cls": "cls_token", "pos": "pos_embed"})
    x = "x0"
    for b in range(spec.depth):
        p = f"b{b}."
        attn = _attention(g, spec, b, _layernorm(g, spec, f"blocks.{b}.norm1", x, p + "xn1", (t, d)))
        g.add(Op.ADD, f"blocks.{b}.residual_attn", [x, attn], {p + "x_mid": (t, d)})
        xn2 = _layernorm(g, spec, f"blocks.{b}.norm2", p + "x_mid", p + "xn2", (t, d))
        mlp = _moe_mlp(g, spec, b, xn2, task) if b in spec.moe_layers else _dense_mlp(g, spec, b, xn2)
        g.add(Op.ADD, f"blocks.{b}.residual_mlp", [p + "x_mid", mlp], {f"x{b + 1}": (t, d)})
        x = f"x{b + 1}"
    g.add(Op.CLS_POOL, "cls_pool", [x], {"cls": d})  # norm is per token: norm(x)[cls] == norm(x[cls])
    _layernorm(g, spec, "norm", "cls", "cls_normed", (d,))
    g.add(Op.LINEAR, f"heads.{task}", ["cls_normed"], {"logits": classes},
          {"weight": f"heads.{task}.weight", "bias": f"heads.{task}.bias"}, segments=(classes,))
    return Graph(graph_name(task), g.nodes, g.values, ["images"], ["logits"])


def build_graphs(spec: VitMoeSpec) -> dict[str, Graph]:
    """One entry graph per task, in the order of ``tasks``."""
    return {graph_name(task): _build(spec, task, classes) for task, classes in spec.tasks}
