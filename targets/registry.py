"""The build targets as plug-ins: one table entry per target, its module imported only when it is used.

A target module provides three functions:

- ``check_options(options) -> None``: refuse bad option values before any quantization work;
- ``build_target(qm, output, options, tokenizer) -> dict``: write the artifact folder, return its report;
- ``summarize(report, output) -> str``: the lines the CLI prints.

``options`` holds the target's own options (table below, defaults filled in); every target has
``tokens``, the length of the golden sequence it checks its artifact on.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgec.errors import DataError
from edgec.passes.quantize import QuantizedModel

__all__ = ["TARGETS", "TargetInfo", "TargetModule", "load_target", "target_options"]


class TargetModule(Protocol):
    """What a target's module provides (see the module docstring)."""

    def check_options(self, options: Mapping[str, Any]) -> None: ...

    def build_target(self, qm: QuantizedModel, output: Path, options: Mapping[str, Any],
                     tokenizer: Path | None) -> dict: ...

    def summarize(self, report: dict, output: Path) -> str: ...


@dataclass(frozen=True)
class TargetInfo:
    """A target: its module, a one-line description, and its own options with their defaults."""

    module: str
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


TARGETS: dict[str, TargetInfo] = {
    "fpga": TargetInfo("edgec.targets.fpga.build", "Vitis HLS project, C-simulated bit-exact with g++",
                       {"tokens": 128, "device": "zcu102", "parallelism": None, "csim": True, "trace": False}),
    "cpu": TargetInfo("edgec.targets.onnx.build", "int8 ONNX for ONNX Runtime (exact integer matmuls)",
                      {"tokens": 32}),
    "orin": TargetInfo("edgec.targets.orin.build", "int8 Q/DQ ONNX for TensorRT, linted, with its build recipe",
                       {"tokens": 32, "jetpack": "6.2", "engine": "auto"}),
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


def load_target(name: str) -> TargetModule:
    """The module of target ``name`` (imported now)."""
    return importlib.import_module(TARGETS[name].module)  # type: ignore[return-value]
