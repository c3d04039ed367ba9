"""The engine build recipe: ``build_engine.sh`` (trtexec for the chosen TensorRT version) and its JSON twin.

Engines cannot be built on x86 for Jetson (TensorRT #1879, onnx-tensorrt #875), so the recipe is run on the
device. Flags (../shared/REFERENCES.md, "TensorRT and Jetson Orin"): TensorRT 8.5/8.6 need ``--int8 --fp16``
for a Q/DQ graph (it fails without ``--int8``); 10.3 takes the same, or ``--stronglyTyped`` with an
fp16-typed graph. ``--exportLayerInfo`` with ``--profilingVerbosity=detailed`` records which layers ran INT8.
Layers whose values leave fp16's range (the mLSTM cell: exp(-m) reaches 3e6) are kept in fp32 with
``--precisionConstraints=obey --layerPrecisions=NAME:fp32,... --layerOutputTypes=NAME:fp32,...`` (trtexec 8.4+).
"""

from __future__ import annotations

import re
import shlex

from edgec.errors import EdgecError
from edgec.targets.orin.jetpack import JETPACK, TensorRTVersion

__all__ = ["DEFAULT_WORKSPACE_MIB", "LAYER_INFO", "RecipeError", "build_recipe", "format_shapes", "fp32_flags"]

DEFAULT_WORKSPACE_MIB = 1024  # --memPoolSize=workspace:N is in MiB on 8.5, 8.6 and 10.3; Orin Nano has 8 GB shared.
LAYER_INFO = "layers.json"
TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"  # JetPack installs trtexec here, not on PATH
_NAME_OK = re.compile(r"^[A-Za-z0-9_./\-]+$")


class RecipeError(EdgecError):
    """An input name or shape cannot be written as a trtexec argument."""


def format_shapes(input_shapes: dict[str, tuple[int, ...]]) -> str:
    """trtexec's shape spec, ``name:1x2x3,other:4``, inputs in the given order (a scalar is ``name:``)."""
    parts = []
    for name, dims in input_shapes.items():
        if not _NAME_OK.match(name):
            raise RecipeError(f"input name {name!r} cannot be passed to trtexec --shapes (use [A-Za-z0-9_./-])")
        if any(int(d) < 1 for d in dims):
            raise RecipeError(f"input {name!r} has shape {tuple(dims)}; trtexec --shapes needs positive dimensions")
        parts.append(f"{name}:{'x'.join(str(int(d)) for d in dims)}")
    return ",".join(parts)


def fp32_flags(layers: list[str]) -> list[str]:
    """trtexec's precision constraints that keep ``layers`` (ONNX node names = TensorRT layer names) in fp32."""
    for name in layers:
        if not _NAME_OK.match(name):
            raise RecipeError(f"layer name {name!r} cannot be passed to trtexec --layerPrecisions "
                              "(use [A-Za-z0-9_./-])")
    if not layers:
        return []
    spec = ",".join(f"{name}:fp32" for name in layers)
    return ["--precisionConstraints=obey", f"--layerPrecisions={spec}", f"--layerOutputTypes={spec}"]


def build_recipe(
    trt: TensorRTVersion,
    onnx_name: str,
    engine_name: str,
    input_shapes: dict[str, tuple[int, ...]],
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    fp32_layers: list[str] | None = None,
    layer_info: str = LAYER_INFO,
) -> tuple[str, dict]:
    """The ``build_engine.sh`` text and the equivalent JSON dict; deterministic for the same arguments.

    ``fp32_layers`` (the graph's ``edgec.fp32_layers``) are pinned to fp32 by precision constraints.
    """
    precision = ["--int8", "--fp16", *fp32_flags(fp32_layers or [])]
    flags = [f"--onnx={onnx_name}", f"--saveEngine={engine_name}", *precision]
    shapes = format_shapes(input_shapes)
    if shapes:
        flags.append(f"--shapes={shapes}")
    flags += [f"--memPoolSize=workspace:{int(workspace_mib)}", f"--exportLayerInfo={layer_info}",
              "--profilingVerbosity=detailed"]
    jetpacks = [jp for jp, v in JETPACK.items() if v == trt]
    alternative = ["--stronglyTyped"] if trt.strongly_typed_flag_available else []

    lines = [
        "#!/usr/bin/env bash",
        f"# Build the TensorRT engine for {onnx_name} with {trt} (JetPack {', '.join(jetpacks) or '?'}).",
        "# Run this on the Jetson itself: engines are specific to the GPU and TensorRT version that built them.",
        "# --int8 --fp16: a Q/DQ graph fails to build without --int8; --fp16 lets the float islands run in fp16.",
    ]
    if fp32_layers:
        lines.append(f"# --precisionConstraints, --layerPrecisions, --layerOutputTypes: the {len(fp32_layers)} "
                     "layers whose values leave fp16's range stay fp32.")
    if alternative:
        constraints = " and the precision constraints" if fp32_layers else ""
        lines.append(f"# {trt} alternative: replace '--int8 --fp16'{constraints} with '--stronglyTyped' "
                     "(fp16-typed graph).")
    lines += [
        f"# {layer_info} (--exportLayerInfo, --profilingVerbosity=detailed) shows which layers really ran INT8.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f'TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo {TRTEXEC_DEFAULT})}}"',
        'if [ ! -x "$TRTEXEC" ]; then',
        '  echo "trtexec not found: install TensorRT (JetPack) or set TRTEXEC=/path/to/trtexec" >&2',
        "  exit 1",
        "fi",
        '"$TRTEXEC" \\',
    ]
    lines += [f"  {shlex.quote(f)} \\" for f in flags[:-1]]
    lines += [f"  {shlex.quote(flags[-1])}", ""]
    script = "\n".join(lines)

    recipe = {
        "tensorrt": trt.name,
        "version": trt.name,
        "jetpack": jetpacks,
        "onnx": onnx_name,
        "engine": engine_name,
        "shapes": {name: [int(d) for d in dims] for name, dims in input_shapes.items()},
        "precision": "int8+fp16",
        "fp32_layers": list(fp32_layers or []),
        "workspace_mib": int(workspace_mib),
        "layer_info": layer_info,
        "flags": flags,
        "command": ["trtexec", *flags],
        "alternative_flags": {"replace": precision, "with": alternative} if alternative else None,
    }
    return script, recipe
