"""Appends nodes and their typed output values to one graph, for the families' graph builders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edgec.ir import Node, Op, Value

__all__ = ["GraphBuilder"]


class GraphBuilder:
    """Nodes in order, and a value per output whose shape is the graph's lead dims (e.g. ("B",)) + its own."""

    def __init__(self, lead: tuple[int | str, ...], inputs: Iterable[Value]) -> None:
        self.lead = lead
        self.values: dict[str, Value] = {v.name: v for v in inputs}
        self.nodes: list[Node] = []

    def add(self, op: Op, name: str, ins: list[str], outs: Mapping[str, int | tuple[int, ...]],
            weights: dict[str, str] | None = None, dtypes: Mapping[str, str] | None = None, **attrs: object) -> None:
        """Append ``op``; ``outs`` maps each output to its width (or trailing shape), ``dtypes`` any non-f32 one."""
        for out, width in outs.items():
            shape = (*self.lead, *(width if isinstance(width, tuple) else (width,)))
            self.values[out] = Value(out, shape, (dtypes or {}).get(out, "f32"))
        self.nodes.append(Node(op, tuple(ins), tuple(outs), weights or {}, attrs, name))
