"""Graph invariants, one table entry per op: arity, and that every value is defined before use."""

from __future__ import annotations

from collections.abc import Container

from edgec.errors import PassError
from edgec.ir.graph import Graph
from edgec.ir.ops import Op

__all__ = ["ARITY", "verify_graph"]

#: (number of inputs, number of outputs, required weight roles) of every op.
ARITY: dict[Op, tuple[int, int, frozenset[str]]] = {
    Op.EMBED: (1, 1, frozenset({"weight"})),
    Op.RMSNORM: (1, 1, frozenset()),
    Op.LINEAR: (1, 1, frozenset({"weight"})),
    Op.SPLIT: (1, -1, frozenset()),
    Op.CONV1D_CAUSAL: (1, 1, frozenset({"weight"})),
    Op.CONV1D_STEP: (2, 2, frozenset({"weight"})),
    Op.SILU: (1, 1, frozenset()),
    Op.SOFTPLUS: (1, 1, frozenset()),
    Op.SELECTIVE_SCAN: (4, 1, frozenset({"A_log", "D"})),
    Op.SCAN_STEP: (5, 2, frozenset({"A_log", "D"})),
    Op.SSD_SCAN: (4, 1, frozenset({"A_log", "D", "dt_bias"})),
    Op.SSD_STEP: (5, 2, frozenset({"A_log", "D", "dt_bias"})),
    Op.MUL: (2, 1, frozenset()),
    Op.ADD: (2, 1, frozenset()),
    Op.HADAMARD: (1, 1, frozenset()),
    Op.SIGMOID: (1, 1, frozenset()),
    Op.SOFTCAP: (1, 1, frozenset()),
    Op.HEAD_LAYERNORM: (1, 1, frozenset()),
    Op.MLSTM_SEQUENCE: (5, 1, frozenset()),
    Op.MLSTM_STEP: (8, 4, frozenset()),
    Op.NORMALIZE_IMAGE: (1, 1, frozenset()),
    Op.PATCH_EMBED: (1, 1, frozenset({"weight", "bias"})),
    Op.CLS_POS: (1, 1, frozenset({"cls", "pos"})),
    Op.LAYERNORM: (1, 1, frozenset()),
    Op.ATTN_SCORES: (2, 1, frozenset()),
    Op.SOFTMAX: (1, 1, frozenset()),
    Op.ATTN_CONTEXT: (2, 1, frozenset()),
    Op.GELU: (1, 1, frozenset()),
    Op.ROUTE_LOGITS: (1, 1, frozenset({"weight"})),
    Op.TOPK: (1, 2, frozenset()),
    Op.MOE: (3, 1, frozenset({"fc1_weight", "fc2_weight"})),
    Op.CLS_POOL: (1, 1, frozenset()),
}


def verify_graph(graph: Graph, weights: Container[str] | None = None) -> None:
    """Raise PassError naming the first node that breaks an invariant."""
    defined = set(graph.inputs)
    for node in graph.nodes:
        n_in, n_out, roles = ARITY[node.op]
        where = f"graph {graph.name}, node {node.name} ({node.format(graph.values)})"
        if len(node.inputs) != n_in or (n_out >= 0 and len(node.outputs) != n_out):
            raise PassError(f"{where}: expects {n_in} inputs and {n_out} outputs")
        if node.op is Op.SPLIT and len(node.outputs) != len(node.attrs.get("sizes", ())):
            raise PassError(f"{where}: one output per split size")
        missing_roles = roles - set(node.weights)
        if missing_roles:
            raise PassError(f"{where}: missing weight(s) {', '.join(sorted(missing_roles))}")
        if weights is not None:
            for ref in node.weights.values():
                if ref not in weights:
                    raise PassError(f"{where}: weight @{ref} is not in the weight store")
        for name in node.inputs:
            if name not in defined:
                raise PassError(f"{where}: input %{name} is used before it is defined")
        for name in node.outputs:
            if name in defined:
                raise PassError(f"{where}: output %{name} is defined twice")
            if name not in graph.values:
                raise PassError(f"{where}: output %{name} has no type")
            defined.add(name)
    for name in graph.outputs:
        if name not in defined:
            raise PassError(f"graph {graph.name}: output %{name} is never produced")
