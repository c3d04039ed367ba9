"""A name -> array store that reads safetensors lazily and never unpickles anything.

Tensors are read (or derived by a pass) on first use and cached; ``forget`` drops cached tensors that can be
read or derived again, which is how compilation streams a model through memory layer by layer.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from edgec.errors import CheckpointError
from edgec.frontends.validate import check_file, loads_json, one_line, short
from edgec.limits import MAX_HEADER_BYTES, MAX_TENSOR_RANK

__all__ = ["WeightStore", "read_safetensors", "read_safetensors_header", "write_safetensors"]

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1}
_RESAVE = "re-save it with save_pretrained(..., safe_serialization=True)"


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """Parse and check a safetensors header (names, dtypes, shapes, offsets) without reading tensor data.

    Every entry must have a known dtype and a shape whose byte count equals its offsets; together the
    entries must tile the data buffer exactly (no overlap, no hole, nothing past the end of the file).
    """
    return _read_header(path)[0]


def _read_header(path: Path) -> tuple[dict[str, dict], int]:
    """The checked header of :func:`read_safetensors_header` and the file offset where tensor data starts."""
    size = check_file(path, "a .safetensors file written by save_pretrained(..., safe_serialization=True)",
                      CheckpointError)
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise CheckpointError(f"{path}: {size} bytes is shorter than the 8-byte safetensors header "
                                      f"length (truncated download?); {_RESAVE}")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: safetensors header length {n} is larger than MAX_HEADER_BYTES = "
                                      f"{MAX_HEADER_BYTES} (not a safetensors file?); {_RESAVE}")
            if n > size - 8:
                raise CheckpointError(f"{path}: safetensors header length {n} exceeds the file's {size - 8} bytes "
                                      f"after it (truncated download?); {_RESAVE}")
            text = f.read(n)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read it ({one_line(err)})") from None
    header = loads_json(text, f"{path}: safetensors header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is a JSON {type(header).__name__}, not an object; "
                              f"the file is corrupt; {_RESAVE}")
    _check_metadata(path, header.pop("__metadata__", {}))
    data_len = size - 8 - n
    for name, info in header.items():
        _check_entry(path, name, info, data_len)
    _check_tiling(path, header, data_len)
    return header, 8 + n


def _check_metadata(path: Path, meta: object) -> None:
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: safetensors __metadata__ must map strings to strings, got {short(meta)}; "
                              f"{_RESAVE}")


def _check_entry(path: Path, name: str, info: object, data_len: int) -> None:
    """One tensor entry: dtype known, shape of non-negative ints, offsets consistent with the shape."""
    where = f"{path}: tensor {short(name)}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise CheckpointError(f"{where}: entry {short(info)} lacks dtype, shape or data_offsets; {_RESAVE}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
        raise CheckpointError(f"{where} has dtype {short(dtype)}, which edgec cannot read (supported: "
                              f"{', '.join(_DTYPE_BYTES)}); convert it to float32, float16 or bfloat16")
    if not _int_list(shape) or len(shape) > MAX_TENSOR_RANK:
        raise CheckpointError(f"{where}: shape {short(shape)} is not a list of at most MAX_TENSOR_RANK = "
                              f"{MAX_TENSOR_RANK} non-negative integers; {_RESAVE}")
    if not _int_list(offsets) or len(offsets) != 2 or offsets[1] < offsets[0]:
        raise CheckpointError(f"{where}: data_offsets {short(offsets)} is not [begin, end] with 0 <= begin <= end; "
                              f"{_RESAVE}")
    nbytes = _DTYPE_BYTES[dtype] * math.prod(shape)
    begin, end = offsets
    if end - begin != nbytes:
        raise CheckpointError(f"{where}: shape {shape} of {dtype} needs {nbytes} bytes, but its data_offsets "
                              f"[{begin}, {end}] span {end - begin}; the header is corrupt; {_RESAVE}")
    if end > data_len:
        raise CheckpointError(f"{where}: data ends at byte {end}, past the {data_len} data bytes in the file "
                              "(truncated download?); download it again")


def _int_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def _check_tiling(path: Path, header: dict[str, dict], data_len: int) -> None:
    """The entries cover the data buffer exactly once, as the safetensors format requires."""
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in header.items())
    covered, last = 0, None
    for begin, end, name in spans:
        if begin < covered:
            raise CheckpointError(f"{path}: tensors {short(last)} and {short(name)} overlap (bytes {begin} to "
                                  f"{covered}); the header is corrupt; {_RESAVE}")
        if begin > covered:
            raise CheckpointError(f"{path}: bytes {covered} to {begin} (before tensor {short(name)}) belong to no "
                                  f"tensor; the header is corrupt; {_RESAVE}")
        covered, last = end, name
    if covered != data_len:
        raise CheckpointError(f"{path}: {data_len - covered} bytes after the last tensor belong to no tensor; "
                              f"the file is corrupt; {_RESAVE}")


_NUMPY_DTYPES = {np.dtype(v): k for k, v in {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                                                "I16": "<i2", "I8": "i1", "U8": "u1"}.items()}


def write_safetensors(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` as a safetensors file, one tensor at a time (as safetensors orders them: widest dtype
    first, then by name, so that every tensor is aligned to its element size).

    safetensors' own ``save_file`` first copies every tensor into one bytes object, doubling the peak memory of
    a multi-GB model; this writes the same format (8-byte little-endian header length, JSON header padded with
    spaces to 8 bytes, the data in header order) straight from the arrays. Read back by ``safe_open``.
    """
    names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))  # widest first: every tensor aligned
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in names:
        arr = tensors[name]
        if arr.dtype not in _NUMPY_DTYPES:  # big-endian dtypes included
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} has no little-endian safetensors dtype")
        header[name] = {"dtype": _NUMPY_DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            f.write(np.asarray(tensors[name], order="C").reshape(-1).view(np.uint8).data)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (header checked) in its stored dtype, read tensor by tensor: the file is
    never held whole (safetensors' ``load_file`` reads it all first, twice the memory of a multi-GB model)."""
    header, data_start = _read_header(path)
    dtypes = {k: v for v, k in _NUMPY_DTYPES.items()}
    tensors = {}
    with path.open("rb") as f:
        for name, info in header.items():
            if info["dtype"] not in dtypes:
                raise CheckpointError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which edgec does not write")
            f.seek(data_start + info["data_offsets"][0])
            count = int(np.prod(info["shape"], dtype=np.int64))
            arr = np.fromfile(f, dtype=dtypes[info["dtype"]], count=count)
            if arr.size != count:
                raise CheckpointError(f"{path}: tensor {name!r} ends past the end of the file")
            tensors[name] = arr.reshape(info["shape"])
    return tensors


def _decode(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Little-endian safetensors bytes -> float32 (bf16 widened by a 16-bit shift)."""
    if dtype == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    np_dtype = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                "I8": "i1", "U8": "u1", "BOOL": "u1"}[dtype]
    return raw.view(np_dtype).astype(np.float32)


Derivation = Callable[["WeightStore"], np.ndarray]


class WeightStore(Mapping[str, np.ndarray]):
    """Weights by name: float32 NumPy arrays read on first use from safetensors, derived on first use from
    other weights (a pass's rewrite, see ``derive``), or held in memory.

    Every tensor is checked for NaN/Inf when it is first read, so a bad weight is named.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._files: dict[str, tuple[Path, int, dict]] = {}
        self._derived: dict[str, Derivation] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        for name, arr in (arrays or {}).items():
            self[name] = arr

    @classmethod
    def from_safetensors(cls, files: list[Path], weight_map: Mapping[str, str] | None = None) -> WeightStore:
        """Index the tensors of ``files`` (headers only); with a shard index, each tensor must be where it says.

        A tensor in two files is refused, as is (with ``weight_map``, tensor name -> shard file name) a tensor
        the index puts in another shard, or one the index lists that no shard holds.
        """
        store = cls()
        for path in files:
            header, data_start = _read_header(path)
            for name, info in header.items():
                if name in store._files:
                    raise CheckpointError(f"{path}: tensor {short(name)} is also in {store._files[name][0]}; "
                                          "a tensor must be in exactly one shard: re-save the checkpoint")
                if weight_map is not None and weight_map.get(name) != path.name:
                    where = (f"maps it to {short(weight_map[name])}" if name in weight_map else "does not list it")
                    raise CheckpointError(f"{path}: holds tensor {short(name)}, but the shard index {where}; "
                                          "re-save the checkpoint")
                store._files[name] = (path, data_start, info)
                store._shapes[name] = tuple(info["shape"])
        paths = {p.name: p for p in files}
        for name, shard in (weight_map or {}).items():
            if name not in store._files:
                raise CheckpointError(f"{paths.get(shard, shard)}: the shard index maps tensor {short(name)} to this "
                                      "shard, which does not hold it; re-save the checkpoint")
        return store

    def __setitem__(self, name: str, arr: np.ndarray) -> None:
        arr = np.asarray(arr)
        self._arrays[name] = arr
        self._shapes[name] = tuple(arr.shape)
        self._files.pop(name, None)
        self._derived.pop(name, None)

    def derive(self, name: str, shape: tuple[int, ...], fn: Derivation) -> None:
        """Make ``name`` the tensor ``fn(store)`` of ``shape``, computed on first use (and again after ``forget``).

        ``fn`` reads the tensors it needs from the store it is given through ``read``, so that deriving one
        tensor caches nothing else.
        """
        self._derived[name] = fn
        self._shapes[name] = tuple(shape)
        self._arrays.pop(name, None)
        self._files.pop(name, None)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = self.read(name)
        return self._arrays[name]

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name``, from the cache if it is there, else read or derived without caching it."""
        if name in self._arrays:
            return self._arrays[name]
        if name in self._derived:
            arr = np.asarray(self._derived[name](self))
            if arr.shape != self._shapes[name]:
                raise ValueError(f"derived weight {name!r} has shape {arr.shape}, not {self._shapes[name]}")
            return arr
        if name not in self._files:
            raise KeyError(name)
        path, data_start, info = self._files[name]
        start, end = info["data_offsets"]
        try:
            raw = np.fromfile(path, dtype=np.uint8, count=end - start, offset=data_start + start)
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read tensor {name!r} ({one_line(err)})") from None
        if raw.size != end - start:
            raise CheckpointError(f"{path}: tensor {name!r} ends past the end of the file (it shrank since it was "
                                  "opened?); download it again")
        arr = _decode(raw, info["dtype"]).reshape(info["shape"])
        if not np.isfinite(arr).all():
            raise CheckpointError(f"{path}: weight {name!r} contains NaN or Inf; the checkpoint is corrupt")
        return arr

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Drop the cached arrays of ``names`` (default: all) that can be read or derived again; tensors only
        held in memory stay."""
        for name in list(self._arrays) if names is None else names:
            if name in self._files or name in self._derived:
                self._arrays.pop(name, None)

    def rename(self, old: str, new: str) -> None:
        """Make tensor ``old`` available as ``new`` only (read or not yet read)."""
        for table in (self._arrays, self._files, self._derived, self._shapes):
            if old in table:
                table[new] = table.pop(old)

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
        new._derived = dict(self._derived)
        return new
