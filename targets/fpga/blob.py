"""The weights file of an FPGA project: every int8 weight and int64 constant array, at fixed offsets.

Format (little-endian): 8-byte magic ``EDGECW1\\0``, uint64 count of int8 values, uint64 count of int64
values, the int8 section, zero padding to a multiple of 8 bytes, the int64 section. The generated
``model_config.h`` names each array's offset inside its section.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["MAGIC", "WeightBlob", "read_blob"]

MAGIC = b"EDGECW1\0"
ALIGN_BYTES = 64


@dataclass
class WeightBlob:
    """Collects arrays into two sections and hands out their offsets (each array stored once)."""

    int8: list[np.ndarray] = field(default_factory=list)
    int64: list[np.ndarray] = field(default_factory=list)
    offsets: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name -> (section, offset, size)
    _n8: int = 0
    _n64: int = 0

    def add(self, name: str, array: np.ndarray, section: str) -> int:
        """Register ``array`` under ``name`` (once) and return its element offset in ``section``."""
        if name in self.offsets:
            return self.offsets[name][1]
        flat = np.ascontiguousarray(array).reshape(-1)
        # Every array starts on a 64-byte boundary, so AXI bursts can be widened to 512 bits.
        if section == "int8":
            if flat.dtype != np.int8:
                raise TypeError(f"{name}: int8 section needs int8 data, got {flat.dtype}")
            pad = (-self._n8) % ALIGN_BYTES
            self.int8.append(np.zeros(pad, np.int8))
            offset, self._n8 = self._n8 + pad, self._n8 + pad + flat.size
            self.int8.append(flat)
        else:
            pad = (-self._n64) % (ALIGN_BYTES // 8)
            self.int64.append(np.zeros(pad, np.int64))
            offset, self._n64 = self._n64 + pad, self._n64 + pad + flat.size
            self.int64.append(flat.astype(np.int64))
        self.offsets[name] = (section, offset, int(flat.size))
        return offset

    @property
    def sizes(self) -> tuple[int, int]:
        return self._n8, self._n64

    def write(self, path: Path) -> None:
        """Write the file array by array (no copy of the whole model in memory)."""
        with path.open("wb") as f:
            f.write(MAGIC + struct.pack("<QQ", self._n8, self._n64))
            for array in self.int8:
                f.write(array.data)
            f.write(b"\0" * ((-self._n8) % 8))
            for array in self.int64:
                f.write(array.astype("<i8", copy=False).data)


def read_blob(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The (int8, int64) sections of a weights file."""
    raw = path.read_bytes()
    if raw[:8] != MAGIC:
        raise ValueError(f"{path}: not an edgec weights file")
    n8, n64 = struct.unpack("<QQ", raw[8:24])
    start64 = 24 + n8 + (-n8) % 8
    return (np.frombuffer(raw, np.int8, n8, 24), np.frombuffer(raw, "<i8", n64, start64))
