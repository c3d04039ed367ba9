"""A name -> array store that reads safetensors lazily and never unpickles anything."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from edgec.errors import CheckpointError

__all__ = ["WeightStore", "read_safetensors_header"]

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1}


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """Parse and check a safetensors header (names, dtypes, shapes, offsets) without reading data."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("file shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8 or n > 100_000_000:
                raise ValueError("header length exceeds the file")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err}); re-save it with "
                              "save_pretrained(..., safe_serialization=True)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object; the file is corrupt")
    header.pop("__metadata__", None)
    data_len = size - 8 - n
    for name, info in header.items():
        try:
            start, end = (int(v) for v in info["data_offsets"])
            shape = [int(d) for d in info["shape"]]
            nbytes = _DTYPE_BYTES[info["dtype"]] * int(np.prod(shape, dtype=np.int64))
            if start < 0 or end < start or min(shape, default=0) < 0:
                raise ValueError("negative offset or size")
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: garbled safetensors entry for {name!r}") from None
        if end - start != nbytes or end > data_len:
            raise CheckpointError(f"{path}: tensor {name!r} lies outside the file (truncated download?)")
    return header


def _decode(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Little-endian safetensors bytes -> float32 (bf16 widened by a 16-bit shift)."""
    if dtype == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    np_dtype = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                "I8": "i1", "U8": "u1", "BOOL": "u1"}[dtype]
    return raw.view(np_dtype).astype(np.float32)


class WeightStore(Mapping[str, np.ndarray]):
    """Weights by name: float32 NumPy arrays read on first use from safetensors, or held in memory.

    Every tensor is checked for NaN/Inf when it is first read, so a bad weight is named.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._files: dict[str, tuple[Path, int, dict]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        for name, arr in (arrays or {}).items():
            self[name] = arr

    @classmethod
    def from_safetensors(cls, files: list[Path]) -> WeightStore:
        store = cls()
        for path in files:
            header = read_safetensors_header(path)
            data_start = 8 + struct.unpack("<Q", path.open("rb").read(8))[0]
            for name, info in header.items():
                store._files[name] = (path, data_start, info)
                store._shapes[name] = tuple(info["shape"])
        return store

    def __setitem__(self, name: str, arr: np.ndarray) -> None:
        arr = np.asarray(arr)
        self._arrays[name] = arr
        self._shapes[name] = tuple(arr.shape)
        self._files.pop(name, None)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._arrays:
            return self._arrays[name]
        if name not in self._files:
            raise KeyError(name)
        path, data_start, info = self._files[name]
        start, end = info["data_offsets"]
        try:
            raw = np.fromfile(path, dtype=np.uint8, count=end - start, offset=data_start + start)
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read tensor {name!r} ({err})") from None
        arr = _decode(raw, info["dtype"]).reshape(info["shape"])
        if not np.isfinite(arr).all():
            raise CheckpointError(f"{path}: weight {name!r} contains NaN or Inf; the checkpoint is corrupt")
        self._arrays[name] = arr
        return arr

    def __contains__(self, name: object) -> bool:  # never reads a tensor (Mapping's default would)
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def copy(self) -> WeightStore:
        new = WeightStore()
        new._arrays, new._files, new._shapes = dict(self._arrays), dict(self._files), dict(self._shapes)
        return new
