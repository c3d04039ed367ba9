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
from edgec.outdir import atomic_dir
from edgec.passes.quantize import QuantizedModel
from edgec.targets.onnx.build import GOLDEN_TOKENS, export_verified, verify_build, write_onnx_folder
from edgec.targets.onnx.build import summarize as onnx_summary
from edgec.targets.orin.engine import build_engine, tensorrt_available
from edgec.targets.orin.jetpack import resolve_jetpack
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
    spec, shapes = qm.spec, {"tokens": (1,)}
    for name in qm.graphs["step"].inputs[1:]:
        tail = (spec.conv_kernel - 1,) if name.endswith("conv_state") else (spec.state_size,)
        shapes[name] = (1, spec.intermediate_size, *tail)
    return shapes


def build_orin(qm: QuantizedModel, output: Path, jetpack: str = "6.2", engine: str = "auto",
               tokenizer: Path | None = None, tokens: int = GOLDEN_TOKENS) -> dict:
    """Write the Orin artifact folder; the lint must be clean for the chosen JetPack's TensorRT."""
    if engine not in ENGINE_MODES:
        raise EdgecError(f"--engine {engine!r}: choose one of {', '.join(ENGINE_MODES)}")
    trt = resolve_jetpack(jetpack)
    if engine == "always" and not tensorrt_available():
        raise EdgecError("--engine always needs the tensorrt package and an NVIDIA GPU; run build_engine.sh on "
                         "the Jetson or pass --engine auto")
    model, seq, report = export_verified(qm, tokens=tokens)
    findings = lint(model, trt)
    require_clean(findings)
    shapes = _step_shapes(qm)
    script, recipe = build_recipe(trt, "step.onnx", ENGINE, shapes)
    roofline = decode_roofline(qm.spec)
    report |= {"tensorrt": str(trt), "jetpack": jetpack, "lint": [asdict(f) for f in findings],
               "roofline": roofline}
    with atomic_dir(output) as tmp:
        (tmp / "build_engine.sh").write_text(script)
        (tmp / "build_engine.sh").chmod(0o755)
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True) + "\n")
        (tmp / "report.txt").write_text(f"{format_findings(findings)}\n\nDecode roofline (batch 1):\n"
                                        f"{format_roofline(roofline)}\n")
        write_onnx_folder(tmp, qm, model, seq, report, FORMAT, tokenizer, unhashed=UNHASHED)
        if engine != "never" and tensorrt_available():
            build_engine(tmp / "step.onnx", tmp / ENGINE, shapes)
            report["engine"] = ENGINE
    return report


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
    errors = sum(f["severity"] == "error" for f in report["lint"])
    engine = ENGINE if "engine" in report else "not built here; run build_engine.sh"
    return "\n".join([f"{report['tensorrt']} lint: {errors} errors, {len(report['lint']) - errors} warnings",
                      "decode roofline, batch 1:\n" + format_roofline(report["roofline"]),
                      f"engine: {engine}", onnx_summary(report, output)])
