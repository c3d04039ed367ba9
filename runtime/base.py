"""The graph walker every interpreter subclasses: one handler per op, nothing else overridden."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
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

    def node_done(self, node: Node) -> None:
        """Called once a node has run on every feed of a ``run_batches``; the default does nothing (calibration
        releases the node's weights here)."""

    def run(self, graph: Graph, feeds: Mapping[str, Any], *, keep_all: bool = False) -> dict[str, Any]:
        """Execute ``graph`` on ``feeds``; return the outputs, or every value when ``keep_all``."""
        return self.run_batches(graph, [feeds], keep_all=keep_all)[0]

    def run_batches(self, graph: Graph, feeds: Sequence[Mapping[str, Any]], *, keep_all: bool = False,
                    keep_outputs: bool = True) -> list[dict[str, Any]]:
        """Execute ``graph`` on several independent feeds in lockstep: every node runs on each feed before the
        next node runs, so a node's weights are needed once (sequential, layer-by-layer calibration).

        Returns per feed its outputs (none unless ``keep_outputs``), or every value when ``keep_all``; a value
        is dropped after its last use.
        """
        for f in feeds:
            missing = [i for i in graph.inputs if i not in f]
            if missing:
                raise EdgecError(f"graph {graph.name}: missing input(s) {', '.join(missing)}")
        envs: list[dict[str, Any]] = [dict(f) for f in feeds]
        kept = set(graph.outputs) if keep_outputs else set()
        dead_after = {} if keep_all else self._dead_after(graph, kept)
        for index, node in enumerate(graph.nodes):
            fn = self.handler(node)
            for env in envs:
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
                for name in dead_after.get(index, ()):
                    env.pop(name, None)
            self.node_done(node)
        return envs if keep_all else [{o: env[o] for o in graph.outputs if o in kept} for env in envs]

    @staticmethod
    def _dead_after(graph: Graph, kept: set[str]) -> dict[int, list[str]]:
        """Node index -> the values (not in ``kept``) nothing reads after that node: its inputs read for the last
        time, and its outputs nothing reads at all."""
        last: dict[str, int] = {}
        for index, node in enumerate(graph.nodes):
            for name in node.inputs:
                last[name] = index
            for name in node.outputs:
                last.setdefault(name, index)
        by_node: dict[int, list[str]] = {}
        for name, index in last.items():
            if name not in kept:
                by_node.setdefault(index, []).append(name)
        return by_node
