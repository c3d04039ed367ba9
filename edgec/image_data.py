"""Labelled image data for vision models (calibration and evaluation): an .npz of uint8 images and labels.

The format (issue 9), as written by numpy.savez or savez_compressed (or :func:`save_images`):

- ``images``: uint8 [N, H, W, C], RGB (C the model's in_chans), H x W the model's image_size exactly
  (edgec does not resize), N >= 1;
- ``labels_<task>``: one 1-D integer array of N labels in [0, classes) per task of the model (required
  for evaluation; for calibration they may be left out, and are checked when present);
- nothing else: any other array is refused, so a misspelt task name is not silently ignored.

A file is checked before it is read, and nothing is unpickled: a regular file of at most
MAX_DATA_BYTES; a zip whose end record lists at most _MAX_MEMBERS entries in a small directory; each
member's .npy header (no object dtype, the expected rank, dtype and sizes) before any array is
allocated, at most MAX_DATA_BYTES of arrays in all (so a compressed member cannot inflate past it).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from edgec.data import read_npy_header
from edgec.errors import DataError
from edgec.frontends.validate import check_file, one_line, path_problem, short
from edgec.limits import MAX_DATA_BYTES, MAX_TASKS

if TYPE_CHECKING:
    from edgec.frontends.vit_moe_spec import VitMoeSpec

__all__ = ["ImageData", "image_batches", "load_images", "save_images"]

_WHAT = "an .npz with images (uint8 [N, H, W, C]) and labels_<task> arrays"
_MAX_MEMBERS = MAX_TASKS + 1  # images and one labels array per task: more entries cannot all be valid
_MAX_DIRECTORY = 1 << 20  # bytes of the zip's central directory (~100 bytes an entry)
_EOCD = struct.Struct("<4s4H2LH")  # zip end-of-central-directory record, without its comment
_LABELS = "labels_"


@dataclass(frozen=True)
class ImageData:
    """Images uint8 [N, H, W, C] and labels int64 [N] by task name (the tasks the file labels)."""

    images: np.ndarray
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.images)

    def select(self, rows: slice) -> ImageData:
        """The images (and their labels) of ``rows``, as views."""
        return ImageData(self.images[rows], {task: y[rows] for task, y in self.labels.items()})


@dataclass(frozen=True)
class _Member:
    """A checked .npy member of the archive: where its data starts and what it holds."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def load_images(path: str | Path, spec: VitMoeSpec, need_labels: bool = True) -> ImageData:
    """The images and labels of an .npz data file for ``spec``'s model, every problem a one-line DataError.

    ``need_labels``: every task of the model must be labelled (evaluation); else labels may be missing
    (calibration).
    """
    path = Path(path)
    if path_problem(path) == "does not exist":
        raise DataError(f"{path}: no such data file; pass {_WHAT}")
    size = check_file(path, _WHAT, DataError, MAX_DATA_BYTES, "MAX_DATA_BYTES")
    try:
        _check_archive(path, size)
        with zipfile.ZipFile(path) as archive:
            members = _headers(path, archive)
            _check_keys(path, members, spec, need_labels)
            _check_shapes(path, members, spec)
            arrays = {key: _read(path, archive, m) for key, m in members.items()}
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise DataError(f"{path}: cannot read the .npz ({one_line(err)}); re-save it with numpy.savez") from None
    labels = {}
    for task, classes in spec.tasks:
        if _LABELS + task in arrays:  # checked in their own dtype: a uint64 past 2^63 must not wrap below 0
            _check_range(path, task, arrays[_LABELS + task], classes)
            labels[task] = arrays[_LABELS + task].astype(np.int64)
    return ImageData(arrays["images"], labels)


def image_batches(data: ImageData, batch: int, max_images: int | None = None) -> list[ImageData]:
    """``data`` (its first ``max_images``) cut into batches of ``batch`` images; the last may be shorter."""
    if batch < 1:
        raise DataError(f"batch size {batch} is below 1; pass a positive batch size")
    count = len(data) if max_images is None else min(len(data), max_images)
    return [data.select(slice(i, min(i + batch, count))) for i in range(0, count, batch)]


def save_images(path: str | Path, images: np.ndarray, labels: dict[str, np.ndarray]) -> None:
    """Write ``images`` (uint8 [N, H, W, C]) and ``labels`` ({task: [N] ints}) in this format, compressed."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"images must be uint8 [N, H, W, C], got {images.dtype} of shape {images.shape}")
    arrays = {_LABELS + task: np.asarray(y, np.int64) for task, y in labels.items()}
    with Path(path).open("wb") as f:
        np.savez_compressed(f, images=images, **arrays)


def _check_archive(path: Path, size: int) -> None:
    """Refuse a file that is no zip, or whose end record announces more entries or directory than a data file has.

    zipfile would otherwise read and parse the whole central directory, however large, before any check.
    """
    with path.open("rb") as f:
        head = f.read(6)
        if head == b"\x93NUMPY":
            raise DataError(f"{path}: is a single .npy array; save images and labels together with "
                            "numpy.savez(path, images=..., labels_<task>=...)")
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise DataError(f"{path}: not an .npz (zip) archive; pass {_WHAT}, written by numpy.savez")
        tail_size = min(size, _EOCD.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
        f.seek(size - tail_size)
        tail = f.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise DataError(f"{path}: garbled .npz (no zip end record; truncated?); re-save it with numpy.savez")
    entries, directory = _EOCD.unpack_from(tail, at)[4:6]
    if entries > _MAX_MEMBERS or directory > _MAX_DIRECTORY:
        raise DataError(f"{path}: the archive lists {entries} entries in a {directory}-byte directory; a data "
                        f"file holds images and at most {MAX_TASKS} labels arrays: pass {_WHAT}")


def _headers(path: Path, archive: zipfile.ZipFile) -> dict[str, _Member]:
    """The archive's arrays by key, each .npy header parsed and checked (no object dtype, total size bounded)."""
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise DataError(f"{path}: the archive holds {len(infos)} entries; a data file holds images and at most "
                        f"{MAX_TASKS} labels arrays: pass {_WHAT}")
    members: dict[str, _Member] = {}
    total = 0
    for info in infos:
        key = info.filename.removesuffix(".npy")
        if key == info.filename:
            raise DataError(f"{path}: archive entry {short(info.filename)} is not a .npy array; pass {_WHAT}")
        if key in members:
            raise DataError(f"{path}: the archive holds {short(info.filename)} twice; re-save it with numpy.savez")
        with archive.open(info) as f:
            member = _header(path, key, f)
        if member.dtype.hasobject:
            raise DataError(f"{path}: array {short(key)} holds Python objects (dtype {short(str(member.dtype))}); "
                            "edgec never unpickles: save uint8 images and integer labels")
        total += int(np.prod(member.shape, dtype=object)) * member.dtype.itemsize
        if total > MAX_DATA_BYTES:
            raise DataError(f"{path}: its arrays hold more than MAX_DATA_BYTES = {MAX_DATA_BYTES} bytes "
                            "(uncompressed); pass fewer images")
        members[key] = member
    return members


def _header(path: Path, key: str, f: IO[bytes]) -> _Member:
    try:
        shape, fortran, dtype = read_npy_header(f)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError):  # the archive, not the header: load_images says so
        raise
    except Exception as err:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError...
        raise DataError(f"{path}: array {short(key)} has a garbled .npy header ({one_line(err)}); re-save the "
                        "file with numpy.savez") from None
    return _Member(key, tuple(shape), dtype, fortran)


def _check_keys(path: Path, members: dict[str, _Member], spec: VitMoeSpec, need_labels: bool) -> None:
    """images present; labels_<task> only for the model's tasks, and for every task if ``need_labels``."""
    expected = [_LABELS + task for task in spec.task_names]
    tasks = ", ".join(spec.task_names)
    for key in members:
        if key != "images" and key not in expected:
            what = "labels of a task the model does not have" if key.startswith(_LABELS) else "an unknown array"
            raise DataError(f"{path}: {short(key)} is {what}; the model's tasks are {tasks}: name the arrays "
                            f"images and {', '.join(expected)}")
    if "images" not in members:
        raise DataError(f"{path}: has no images array; save uint8 [N, H, W, C] images under the name images")
    missing = [k for k in expected if k not in members]
    if need_labels and missing:
        raise DataError(f"{path}: has no {missing[0]}; evaluation needs labels for every task of the model "
                        f"({tasks}): save one labels_<task> array per task")


def _check_shapes(path: Path, members: dict[str, _Member], spec: VitMoeSpec) -> None:
    """images uint8 [N >= 1, H, W, C] of the model's size and channels; labels integer [N]."""
    images = members["images"]
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images are {images.dtype}, not uint8; save pixel values 0..255 as "
                        "images.astype(np.uint8) (not scaled to [0, 1] or normalized)")
    if len(images.shape) != 4:
        raise DataError(f"{path}: images have shape {images.shape}; save them as [N, height, width, channels]")
    n, h, w, c = images.shape
    if (h, w) != spec.image_size:
        raise DataError(f"{path}: images are {h} x {w} pixels, but the model takes {spec.image_size[0]} x "
                        f"{spec.image_size[1]} (image_size in config.json); resize them before saving")
    if c != spec.in_chans:
        raise DataError(f"{path}: images have {c} channels, but the model takes {spec.in_chans} (in_chans in "
                        "config.json); save [N, H, W, C] with C = in_chans (RGB for 3)")
    if n == 0:
        raise DataError(f"{path}: holds no images (N = 0); save at least one image")
    for key, m in members.items():
        if key == "images":
            continue
        if not np.issubdtype(m.dtype, np.integer):
            raise DataError(f"{path}: {key} is {short(str(m.dtype))}, not integers; save class indices, e.g. "
                            "labels.astype(np.int64)")
        if m.shape != (n,):
            raise DataError(f"{path}: {key} has shape {m.shape}, but there are {n} images; save one label per "
                            f"image, shape ({n},)")


def _read(path: Path, archive: zipfile.ZipFile, m: _Member) -> np.ndarray:
    """The array of a member whose header was checked: exactly its declared bytes are read."""
    need = int(np.prod(m.shape)) * m.dtype.itemsize
    with archive.open(m.name + ".npy") as f:
        _header(path, m.name, f)
        data = bytearray(need)
        got = f.readinto(data)
    if got != need:
        raise DataError(f"{path}: array {m.name} is truncated ({got} of {need} bytes); re-save it with numpy.savez")
    flat = np.frombuffer(data, dtype=m.dtype)
    return flat.reshape(m.shape, order="F" if m.fortran else "C")


def _check_range(path: Path, task: str, labels: np.ndarray, classes: int) -> None:
    """Refuse the first label outside [0, classes), naming it and its image."""
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: labels_{task}[{i}] = {int(labels[i])} is outside [0, {classes}) (task {task} "
                        f"has {classes} classes); fix the labels or the model")
