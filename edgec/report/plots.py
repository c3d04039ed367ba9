"""The report's plots: matplotlib (Agg) figures rendered to PNG bytes of a known pixel size.

Every plot is WIDTH pixels wide (figure inches x DPI, never cropped), so the page can declare each image's
size and a test can check it. Nothing here reads files or knows about HTML.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: must come before anything imports pyplot

import numpy as np
from matplotlib.figure import Figure

from edgec.report.builds import FpgaEstimate, Roofline
from edgec.report.outliers import Outlier

__all__ = ["DPI", "WIDTH", "Plot", "expert_load", "fpga_resources", "fpga_stages", "orin_roofline", "outlier_bars",
           "outlier_histograms", "routing_agreement", "sqnr_lines"]

DPI = 100
WIDTH = 960  # pixels
_PROFILE_COLOURS = {"int": "#1f77b4", "qdq": "#ff7f0e", "float": "#2ca02c"}
_BEFORE, _AFTER = "#d62728", "#1f77b4"


@dataclass(frozen=True)
class Plot:
    """A rendered figure: its name (what it shows), PNG bytes and pixel size."""

    name: str
    png: bytes
    width: int
    height: int


def _figure(height_px: int, rows: int = 1, cols: int = 1, **kw) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(WIDTH / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def _render(name: str, fig: Figure) -> Plot:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(v * DPI) for v in fig.get_size_inches())
    return Plot(name, buf.getvalue(), width, height)


def _finite(values: Sequence[float]) -> np.ndarray:
    """Values with +-inf as NaN (a gap in a line: an exact match has no finite SQNR)."""
    arr = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(arr), arr, np.nan)


def sqnr_lines(layers: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Plot:
    """Per-layer SQNR of the residual stream: {graph: {value: {"int", "qdq"}}}, one line per graph and profile."""
    fig, axes = _figure(380)
    ax = axes[0, 0]
    styles = ["-", "--", ":", "-."]
    names: list[str] = []
    for i, (graph, table) in enumerate(layers.items()):
        names = list(table)
        for profile in ("int", "qdq"):
            label = f"{profile} ({graph})" if len(layers) > 1 else profile
            ax.plot(range(len(names)), _finite([table[n][profile] for n in names]), styles[i % len(styles)],
                    marker="o", color=_PROFILE_COLOURS[profile], label=label)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("SQNR vs float (dB)")
    ax.set_title("Residual stream after every layer, and the logits")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _render("sqnr", fig)


def outlier_bars(rows: Sequence[Outlier]) -> Plot:
    """max|x| / rms of every linear input, before and after the Hadamard rotation (log scale)."""
    fig, axes = _figure(420)
    ax = axes[0, 0]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r.ratio for r in rows], 0.4, color=_BEFORE, label="as is")
    ax.bar(x + 0.2, [r.ratio_rotated for r in rows], 0.4, color=_AFTER, label="after Hadamard rotation")
    ax.set_yscale("log")
    ax.set_xticks(x, [r.value for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("max |x| / rms")
    ax.set_title("Activation outliers at every int8 linear input (worst first)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _render("outliers", fig)


def outlier_histograms(rows: Sequence[Outlier]) -> Plot:
    """Histograms of the worst tensors (one row each), before and after the rotation, log counts."""
    fig, axes = _figure(200 * len(rows) + 40, len(rows), 2)
    for ax_row, r in zip(axes, rows, strict=True):
        for ax, sample, colour, title in ((ax_row[0], r.sample, _BEFORE, "as is"),
                                          (ax_row[1], r.sample_rotated, _AFTER, "after Hadamard")):
            counts, edges = np.histogram(sample, bins=120)
            ax.stairs(counts, edges, fill=True, color=colour)  # one polygon, not 120 bars: fast to lay out
            ax.set_yscale("log")
            ax.set_title(f"{r.value} ({title}): max/rms {r.ratio if title == 'as is' else r.ratio_rotated:.1f}",
                         fontsize=9)
            ax.tick_params(labelsize=7)
    return _render("outlier_histograms", fig)


def expert_load(load: Mapping[str, Mapping[str, Sequence[float]]]) -> Plot:
    """Heat maps, one per profile: rows "task layer", columns experts, the share of routed slots."""
    profiles = list(load)
    rows = list(load[profiles[0]])
    fig, axes = _figure(max(260, 40 * len(rows) + 120), 1, len(profiles))
    for ax, profile in zip(axes[0], profiles, strict=True):
        grid = np.array([load[profile][r] for r in rows])
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(float(grid.max()), 1e-9), aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 * grid.max() else "black")
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("expert")
        ax.set_title(f"expert load, {profile} (% of routed slots)", fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return _render("expert_load", fig)


def routing_agreement(routing: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]) -> Plot:
    """Routing agreement with float per (task, layer), one bar per profile: {profile: {task: {layer: {...}}}}."""
    fig, axes = _figure(340)
    ax = axes[0, 0]
    profiles = list(routing)
    keys = [(t, layer) for t, layers in routing[profiles[0]].items() for layer in layers]
    x = np.arange(len(keys))
    width = 0.8 / max(len(profiles), 1)
    for i, p in enumerate(profiles):
        values = [100 * routing[p][t][layer]["agreement"] for t, layer in keys]
        ax.bar(x + (i - (len(profiles) - 1) / 2) * width, values, width, label=p, color=_PROFILE_COLOURS.get(p))
    low = min([100 * routing[p][t][layer]["agreement"] for p in profiles for t, layer in keys] + [100.0])
    ax.set_ylim(max(0.0, math.floor(low) - 5), 100.5)
    ax.set_xticks(x, [f"{t}\n{layer}" for t, layer in keys], fontsize=8)
    ax.set_ylabel("same expert set as float (%)")
    ax.set_title("Routing agreement with the float model")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _render("routing_agreement", fig)


def fpga_stages(est: FpgaEstimate) -> Plot:
    """Cycles and DRAM bytes per stage, and the compute and bandwidth bounds on throughput."""
    stages = sorted(est.stage_cycles, key=lambda s: est.stage_cycles[s])
    fig, axes = _figure(max(320, 22 * len(stages) + 100), 1, 3, width_ratios=[3, 3, 2])
    cycles, dram, bounds = axes[0]
    cycles.barh(stages, [est.stage_cycles[s] for s in stages], color="#1f77b4")
    cycles.set_title(f"cycles per {est.unit} (total {est.cycles:,.0f})", fontsize=10)
    dram.barh(stages, [est.stage_bytes.get(s, 0.0) for s in stages], color="#9467bd")
    dram.set_title(f"DRAM bytes per {est.unit} (total {est.bytes:,.0f})", fontsize=10)
    dram.set_yticks(range(len(stages)), [""] * len(stages))
    for ax in (cycles, dram):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    labels = ["compute", "DRAM"]
    bars = bounds.bar(labels, [est.compute_rate, est.dram_rate], color=["#1f77b4", "#9467bd"])
    bars[labels.index("compute" if est.bound == "compute" else "DRAM")].set_edgecolor("black")
    bounds.axhline(est.rate, color="black", linestyle="--", linewidth=1)
    bounds.set_title(f"{est.unit}s/s: {est.bound}-bound", fontsize=10)
    bounds.tick_params(labelsize=8)
    return _render("fpga_stages", fig)


def fpga_resources(est: FpgaEstimate) -> Plot:
    """Use of each resource of the part, in percent of what it has."""
    names = list(est.resources)
    fig, axes = _figure(60 + 36 * len(names))
    ax = axes[0, 0]
    shares = [100 * used / available if available else 0.0 for used, available in est.resources.values()]
    ax.barh(names, shares, color=["#d62728" if s > 100 else "#2ca02c" for s in shares])
    for i, ((used, available), s) in enumerate(zip(est.resources.values(), shares, strict=True)):
        ax.text(s + 1, i, f"{used:,.1f} / {available:,.0f}", va="center", fontsize=8)
    ax.axvline(100, color="black", linewidth=1)
    ax.set_xlim(0, max(110.0, max(shares, default=0) + 25))
    ax.set_xlabel(f"% of the {est.device} ({est.part})")
    return _render("fpga_resources", fig)


def orin_roofline(rooflines: Mapping[str, Sequence[Roofline]]) -> Plot:
    """ms per token (or image), int8 against fp16, per Orin device; one panel per graph."""
    graphs = list(rooflines)
    fig, axes = _figure(320, 1, len(graphs))
    for ax, graph in zip(axes[0], graphs, strict=True):
        rows = rooflines[graph]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r.int8_ms for r in rows], 0.4, label="int8", color="#2ca02c")
        ax.bar(x + 0.2, [r.fp16_ms for r in rows], 0.4, label="fp16", color="#7f7f7f")
        for i, r in enumerate(rows):
            ax.text(i, max(r.int8_ms, r.fp16_ms), f"{r.speedup:.2f}x", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, [r.device for r in rows], fontsize=8)
        ax.set_ylabel("ms (batch 1, memory roofline)")
        ax.set_title(graph, fontsize=10)
        ax.margins(y=0.15)
        ax.legend(fontsize=8)
    return _render("orin_roofline", fig)
