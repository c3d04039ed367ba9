"""edgec: an edge deployment compiler for state-space and recurrent models.

Python API (NumPy only; ``from_torch`` needs the live torch model you already have)::

    import edgec
    model = edgec.load_checkpoint("path/to/hf-mamba")      # or edgec.from_torch(MambaForCausalLM)
    qm = edgec.quantize(model, calib_batches)                # [B, L] int token arrays
    edgec.save_qdir(qm, "out/qdir")

The names are imported on first use, so that ``edgec`` the command starts (and handles Ctrl-C) at once.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["QuantOptions", "QuantizedModel", "from_torch", "load_checkpoint", "load_qdir", "quantize", "save_qdir"]
__version__ = "0.1.0"

_WHERE = {
    "from_torch": "edgec.frontends.hf_checkpoint", "load_checkpoint": "edgec.frontends.hf_checkpoint",
    "quantize": "edgec.passes.pipeline", "QuantizedModel": "edgec.passes.quantize",
    "QuantOptions": "edgec.passes.quantize", "load_qdir": "edgec.qdir", "save_qdir": "edgec.qdir",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'edgec' has no attribute {name!r}")
