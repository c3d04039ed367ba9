"""transformers' Mamba-2 on its torch path: the reference edgec is checked against and its checkpoints trained on.

transformers swaps in the mamba_ssm / causal_conv1d CUDA kernels when they are importable at the first import of
its modeling_mamba2; blocking them before that import keeps its torch code (the chunked SSD)."""

from __future__ import annotations

import inspect
import sys

__all__ = ["KERNEL_PACKAGES", "block_kernels", "kernel_functions"]

KERNEL_PACKAGES = ("mamba_ssm", "causal_conv1d")
_SWAPPABLE = ("mamba2_chunk_scan", "mamba2_selective_state_update", "mamba2_split_conv1d_scan_combined",
              "causal_conv1d_fn", "causal_conv1d_update")  # each chooses kernel or torch code at import


def block_kernels() -> None:
    """Make ``import mamba_ssm`` and ``import causal_conv1d`` fail (call before transformers' modeling_mamba2)."""
    for package in KERNEL_PACKAGES:
        sys.modules.setdefault(package, None)  # a None entry makes `import package` fail


def kernel_functions() -> list[str]:
    """The names of transformers' Mamba-2 functions that do not run its torch code (none on the torch path)."""
    from transformers.models.mamba2 import modeling_mamba2 as mm

    return [name for name in _SWAPPABLE
            if inspect.getclosurevars(getattr(mm, name)).nonlocals.get("is_new_implementation") is not False]
