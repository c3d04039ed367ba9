"""Golden inputs and outputs in Polygraphy's JSON formats, written without importing Polygraphy.

Polygraphy's own writers probe for torch on every array (importing it: seconds of start-up, and
an interrupt inside that import can crash the process at exit). The formats are small: an array
is ``{"array": base64(np.save bytes), "polygraphy_class": "ndarray"}``; inputs are a list of
feed dicts; outputs a ``RunResults`` of one runner with one ``IterationResult`` per iteration.
``polygraphy run MODEL --load-inputs ... --load-outputs ...`` reads both (tests/test_onnx_export.py).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_inputs", "save_outputs"]


def _array(arr: np.ndarray) -> dict:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return {"array": base64.b64encode(buf.getvalue()).decode("ascii"), "polygraphy_class": "ndarray"}


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


def save_inputs(feeds: Sequence[Mapping[str, np.ndarray]], path: Path) -> None:
    """One feed dict per iteration, as ``polygraphy run --load-inputs`` expects."""
    _dump(path, [{name: _array(arr) for name, arr in feed.items()} for feed in feeds])


def save_outputs(outputs: Sequence[Mapping[str, np.ndarray]], path: Path, runner: str) -> None:
    """One output dict per iteration from ``runner``, as ``polygraphy run --load-outputs`` expects."""
    iterations = [{"outputs": {name: {"values": _array(arr), "polygraphy_class": "LazyArray"}
                               for name, arr in out.items()},
                   "runtime": None, "runner_name": runner, "polygraphy_class": "IterationResult"}
                  for out in outputs]
    _dump(path, {"lst": [[runner, iterations]], "polygraphy_class": "RunResults"})
