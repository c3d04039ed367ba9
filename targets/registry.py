"""The build targets as plug-ins: one table entry per target, its module imported only when it is used.

A target module provides three functions:

- ``check_options(options) -> None``: refuse bad option values before any quantization work;
- ``build_target(qm, output, options, tokenizer) -> dict``: write the artifact folder, return its report;
- ``summarize(report, output) -> str``: the lines the CLI prints;
- ``verify_build(folder, manifest) -> str``: re-check a build folder of the target (``edgec verify``).

``options`` holds the target's own options (table below, defaults filled in); every target has
``tokens``, the length of the golden sequence it checks its artifact on.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgec.errors import DataError, UnsupportedModelError

if TYPE_CHECKING:
    from edgec.families import Family
    from edgec.passes.quantize import QuantizedModel

__all__ = ["TARGETS", "TargetInfo", "TargetModule", "load_target", "target_of_format", "target_options"]


class TargetModule(Protocol):
    """What a target's module provides (see the module docstring)."""

    def check_options(self, options: Mapping[str, Any]) -> None: ...

    def build_target(self, qm: QuantizedModel, output: Path, options: Mapping[str, Any],
                     tokenizer: Path | None) -> dict: ...

    def summarize(self, report: dict, output: Path) -> str: ...

    def verify_build(self, folder: Path, manifest: dict) -> str: ...


@dataclass(frozen=True)
class TargetInfo:
    """A target: its module, a one-line description, its builds' manifest format, its options' defaults, and
    the kinds of model input it compiles (``Family.inputs``: the targets compile a decode step of tokens)."""

    module: str
    description: str
    format: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ("tokens",)


TARGETS: dict[str, TargetInfo] = {
    "fpga": TargetInfo("edgec.targets.fpga.build", "Vitis HLS project, C-simulated bit-exact with g++", "edgec-fpga/",
                       {"tokens": 128, "device": "zcu102", "parallelism": None, "csim": True, "trace": False},
                       ("tokens", "images")),
    "cpu": TargetInfo("edgec.targets.onnx.build", "int8 ONNX for ONNX Runtime (exact integer matmuls)", "edgec-onnx/",
                      {"tokens": 32}, ("tokens", "images")),
    "orin": TargetInfo("edgec.targets.orin.build", "int8 Q/DQ ONNX for TensorRT, with its recipe", "edgec-orin/",
                       {"tokens": 32, "jetpack": "6.2", "engine": "auto"}, ("tokens", "images")),
}


def target_options(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of target ``name``: ``given`` (the values the user set) over the defaults.

    An option that belongs to another target is refused rather than silently ignored.
    """
    if name not in TARGETS:
        raise DataError(f"--target {name!r} is not available in this version; choose one of: {', '.join(TARGETS)}")
    own = TARGETS[name].defaults
    for option in given:
        if option not in own:
            owners = [t for t, info in TARGETS.items() if option in info.defaults]
            flag = "--" + option.replace("_", "-")
            raise DataError(f"{flag} is an option of --target {' / '.join(owners)}; it does nothing for "
                            f"--target {name}: drop it")
    return {**own, **given}


def check_compiles(name: str, family: Family) -> None:
    """Refuse, in one line, a model whose kind of input target ``name`` does not compile."""
    if family.inputs not in TARGETS[name].inputs:
        others = [t for t, info in TARGETS.items() if family.inputs in info.inputs]
        instead = f"build them with --target {' or '.join(others)}" if others else "no target builds them yet"
        raise UnsupportedModelError(f"--target {name} compiles models of {' or '.join(TARGETS[name].inputs)} in this "
                                    f"version; {family.title} models take {family.inputs}: {instead}")


def target_of_format(fmt: str) -> str | None:
    """The target whose builds have manifest format ``fmt`` (None for a QDIR or anything else)."""
    return next((name for name, info in TARGETS.items() if fmt.startswith(info.format)), None)


def load_target(name: str) -> TargetModule:
    """The module of target ``name`` (imported now)."""
    return importlib.import_module(TARGETS[name].module)  # type: ignore[return-value]
