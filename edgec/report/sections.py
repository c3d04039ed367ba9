"""The page's sections, in order: model card, accuracy (and ablation), per-layer SQNR, activation outliers,
MoE routing, then one section per build folder. Each takes numbers already computed and adds tables and plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgec.progress import track
from edgec.report import plots
from edgec.report.accuracy import Ablation
from edgec.report.builds import Build
from edgec.report.card import ModelCard
from edgec.report.html import Page
from edgec.report.outliers import Outlier

__all__ = ["HISTOGRAMS", "ReportData", "render_page"]

HISTOGRAMS = 3  # worst linear inputs whose histograms the page shows


@dataclass
class ReportData:
    """Everything the page shows, computed (the page itself only formats and plots)."""

    card: ModelCard
    data: Path
    accuracy: dict[str, Any]
    outliers: list[Outlier]
    expert_load: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    ablation: list[Ablation] | None = None
    ablation_what: str = ""
    builds: list[Build] = field(default_factory=list)


def render_page(r: ReportData) -> tuple[str, list[str]]:
    """The HTML page and the names of its plots, in page order."""
    page = Page(f"edgec report: {r.card.source}", f"{r.card.family} model, int8 quantized by edgec; evaluation data "
                                                  f"{r.data}")
    todo: list[Callable[[], None]] = [lambda: _card(page, r.card), lambda: _accuracy(page, r),
                                      lambda: _sqnr(page, r.accuracy), lambda: _outliers(page, r.outliers)]
    if "routing_agreement" in r.accuracy and r.expert_load.get("float"):
        todo.append(lambda: _moe(page, r))
    todo += [lambda b=b, i=i: _build(page, b, i, r.card.source) for i, b in enumerate(r.builds, 1)]
    for step in track(todo, "plotting"):
        step()
    return page.render(_data(r, [p.name for p in page.plots])), [p.name for p in page.plots]


def _data(r: ReportData, names: list[str]) -> dict[str, Any]:
    return {"model": asdict(r.card), "data": str(r.data), "accuracy": r.accuracy, "plots": names,
            "outliers": [{k: v for k, v in asdict(o).items() if not k.startswith("sample")} for o in r.outliers],
            "expert_load": r.expert_load, "ablation": None if r.ablation is None else [asdict(a) for a in r.ablation],
            "builds": [{"folder": str(b.folder), "target": b.target, "verification": b.verification}
                       for b in r.builds]}


def _mib(n: int) -> str:
    return f"{n:,} bytes ({n / 2**20:.2f} MiB)"


def _card(page: Page, c: ModelCard) -> None:
    page.section("Model card", "card")
    smaller = {n: f"{_mib(size)}: int8 is {size / max(c.bytes_int8, 1):.2f}x smaller"
               for n, size in (("fp16", c.bytes_fp16), ("fp32", c.bytes_fp32))}
    page.table(["property", "value"], [("family", c.family), ("source", c.source), ("parameters", c.parameters),
                                       ("int8 (weights, scales, float parameters)", _mib(c.bytes_int8)),
                                       *smaller.items()])
    with page.block("row"):
        with page.block():
            page.heading("Widths (config)")
            page.table(["field", "value"], [(k, _plain(v)) for k, v in sorted(c.config.items())])
        with page.block():
            page.heading("Passes and their settings")
            page.table(["option", "value"], [(k, _plain(v)) for k, v in sorted(c.options.items())])
        with page.block():
            page.heading("Calibration")
            page.table(["setting", "value"], [(k, _plain(v)) for k, v in sorted(c.calibration.items())])
    for note in c.notes:
        page.para(f"note: {note}")
    page.heading("Files (sha256)")
    if c.files:
        page.table(["file", "sha256"], sorted(c.files.items()))
    else:
        page.para("Quantized in memory for this report (MODEL is a checkpoint, not a QDIR): no files written.",
                  note=True)


def _plain(value: Any) -> str:
    return str(value) if not isinstance(value, list | dict) else repr(value)


def _accuracy(page: Page, r: ReportData) -> None:
    a = r.accuracy
    page.section("Accuracy", "accuracy")
    if a["metric"] == "perplexity":
        page.para(f"Perplexity on {a['tokens']:,} tokens of {r.data} (as edgec eval computes it).")
        page.table(["profile", "perplexity", "x float"],
                   [(k, a[k], a[k] / a["float"]) for k in ("float", "int", "qdq")])
    else:
        page.para(f"Top-1 per task on {a['images']:,} images of {r.data} (as edgec eval computes it).")
        page.table(["task", "float %", "int %", "qdq %"],
                   [(t, *(100 * row[p] for p in ("float", "int", "qdq"))) for t, row in a["tasks"].items()])
    if r.ablation is not None:
        page.heading("Ablation")
        page.para(r.ablation_what, note=True)
        profiles = list(r.ablation[0].metrics) if r.ablation else []
        page.table(["recipe", *profiles], [(row.change, *(row.metrics[p] for p in profiles)) for row in r.ablation])


def _sqnr(page: Page, a: dict[str, Any]) -> None:
    page.section("Per-layer SQNR", "sqnr")
    layers = {"prefill": a["layers"]} if a["metric"] == "perplexity" else a["layers"]
    what = "the first evaluation window" if a["metric"] == "perplexity" else "the first 32 evaluation images"
    page.para(f"SQNR (dB) of the residual stream after every layer, against the float model, on {what}: "
              "int is the bit-accurate integer simulator, qdq the quantize-dequantize one (ONNX / TensorRT).")
    page.plot(plots.sqnr_lines(layers), "per-layer SQNR of both profiles")
    page.table(["graph", "value", "int dB", "qdq dB"],
               [(g, name, row["int"], row["qdq"]) for g, table in layers.items() for name, row in table.items()])


def _outliers(page: Page, rows: list[Outlier]) -> None:
    page.section("Activation outliers", "outliers")
    page.para("Every int8 linear layer's input on the first batch of the data, after the norm folds: max |x| / rms "
              "(per-tensor int8 spends its 127 steps on the max) and the int8 SQNR, as is and after an online "
              "Hadamard rotation (which a pass folds into the weights).")
    page.plot(plots.outlier_bars(rows), "outlier ratio of every linear input, before and after rotation")
    worst = rows[:HISTOGRAMS]
    page.plot(plots.outlier_histograms(worst), "histograms of the worst linear inputs, before and after rotation")
    page.table(["value", "feeds", "width", "max/rms", "int8 SQNR dB", "rotated max/rms", "rotated SQNR dB"],
               [(o.value, o.feeds, o.width, o.ratio, o.sqnr, o.ratio_rotated, o.sqnr_rotated) for o in rows])


def _moe(page: Page, r: ReportData) -> None:
    page.section("Mixture of experts", "moe")
    page.para("Expert load: the share of routed (token, slot) pairs each expert receives, per MoE layer and task, "
              "in the float model and in the int simulator.", note=True)
    page.plot(plots.expert_load(r.expert_load), "expert load per layer and task")
    routing = r.accuracy["routing_agreement"]
    page.plot(plots.routing_agreement(routing), "routing agreement with the float model")
    page.table(["profile", "task", "layer", "agreement %", "tokens", "flips near tie", "flips clear",
                "clear, cascaded"],
               [(p, t, layer, 100 * x["agreement"], x["tokens"], x["flips_near_tie"], x["flips_clear"],
                 x["flips_clear_cascaded"]) for p, tasks in routing.items() for t, layers in tasks.items()
                for layer, x in layers.items()])


def _build(page: Page, b: Build, index: int, model: str) -> None:
    page.section(f"{b.target} build: {b.folder}", f"build-{index}")
    page.para(f"{b.fmt} built from {b.source or 'an unnamed model'}", note=True)
    if b.source != model:
        page.para(f"Note: this build was made from {b.source or 'an unnamed model'}, not from {model}, the model "
                  "this page reports on.")
    if b.estimate is not None:
        e = b.estimate
        device = f"{e.device} ({e.part}), {e.clock_mhz:g} MHz, DRAM {e.dram_gbps:g} GB/s"
        page.table(["property", "value"], [
            ("device", device), ("engine parallelism (int8 MACs / cycle)", e.parallelism),
            (f"cycles per {e.unit}", e.cycles), (f"DRAM bytes per {e.unit}", e.bytes),
            (f"compute bound ({e.unit}s/s)", e.compute_rate), (f"bandwidth bound ({e.unit}s/s)", e.dram_rate),
            (f"estimate ({e.unit}s/s, {e.bound}-bound)", e.rate), ("fits the part", "yes" if e.fits else "no")])
        page.plot(plots.fpga_stages(e), "FPGA cycles and DRAM bytes per stage, with the bounds")
        page.plot(plots.fpga_resources(e), "FPGA resource use against the part")
    if b.roofline:
        page.heading(f"Orin roofline ({b.tensorrt})")
        page.plot(plots.orin_roofline(b.roofline), "Orin roofline, int8 against fp16")
        page.table(["graph", "device", "int8 ms", "fp16 ms", "int8 MB", "fp16 MB", "speed-up"],
                   [(g, x.device, x.int8_ms, x.fp16_ms, x.int8_bytes / 1e6, x.fp16_bytes / 1e6, x.speedup)
                    for g, rows in b.roofline.items() for x in rows])
    if b.target == "orin":
        page.heading("TensorRT lint")
        found = [(g, f["severity"], f["rule"], f["node_name"], f["message"]) for g, fs in b.lint.items() for f in fs]
        if found:
            page.table(["graph", "severity", "rule", "node", "message"], found)
        else:
            page.para(f"No findings ({', '.join(b.lint)}).")
    page.heading("Verification")
    page.table(["check", "result", "status"], b.verification, status=2)
