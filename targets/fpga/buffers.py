"""On-chip activation buffers of a step graph: values share a buffer once their last reader has run.

Nodes run one after another, so a value needs storage from the node that writes it to the last node
that reads it. ``assign_buffers`` walks the graph in order and hands each output a free buffer of its
size (elements without the batch axis; a new one if none is free), then frees the inputs whose last
reader this node is. An output never shares a buffer with an input of its own node, so no kernel reads
and writes the same array. A value written by several nodes (each task's own router of a merged task
schedule) keeps the buffer of its first writer. Graph outputs stay allocated to the end. The result
depends on the graph alone, for any family.

Every buffer of the generated top holds BUFFER_DTYPE elements; a wide product (``wide_value``) needs all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np

from edgec.ir import Graph, value_elements
from edgec.ir.ops import STATEFUL_STEP

__all__ = ["BUFFER_BITS", "BUFFER_CTYPE", "BUFFER_DTYPE", "assign_buffers", "state_outputs", "wide_value"]

logger = logging.getLogger(__name__)

#: The element of every activation buffer the generated top declares (emit.py; hls/include/edgec_kernels.h).
BUFFER_DTYPE = np.dtype(np.int64)
BUFFER_CTYPE = f"{BUFFER_DTYPE.name}_t"  # "int64_t"
BUFFER_BITS = 8 * BUFFER_DTYPE.itemsize


def wide_value(bits: Mapping[str, int], value: str) -> bool:
    """Whether ``value`` is a wide product: no stored format in ``bits`` (a QuantizedModel's), the int simulator's
    rule (op_rmsnorm reads it in block floating point; edgec::mul writes it unsaturated)."""
    return value not in bits


def assign_buffers(graph: Graph, skip: Iterable[str] = (),
                   reads: Mapping[int, Iterable[str]] | None = None) -> dict[str, tuple[str, int]]:
    """Map each value written by a node (except ``skip``: state outputs) to (buffer name, size). ``reads``: values
    a node's kernel reads beyond its IR inputs, by node index (a top-k ranking on its router's logits)."""
    skip = set(skip) | set(graph.inputs)
    last: dict[str, int] = {}
    extra = reads or {}
    for i, node in enumerate(graph.nodes):
        for value in (*node.inputs, *extra.get(i, ())):
            last[value] = i
    for value in graph.outputs:
        last[value] = len(graph.nodes)
    free: dict[int, list[str]] = {}
    assigned: dict[str, tuple[str, int]] = {}
    count = 0
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            if out in skip or out in assigned:
                continue
            width = value_elements(graph, out)
            pool = free.setdefault(width, [])
            if pool:
                assigned[out] = (pool.pop(0), width)
            else:
                assigned[out] = (f"buf{count}", width)
                count += 1
        done = {v for v in (*node.inputs, *extra.get(i, ())) if last.get(v) == i} | {o for o in node.outputs
                                                                                   if o not in last}
        for value in sorted(done & assigned.keys(), key=lambda v: assigned[v][0]):
            name, width = assigned[value]
            free[width].append(name)
            free[width].sort(key=lambda b: int(b[3:]))
    logger.debug("%s: %d values in %d buffers", graph.name, len(assigned), count)
    return assigned


def state_outputs(graph: Graph) -> set[str]:
    """The new state each stateful step node writes (its outputs after the first): kept in state arrays."""
    return {o for node in graph.nodes if node.op in STATEFUL_STEP for o in node.outputs[1:]}
