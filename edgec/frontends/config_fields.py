"""Typed fields of a Hugging Face config.json, each refused with one line naming the field and the value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from edgec.errors import CheckpointError
from edgec.frontends.validate import short

__all__ = ["as_float", "as_int", "bool_field", "float_field", "int_field"]


def as_int(value: Any, name: str, source: str, high: int, limit: str, low: int = 1) -> int:
    """A JSON integer (or integral float like 64.0) in [low, high]; bools, strings and 96.7 are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckpointError(f"{source}: {name} must be a JSON integer, got {short(value)}; write a whole number")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise CheckpointError(f"{source}: {name} {short(value)} is not a whole number; write an integer")
        value = int(value)
    if not low <= value <= high:
        raise CheckpointError(f"{source}: {name} {short(value)} is outside [{low}, {high}] ({limit}); "
                              "fix config.json")
    return value


def int_field(cfg: Mapping[str, Any], name: str, source: str, high: int, limit: str, default: int | None = None) -> int:
    """Field ``name`` as in :func:`as_int`; only a missing or null field takes ``default``."""
    value = cfg.get(name)
    if value is None:
        if default is None:
            raise CheckpointError(f"{source}: required field {name!r} is missing; "
                                  "pass a config.json written by the model's save_pretrained")
        if not 1 <= default <= high:
            raise CheckpointError(f"{source}: {name} defaults to {default}, outside [1, {high}] ({limit}); "
                                  f"set {name} explicitly")
        return default
    return as_int(value, name, source, high, limit)


def bool_field(cfg: Mapping[str, Any], name: str, source: str, default: bool) -> bool:
    """A JSON true/false (``default`` when missing or null); 0, 1 and "false" are refused."""
    value = cfg.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise CheckpointError(f"{source}: {name} must be true or false, got {short(value)}")
    return value


def float_field(cfg: Mapping[str, Any], name: str, source: str, default: float | None, low: float,
                high: float) -> float | None:
    """A finite JSON number in (low, high] (``default`` when missing or null); bools and strings are refused."""
    value = cfg.get(name)
    return default if value is None else as_float(value, name, source, low, high)


def as_float(value: Any, name: str, source: str, low: float, high: float) -> float:
    """A finite JSON number in (low, high]; bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low < value <= high:
        raise CheckpointError(f"{source}: {name} {short(value)} is not a number in ({low:g}, {high:g}]; "
                              "fix config.json")
    return float(value)
