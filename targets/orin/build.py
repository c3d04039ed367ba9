"""`edgec build --target orin`: int8 ONNX for TensorRT, linted for the JetPack's TensorRT, with its recipe.

On any machine: the verified step.onnx (as for --target cpu), the TensorRT compatibility lint (errors
stop the build), build_engine.sh and recipe.json for trtexec, the decode roofline for Orin Nano / NX /
AGX, golden inputs and outputs. Where TensorRT and a GPU exist (a Jetson), the same command builds the
engine too (``--engine auto``); ``--engine always`` insists, ``never`` skips it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgec.errors import DataError, EdgecError
from edgec.ir import entry_graphs
from edgec.outdir import atomic_dir
from edgec.passes.quantize import QuantizedModel
from edgec.targets.onnx.build import GOLDEN_TOKENS, export_verified, verify_build, write_onnx_folder
from edgec.targets.onnx.build import summarize as onnx_summary
from edgec.targets.onnx.build_images import (
    export_verified_images,
    golden_images,
    is_image_model,
    model_file,
    task_of,
    write_image_folder,
)
from edgec.targets.onnx.export import fp32_layers, state_shapes
from edgec.targets.onnx.files import as_proto
from edgec.targets.orin.engine import build_engine, tensorrt_available
from edgec.targets.orin.jetpack import TensorRTVersion, resolve_jetpack
from edgec.targets.orin.lint import format_findings, lint, require_clean
from edgec.targets.orin.recipe import LAYER_INFO, build_recipe
from edgec.targets.orin.roofline import decode_roofline, format_roofline

__all__ = ["ENGINE_MODES", "FORMAT", "UNHASHED", "build_orin", "build_target", "check_options", "summarize",
           "verify_build"]

FORMAT = "edgec-orin/1"
ENGINE_MODES = ("auto", "always", "never")
ENGINE = "step.engine"
#: Written later by the folder's own recipe (build_engine.sh: the engine and trtexec's layer info) or by
#: --engine here; device-specific, so edgec's but not hashed.
UNHASHED = (ENGINE, LAYER_INFO)


def _step_shapes(qm: QuantizedModel) -> dict[str, tuple[int, ...]]:
    """trtexec's --shapes at batch 1: the token and every state input of the step graph."""
    return {"tokens": (1,)} | {name: (1, *shape) for name, shape in state_shapes(qm.graphs["step"]).items()}


def build_orin(qm: QuantizedModel, output: Path, jetpack: str = "6.2", engine: str = "auto",
               tokenizer: Path | None = None, tokens: int = GOLDEN_TOKENS) -> dict:
    """Write the Orin artifact folder; the lint must be clean for the chosen JetPack's TensorRT."""
    if engine not in ENGINE_MODES:
        raise EdgecError(f"--engine {engine!r}: choose one of {', '.join(ENGINE_MODES)}")
    trt = resolve_jetpack(jetpack)
    if engine == "always" and not tensorrt_available():
        raise EdgecError("--engine always needs the tensorrt package and an NVIDIA GPU; run build_engine.sh on "
                         "the Jetson or pass --engine auto")
    if is_image_model(qm):
        return build_orin_images(qm, output, trt, jetpack, engine, tokens)
    shapes = _step_shapes(qm)
    roofline = decode_roofline(qm.graphs["step"])
    with atomic_dir(output) as tmp:  # verified and linted inside: a failed check leaves nothing behind
        model, prefill, golden, report = export_verified(qm, tmp, tokens=tokens)
        step_graph = as_proto(model)
        findings, prefill_findings = lint(step_graph, trt), lint(as_proto(prefill), trt)
        require_clean(findings)
        require_clean(prefill_findings)
        pinned = fp32_layers(step_graph)
        del step_graph
        script, recipe = build_recipe(trt, "step.onnx", ENGINE, shapes, fp32_layers=pinned)
        report |= {"tensorrt": str(trt), "jetpack": jetpack, "lint": [asdict(f) for f in findings],
                   "prefill_lint": [asdict(f) for f in prefill_findings], "roofline": roofline}
        (tmp / "build_engine.sh").write_text(script)
        (tmp / "build_engine.sh").chmod(0o755)
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True) + "\n")
        (tmp / "report.txt").write_text(f"step.onnx: {format_findings(findings)}\nprefill.onnx: "
                                        f"{format_findings(prefill_findings)}\n\nDecode roofline (batch 1):\n"
                                        f"{format_roofline(roofline)}\n")
        write_onnx_folder(tmp, qm, model, prefill, golden, report, FORMAT, tokenizer, unhashed=UNHASHED)
        if engine != "never" and tensorrt_available():
            build_engine(tmp / "step.onnx", tmp / ENGINE, shapes, fp32_layers=pinned)
            report["engine"] = ENGINE
    return report


def build_orin_images(qm: QuantizedModel, output: Path, trt: TensorRTVersion, jetpack: str, engine: str,
                      count: int) -> dict:
    """The Orin folder of a stateless model: per task model_<task>.onnx (Q/DQ for TensorRT), its lint, its
    build_engine_<task>.sh (build_engine.sh runs them all) and its roofline for one image."""
    shape = tuple(int(d) for d in qm.graphs[next(iter(entry_graphs(qm.graphs)))].values["images"].shape[1:])
    images = golden_images(shape, count)
    exported, report = export_verified_images(qm, False, images)
    scripts, recipes, texts, lints, rooflines = {}, {}, [], {}, {}
    for key, graph in entry_graphs(qm.graphs).items():
        task = task_of(key)
        model = exported[task].model
        findings = lint(model, trt)
        require_clean(findings)
        pinned = fp32_layers(model)
        scripts[task], recipes[task] = build_recipe(trt, model_file(task), _engine_file(task), {"images": (1, *shape)},
                                                    fp32_layers=pinned, layer_info=f"layers_{task}.json")
        lints[task], rooflines[task] = [asdict(f) for f in findings], decode_roofline(graph)
        texts.append(f"{model_file(task)}: {format_findings(findings)}\n\nRoofline, one image:\n"
                     f"{format_roofline(rooflines[task], 'image')}\n")
    report |= {"tensorrt": str(trt), "jetpack": jetpack, "lint": lints, "roofline": rooflines}
    unhashed = tuple(f for t in scripts for f in (_engine_file(t), f"layers_{t}.json"))
    with atomic_dir(output) as tmp:
        for task, script in scripts.items():
            (tmp / f"build_engine_{task}.sh").write_text(script)
            (tmp / f"build_engine_{task}.sh").chmod(0o755)
        (tmp / "build_engine.sh").write_text("#!/usr/bin/env bash\n# Build every task's engine (run on the Jetson).\n"
                                             "set -euo pipefail\ncd \"$(dirname \"$0\")\"\n" +
                                             "".join(f"./build_engine_{t}.sh\n" for t in scripts))
        (tmp / "build_engine.sh").chmod(0o755)
        (tmp / "recipe.json").write_text(json.dumps(recipes, indent=1, sort_keys=True) + "\n")
        (tmp / "report.txt").write_text("\n".join(texts))
        write_image_folder(tmp, qm, exported, images, report, FORMAT, unhashed=unhashed)
        if engine != "never" and tensorrt_available():
            for task in scripts:
                build_engine(tmp / model_file(task), tmp / _engine_file(task), {"images": (1, *shape)},
                             fp32_layers=fp32_layers(exported[task].model))
            report["engine"] = [_engine_file(t) for t in scripts]
    return report


def _engine_file(task: str) -> str:
    return f"model_{task}.engine"


def check_options(options: Mapping[str, Any]) -> None:
    """Plug-in entry (targets/registry.py): an unknown JetPack or engine mode fails before any work."""
    resolve_jetpack(options["jetpack"])
    if options["engine"] not in ENGINE_MODES:
        raise DataError(f"--engine {options['engine']!r}: choose one of {', '.join(ENGINE_MODES)}")


def build_target(qm: QuantizedModel, output: Path, options: Mapping[str, Any], tokenizer: Path | None) -> dict:
    """Plug-in entry: the Orin folder (ONNX, lint, recipe, roofline; the engine where TensorRT runs)."""
    return build_orin(qm, output, options["jetpack"], options["engine"], tokenizer, options["tokens"])


def summarize(report: dict, output: Path) -> str:
    """Plug-in entry: lint counts, the decode roofline, the engine, and the ONNX agreement."""
    if "tasks" in report:
        engine = ", ".join(report["engine"]) if "engine" in report else "not built here; run build_engine.sh"
        lines = []
        for task, findings in report["lint"].items():
            errors = sum(f["severity"] == "error" for f in findings)
            lines += [f"{report['tensorrt']} lint of model_{task}.onnx: {errors} errors, {len(findings) - errors} "
                      "warnings", f"roofline, one image ({task}):\n" + format_roofline(report["roofline"][task],
                                                                                         "image")]
        return "\n".join([*lines, f"engine: {engine}", onnx_summary(report, output)])
    findings = report["lint"] + report.get("prefill_lint", [])
    errors = sum(f["severity"] == "error" for f in findings)
    engine = ENGINE if "engine" in report else "not built here; run build_engine.sh"
    return "\n".join([f"{report['tensorrt']} lint: {errors} errors, {len(findings) - errors} warnings "
                      "(step.onnx and prefill.onnx)",
                      "decode roofline, batch 1:\n" + format_roofline(report["roofline"]),
                      f"engine: {engine}", onnx_summary(report, output)])
