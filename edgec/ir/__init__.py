"""The edgec IR: ops, values, nodes, graphs and their invariant checks."""

from edgec.ir.graph import Graph, Node, Value, entry_graphs, upstream, value_elements, value_rows
from edgec.ir.ops import Op

__all__ = ["Graph", "Node", "Op", "Value", "entry_graphs", "upstream", "value_elements", "value_rows"]
