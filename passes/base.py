"""The pass contract: a pass maps a model to a model and says whether it changed anything."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgec.errors import EdgecError, PassError
from edgec.frontends.model import Model
from edgec.ir.verify import verify_graph

__all__ = ["BLOCK_ELEMENTS", "Pass", "PassResult", "row_blocks", "run_passes"]

BLOCK_ELEMENTS = 1 << 22  # elements of a weight rewritten or quantized at a time (float64 temporaries of 32 MB)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassResult:
    """The rewritten model, whether it changed, and notes for the report (e.g. Hadamard padding)."""

    model: Model
    modified: bool
    notes: tuple[str, ...] = ()


Pass = Callable[[Model], PassResult]


def run_passes(model: Model, passes: Sequence[tuple[str, Pass]]) -> tuple[Model, list[str]]:
    """Run named passes in order, verifying every graph after each one.

    A failure names the pass and those that ran before it.
    """
    notes: list[str] = []
    done: list[str] = []
    for name, fn in passes:
        try:
            result = fn(model)
        except EdgecError:
            raise
        except Exception as err:
            ran = ", ".join(done) or "none"
            raise PassError(f"pass {name} failed: {err} (passes run before it: {ran})") from err
        model = result.model
        for graph in model.graphs.values():
            try:
                verify_graph(graph, model.weights)
            except PassError as err:
                raise PassError(f"after pass {name}: {err}") from None
        notes += [f"{name}: {n}" for n in result.notes]
        logger.debug("pass %s modified=%s", name, result.modified)
        done.append(name)
    return model, notes


def row_blocks(shape: tuple[int, ...]) -> list[slice]:
    """Slices of the first axis of a tensor of ``shape`` holding about BLOCK_ELEMENTS elements each, so that a
    per-row computation in float64 never holds a float64 copy of a whole embedding table."""
    per_row = 1
    for d in shape[1:]:
        per_row *= int(d)
    rows = max(1, BLOCK_ELEMENTS // max(per_row, 1))
    return [slice(i, i + rows) for i in range(0, shape[0], rows)] if shape else [slice(None)]
