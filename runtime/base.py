"""The graph walker every interpreter subclasses: one handler per op, nothing else overridden."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from edgec.errors import EdgecError, UnsupportedOpError
from edgec.ir import Graph, Node

__all__ = ["Interpreter"]

logger = logging.getLogger(__name__)


class Interpreter:
    """Walks a graph in order and dispatches each node to ``op_<name>(node, *inputs)``.

    A handler returns one array, or a tuple with one array per node output. Subclasses may override
    ``observe`` to see every value as it is produced (calibration, traces).
    """

    def handler(self, node: Node) -> Callable[..., Any]:
        fn = getattr(self, f"op_{node.op.value}", None)
        if fn is None:
            raise UnsupportedOpError(f"{type(self).__name__} has no handler for op {node.op.value!r} "
                                     f"(node {node.name})")
        return fn

    def emit(self, node: Node, name: str, value: Any) -> Any:
        """Post-process a produced value before it is stored (fake quantization); default: as is."""
        return value

    def observe(self, node: Node, name: str, value: Any) -> None:
        """Called for each produced value; the default does nothing."""

    def run(self, graph: Graph, feeds: Mapping[str, Any], *, keep_all: bool = False) -> dict[str, Any]:
        """Execute ``graph`` on ``feeds``; return the outputs, or every value when ``keep_all``."""
        missing = [i for i in graph.inputs if i not in feeds]
        if missing:
            raise EdgecError(f"graph {graph.name}: missing input(s) {', '.join(missing)}")
        env: dict[str, Any] = dict(feeds)
        last_use = {} if keep_all else self._last_uses(graph)
        for index, node in enumerate(graph.nodes):
            fn = self.handler(node)
            try:
                result = fn(node, *(env[i] for i in node.inputs))
            except EdgecError:
                raise
            except Exception as err:
                err.add_note(f"while executing {node.format(graph.values)}")
                raise
            results = result if isinstance(result, tuple) else (result,)
            for name, value in zip(node.outputs, results, strict=True):
                env[name] = value = self.emit(node, name, value)
                self.observe(node, name, value)
            for name in last_use.get(index, ()):
                if name not in graph.outputs:
                    env.pop(name, None)
        return env if keep_all else {o: env[o] for o in graph.outputs}

    @staticmethod
    def _last_uses(graph: Graph) -> dict[int, list[str]]:
        last: dict[str, int] = {}
        for index, node in enumerate(graph.nodes):
            for name in node.inputs:
                last[name] = index
        by_node: dict[int, list[str]] = {}
        for name, index in last.items():
            by_node.setdefault(index, []).append(name)
        return by_node
