"""edgec: an edge deployment compiler for state-space and recurrent models.

Python API (NumPy only; ``from_torch`` needs the live torch model you already have)::

    import edgec
    model = edgec.load_checkpoint("path/to/hf-mamba")      # or edgec.from_torch(MambaForCausalLM)
    qm = edgec.quantize(model, calib_batches)                # [B, L] int token arrays
    edgec.save_qdir(qm, "out/qdir")
"""

from __future__ import annotations

from edgec.frontends.hf_mamba import from_torch, load_checkpoint
from edgec.passes.pipeline import quantize
from edgec.passes.quantize import QuantizedModel, QuantOptions
from edgec.qdir import load_qdir, save_qdir

__all__ = ["QuantOptions", "QuantizedModel", "from_torch", "load_checkpoint", "load_qdir", "quantize", "save_qdir"]
__version__ = "0.1.0"
