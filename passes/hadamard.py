"""Online Hadamard rotation of every gated product read by a linear layer, the layer rotated offline.

A product a * b (Mamba's y * silu(z), xLSTM's sigmoid(o) * norm(h) and silu(gate) * up) is where the
activation outliers are (bench/bench_outliers.py measures them per linear input). y' = H_n y / sqrt(n)
spreads them over all channels before int8 quantization (Quamba); the LINEAR absorbs the inverse
rotation exactly: W' = [W, 0] H_n^T / sqrt(n). A product normalized before the LINEAR reads it (Mamba-2's
gated RMSNorm, norm(y * silu(z)) -> out_proj) is rotated after the norm, where it is quantized. A dimension
that is not K * 2^m for a known K is zero-padded to the next one that is, and the padding is reported.
"""

from __future__ import annotations

import numpy as np

from edgec.frontends.model import Model
from edgec.ir import Graph, Node, Op, Value
from edgec.numerics.hadamard import HadamardPlan, hadamard_transform_float, plan_hadamard
from edgec.passes.base import PassResult

__all__ = ["rotate_gated_products", "rotated_linears"]


def rotated_linears(graph: Graph) -> list[Node]:
    """The LINEAR nodes the recipe rotates: those reading a gated product (a MUL) or the norm of one (Mamba-2's
    gated RMSNorm), where the outliers are."""
    gated = {n.outputs[0] for n in graph.nodes if n.op is Op.MUL}
    gated |= {n.outputs[0] for n in graph.nodes if n.op is Op.RMSNORM and n.inputs[0] in gated}
    return [n for n in graph.nodes if n.op is Op.LINEAR and n.inputs[0] in gated]


def rotate_gated_products(model: Model) -> PassResult:
    weights = model.weights.copy()
    graphs = {}
    notes: list[str] = []
    for key, graph in model.graphs.items():
        graph = graph.copy()
        for out_proj in rotated_linears(graph):
            src = out_proj.inputs[0]
            dim = graph.values[src].shape[-1]
            plan = plan_hadamard(int(dim))
            rotated_name = out_proj.weights["weight"] + "@hadamard"
            if rotated_name not in weights:
                wname = out_proj.weights["weight"]
                weights.derive(rotated_name, (weights.shape(wname)[0], plan.padded_dim), _rotated(wname, plan))
                if plan.pad and key == "prefill":
                    notes.append(f"{out_proj.name}: dim {dim} padded to {plan.padded_dim} "
                                 f"= {plan.k} x 2^{plan.m} (+{plan.pad} zero channels)")
            rotated = src + "_rot"
            value = graph.values[src]
            had = Node(Op.HADAMARD, (src,), (rotated,), {}, {"plan": plan}, out_proj.name + ".hadamard")
            graph.insert_after(graph.producer(src), had,
                               [Value(rotated, (*value.shape[:-1], plan.padded_dim), value.dtype)])
            graph.replace_all_uses(src, rotated, skip=had)
            new_out = graph.users(rotated)[0]
            graph.replace_node(new_out, Node(new_out.op, new_out.inputs, new_out.outputs,
                                             {**new_out.weights, "weight": rotated_name}, new_out.attrs,
                                             new_out.name))
        graphs[key] = graph
    return PassResult(model.with_graphs(graphs, weights), True, tuple(notes))


def _rotated(name: str, plan: HadamardPlan):
    """The derivation of W' = [W, 0] H^T / sqrt(n): each row of W rotated by the fast transform (in float64)."""
    def derive(store) -> np.ndarray:
        return hadamard_transform_float(store.read(name).astype(np.float64), plan).astype(np.float32)
    return derive
