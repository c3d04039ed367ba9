"""A small typed graph IR: values, nodes and one graph per entry point (prefill, step).

Nodes are immutable; a graph is an ordered (topological) list of nodes. Weights are referenced by
name and live in a separate store, so a graph never holds tensors. Rewrites go through
``Graph.replace_all_uses`` and ``Graph.insert_after`` so user lists stay correct.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from edgec.ir.ops import Op

__all__ = ["Graph", "Node", "Value", "entry_graphs", "upstream"]


@dataclass(frozen=True, slots=True)
class Value:
    """A tensor flowing through a graph: name, symbolic shape (ints or names like "B", "L"), dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "f32"

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True, slots=True)
class Node:
    """One op application. ``weights`` maps a role ("weight", "bias", ...) to a weight-store name."""

    op: Op
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: Mapping[str, str] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def with_inputs(self, inputs: tuple[str, ...]) -> Node:
        return replace(self, inputs=inputs)

    def format(self, values: Mapping[str, Value]) -> str:
        outs = ", ".join(f"%{o} : {values[o]}" if o in values else f"%{o}" for o in self.outputs)
        args = [f"%{i}" for i in self.inputs] + [f"{k}=@{v}" for k, v in self.weights.items()]
        attrs = "".join(f" {k}={v!r}" for k, v in sorted(self.attrs.items()))
        label = f"  # {self.name}" if self.name else ""
        return f"{outs} = {self.op.value}({', '.join(args)}){' {' + attrs.strip() + '}' if attrs else ''}{label}"


@dataclass
class Graph:
    """An entry graph. ``inputs``/``outputs`` name values; state inputs pair with state outputs."""

    name: str
    nodes: list[Node]
    values: dict[str, Value]
    inputs: list[str]
    outputs: list[str]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __str__(self) -> str:
        head = f"graph {self.name}({', '.join(f'%{i} : {self.values[i]}' for i in self.inputs)})"
        body = [f"  {n:>3}: {node.format(self.values)}" for n, node in enumerate(self.nodes)]
        tail = f"  return {', '.join('%' + o for o in self.outputs)}"
        return "\n".join([head, *body, tail])

    def producer(self, value: str) -> Node | None:
        return next((n for n in self.nodes if value in n.outputs), None)

    def users(self, value: str) -> list[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def find(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"graph {self.name} has no node named {name!r}")

    def replace_all_uses(self, old: str, new: str, *, skip: Node | None = None) -> None:
        """Make every user of ``old`` (except ``skip``) read ``new`` instead; graph outputs follow."""
        for i, node in enumerate(self.nodes):
            if node is not skip and old in node.inputs:
                self.nodes[i] = node.with_inputs(tuple(new if v == old else v for v in node.inputs))
        self.outputs = [new if o == old else o for o in self.outputs]

    def insert_after(self, anchor: Node, node: Node, new_values: list[Value]) -> None:
        for v in new_values:
            if v.name in self.values:
                raise ValueError(f"value %{v.name} already exists in graph {self.name}")
            self.values[v.name] = v
        self.nodes.insert(self.nodes.index(anchor) + 1, node)

    def replace_node(self, old: Node, new: Node) -> None:
        self.nodes[self.nodes.index(old)] = new

    def copy(self) -> Graph:
        return Graph(self.name, list(self.nodes), dict(self.values), list(self.inputs), list(self.outputs))


def upstream(graph: Graph, outputs: list[str]) -> Graph:
    """The part of ``graph`` that computes ``outputs``: the nodes they depend on (in order) and the inputs read."""
    needed, nodes = set(outputs), []
    for node in reversed(graph.nodes):
        if needed.intersection(node.outputs):
            nodes.append(node)
            needed.update(node.inputs)
    return Graph(graph.name, nodes[::-1], dict(graph.values), [i for i in graph.inputs if i in needed], list(outputs))


def value_rows(graph: Graph, value: str) -> int:
    """Tokens per call of a [batch, ..., width] value: the product of its middle dimensions (1 if none)."""
    count = 1
    for d in graph.values[value].shape[1:-1]:
        count *= int(d)
    return count


def value_elements(graph: Graph, value: str) -> int:
    """Elements of a value per call (every dimension but the batch)."""
    return value_rows(graph, value) * int(graph.values[value].shape[-1])


def entry_graphs(graphs: Mapping[str, Graph]) -> dict[str, Graph]:
    """The graphs that take only the model's data input (no state): "prefill" of a language model, every
    "task/<name>" of a ViT-MoE. Calibration and quantization run over all of them; a value they share gets
    one scale."""
    return {key: g for key, g in graphs.items() if len(g.inputs) == 1}
