"""Graphs to and from JSON (deterministic: sorted keys, tuples as lists; strict JSON has no Infinity, so an
infinite float attr, e.g. ssd_scan's dt_max, is written as transformers writes it: {"__float__": "Infinity"})."""

from __future__ import annotations

import math
from typing import Any

from edgec.ir.graph import Graph, Node, Value
from edgec.ir.ops import Op
from edgec.numerics.hadamard import HadamardPlan

__all__ = ["graph_from_json", "graph_to_json"]


_INFINITIES = {"Infinity": math.inf, "-Infinity": -math.inf}


def _attr_out(v: Any) -> Any:
    if isinstance(v, HadamardPlan):
        return {"hadamard_plan": [v.dim, v.k, v.m, v.padded_dim, v.pad]}
    if isinstance(v, float) and math.isinf(v):
        return {"__float__": "Infinity" if v > 0 else "-Infinity"}
    return list(v) if isinstance(v, tuple) else v


def _attr_in(v: Any) -> Any:
    if isinstance(v, dict) and "hadamard_plan" in v:
        dim, k, m, padded, pad = v["hadamard_plan"]
        return HadamardPlan(dim=dim, k=k, m=m, padded_dim=padded, pad=pad)
    if isinstance(v, dict) and set(v) == {"__float__"} and v["__float__"] in _INFINITIES:
        return _INFINITIES[v["__float__"]]
    return tuple(v) if isinstance(v, list) else v


def graph_to_json(graph: Graph) -> dict[str, Any]:
    return {
        "name": graph.name,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "values": {k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in graph.values.items()},
        "nodes": [{"op": n.op.value, "name": n.name, "inputs": list(n.inputs), "outputs": list(n.outputs),
                   "weights": dict(n.weights), "attrs": {k: _attr_out(v) for k, v in n.attrs.items()}}
                  for n in graph.nodes],
    }


def graph_from_json(data: dict[str, Any]) -> Graph:
    values = {k: Value(k, tuple(v["shape"]), v["dtype"]) for k, v in data["values"].items()}
    nodes = [Node(Op(n["op"]), tuple(n["inputs"]), tuple(n["outputs"]), n["weights"],
                  {k: _attr_in(v) for k, v in n["attrs"].items()}, n["name"]) for n in data["nodes"]]
    return Graph(data["name"], nodes, values, list(data["inputs"]), list(data["outputs"]))
