"""The quantization pipeline, an explicit list: fold the image normalization and norms -> rotate -> calibrate
-> quantize.

Calibration runs after the rotation on purpose: the int8 scale of the rotated SSM output must be
measured on the rotated values (DESIGN.md lists calibrate first; that order cannot see them).
"""

from __future__ import annotations

import numpy as np

from edgec.errors import DataError, PassError
from edgec.frontends.model import Model
from edgec.ir import entry_graphs
from edgec.passes.base import Pass, run_passes
from edgec.passes.calibrate import CalibrationStats, calibrate
from edgec.passes.fold_attention_scale import fold_attention_scale
from edgec.passes.fold_image import fold_image_normalization
from edgec.passes.fold_norm import fold_norm_gains
from edgec.passes.hadamard import rotate_gated_products
from edgec.passes.quantize import QuantizedModel, QuantOptions, quantize_model

__all__ = ["lower_int_constants", "quantize", "rewrite"]


def rewrite(model: Model, options: QuantOptions | None = None) -> tuple[Model, list[str]]:
    """The float-equivalent rewrites the recipe calibrates and quantizes (deterministic: every calibration
    shard of a data-parallel run rewrites its copy of the model identically)."""
    options = options or QuantOptions()
    passes: list[tuple[str, Pass]] = [("fold_image", fold_image_normalization), ("fold_norm", fold_norm_gains),
                                      ("fold_attention_scale", fold_attention_scale)]
    if options.hadamard:
        passes.append(("hadamard", rotate_gated_products))
    rewritten, notes = run_passes(model, passes)
    return rewritten, list(notes)


def quantize(model: Model, calib_batches: list[np.ndarray], options: QuantOptions | None = None,
             stats: CalibrationStats | None = None) -> QuantizedModel:
    """Run the whole recipe on a float model; ``calib_batches`` are batches of the data input ([B, L] token
    arrays, [B, H, W, C] uint8 images). ``stats``: statistics already gathered (merged shards of a
    data-parallel calibration of ``rewrite(model, options)``); then only the first batch is used, as the
    sample that lowers the integer constants."""
    options = options or QuantOptions()
    rewritten, notes = rewrite(model, options)
    if stats is None:
        stats = calibrate(rewritten, calib_batches, alpha=options.alpha)
    elif not calib_batches:
        raise DataError("quantize with given statistics still needs one sample batch (the constants' lowering)")
    elif stats.alpha != options.alpha:
        raise DataError(f"the statistics were gathered at percentile {stats.alpha}, the options ask for "
                        f"{options.alpha}: calibrate with the same alpha")
    qm = quantize_model(rewritten, stats, options, notes)
    try:
        first = calib_batches[0]
        lower_int_constants(qm, first[:1, :4] if first.ndim == 2 else first[:1])
    except PassError as err:
        raise PassError(f"{model.source or 'the model'}: {err}; its weights are degenerate or extreme for int8 "
                        "(e.g. all-zero, constant or huge tensors): check the checkpoint") from None
    return qm


def lower_int_constants(qm: QuantizedModel, sample: np.ndarray) -> None:
    """Derive every integer constant now (by a short int-simulator run of every entry graph on ``sample``,
    a batch of the data input) and keep them with the model.

    A model whose ranges cannot be represented fails here, at quantize time, with the node named.
    Persisted with the QDIR, the constants (LUTs, multipliers, decay coefficients) are then the
    same on every machine, whatever its libm computes for exp and log1p.
    """
    from edgec.runtime.sim_int import IntSimulator

    sim = IntSimulator(qm, weight_cache=0)  # one pass: float32 weight copies would grow the peak with depth
    try:
        for graph in entry_graphs(qm.graphs).values():
            sim.run(graph, {graph.inputs[0]: sample})
    except (ValueError, OverflowError) as err:
        where = " ".join(getattr(err, "__notes__", []))
        raise PassError(f"the integer (int profile) lowering failed: {err}" + (f" ({where})" if where else "")) \
            from None
    qm.int_constants = sim.export_constants()
