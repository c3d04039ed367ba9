"""Token data for calibration and evaluation: a text file or a .npy array of token ids.

A data file is checked before it is read: a regular file of at most MAX_DATA_BYTES; a .npy header is
parsed (magic, dtype, shape against the file size) before any array is allocated; text is decoded and
tokenized in pieces, so no more than MAX_DATA_TOKENS token ids are ever held.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from edgec.errors import DataError
from edgec.frontends.model import Model
from edgec.frontends.validate import check_file, load_tokenizer, one_line, path_problem, short
from edgec.limits import MAX_DATA_BYTES, MAX_DATA_TOKENS

__all__ = ["CALIB_SEQ_LEN", "CALIB_TOKENS", "calibration_batches", "check_data_file", "load_tokens", "model_tokens",
           "read_npy_header", "windows"]

_PIECE = 1 << 22  # text is decoded and tokenized in pieces of about this many characters, cut at newlines
_NPY_MAGIC = b"\x93NUMPY"
_WHAT = "UTF-8 text or a .npy array of integer token ids"


def check_data_file(path: str | Path) -> int:
    """The size of a data file, after refusing a path that is no regular file or is over MAX_DATA_BYTES."""
    path = Path(path)
    if path_problem(path) == "does not exist":
        raise DataError(f"{path}: no such data file; pass {_WHAT}")
    return check_file(path, _WHAT, DataError, MAX_DATA_BYTES, "MAX_DATA_BYTES")


def load_tokens(path: str | Path, vocab_size: int, tokenizer: Path | None = None) -> np.ndarray:
    """Token ids of a data file: .npy integer ids, or text (tokenizer.json, else bytes for vocab 256)."""
    path = Path(path)
    size = check_data_file(path)
    is_npy = path.suffix.lower() == ".npy"
    try:
        ids = _read_npy(path, size) if is_npy else _read_text(path, size, vocab_size, tokenizer)
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({one_line(err)}); pass {_WHAT}") from None
    if ids.size < 2:
        what = "empty data" if ids.size == 0 else "too little data"
        raise DataError(f"{path}: {what} ({ids.size} token{'' if ids.size == 1 else 's'}; need at least 2)")
    _check_vocab(path, ids, vocab_size)
    return ids.astype(np.int64, copy=False)


def _check_vocab(path: Path, ids: np.ndarray, vocab_size: int) -> None:
    """Refuse the first id outside [0, vocab_size), naming it and its position."""
    bad = np.flatnonzero((ids < 0) | (ids >= vocab_size))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: token id {int(ids[i])} at position {i} is outside the vocabulary [0, {vocab_size}) "
                        "of the model; pass ids of this model's tokenizer")


def read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy header, versions 1.0 and 2.0, without reading the data.

    A bad header raises whatever numpy's parser raises (ValueError, SyntaxError, ...): callers name the file.
    """
    version = npy_format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
    reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, fortran, dtype = reader(f)
    if any(d < 0 for d in shape):
        raise ValueError(f"shape {shape} has a negative dimension")
    return tuple(shape), fortran, dtype


def _read_npy(path: Path, size: int) -> np.ndarray:
    """Flat integer ids of a .npy file whose magic, header, dtype and size are checked before reading."""
    with path.open("rb") as f:
        if f.read(6) != _NPY_MAGIC:
            raise DataError(f"{path}: not a .npy file (no NUMPY magic bytes); pass an array saved by numpy.save, "
                            "or text without the .npy suffix")
        f.seek(0)
        try:
            shape, fortran, dtype = read_npy_header(f)
        except Exception as err:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError...
            raise DataError(f"{path}: garbled .npy header ({one_line(err)}); re-save it with numpy.save") from None
        if len(shape) > 2:
            raise DataError(f"{path}: a .npy of token ids is 1-D (a stream) or 2-D (rows of a stream), not of "
                            f"shape {shape}; save ids.reshape(-1)")
        if dtype.hasobject:
            raise DataError(f"{path}: .npy array holds Python objects (dtype {short(str(dtype))}); edgec never "
                            "unpickles: save integer token ids")
        if not np.issubdtype(dtype, np.integer):
            raise DataError(f"{path}: token ids must be integers, got dtype {short(str(dtype))}; "
                            "save them with e.g. np.save(path, ids.astype(np.int32))")
        count = math.prod(shape)
        if count > MAX_DATA_TOKENS:
            raise DataError(f"{path}: shape {shape} holds {count} token ids, more than MAX_DATA_TOKENS = "
                            f"{MAX_DATA_TOKENS}; pass a shorter array")
        need, have = count * dtype.itemsize, size - f.tell()
        if need > have:
            raise DataError(f"{path}: .npy header declares shape {shape} of {dtype} ({need} bytes), but the file "
                            f"holds only {have} bytes of data (truncated?); re-save it with numpy.save")
        flat = np.fromfile(f, dtype=dtype, count=count)
    if count == 0:  # e.g. shape (0, 10**9, 10**9): no ids, and no reshape to an impossible size
        return flat
    return flat.reshape(shape, order="F" if fortran else "C").reshape(-1)


def _read_text(path: Path, size: int, vocab_size: int, tokenizer: Path | None) -> np.ndarray:
    """Token ids of a UTF-8 text file: tokenizer.json ids, else its bytes when the vocabulary is 256 bytes."""
    with path.open("rb") as f:
        if f.read(6) == _NPY_MAGIC:
            raise DataError(f"{path}: is a .npy array but not named .npy; rename it to end in .npy")
    if tokenizer is None and vocab_size != 256:
        raise DataError(f"{path}: the model has no tokenizer.json and vocab_size {vocab_size} is not "
                        "byte-level; pass a .npy of token ids")
    if tokenizer is None and size > MAX_DATA_TOKENS:
        raise DataError(f"{path}: {size} bytes are {size} byte-level tokens, more than MAX_DATA_TOKENS = "
                        f"{MAX_DATA_TOKENS}; pass a shorter file")
    tok = None if tokenizer is None else load_tokenizer(tokenizer)
    parts, total = [], 0
    for i, piece in enumerate(_text_pieces(path)):
        if tok is None:
            ids = np.frombuffer(piece.encode("utf-8"), dtype=np.uint8)
        else:
            try:
                ids = np.asarray(tok.encode(piece, add_special_tokens=i == 0).ids, dtype=np.int64)
            except Exception as err:  # the tokenizers library raises plain Exception
                raise DataError(f"{path}: {tokenizer} cannot tokenize this text ({one_line(err)})") from None
        total += ids.size
        if total > MAX_DATA_TOKENS:
            raise DataError(f"{path}: more than MAX_DATA_TOKENS = {MAX_DATA_TOKENS} tokens; pass a shorter file")
        parts.append(ids)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _text_pieces(path: Path) -> Iterator[str]:
    """The strictly decoded UTF-8 text of ``path`` in pieces of about _PIECE characters, cut after newlines."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending, offset = "", 0
    with path.open("rb") as f:
        while True:
            block = f.read(_PIECE)
            buffered = len(decoder.getstate()[0])
            try:
                pending += decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                pos = offset - buffered + err.start
                raise DataError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {pos}: "
                                f"{err.reason}); pass UTF-8 text or a .npy of token ids") from None
            offset += len(block)
            if not block:
                if pending:
                    yield pending
                return
            if len(pending) < _PIECE:  # a file shorter than one piece is tokenized whole
                continue
            cut = pending.rfind("\n") + 1 or len(pending)
            yield pending[:cut]
            pending = pending[cut:]


def windows(ids: np.ndarray, seq_len: int, batch: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Cut ids into [B, L] batches of non-overlapping windows (a short tail is dropped, unless it is all)."""
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if seq_len < 2 or len(ids) < 2:
        raise DataError(f"need windows of at least 2 tokens (window {seq_len}, {len(ids)} tokens)")
    seq_len = min(seq_len, len(ids))
    rows = [ids[i:i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    return [np.stack(rows[i:i + batch]) for i in range(0, len(rows), batch)]


CALIB_SEQ_LEN = 256  # calibration windows: 8 per batch of this length
CALIB_TOKENS = 8192  # calibration tokens used by default


def calibration_batches(model: Model, path: str | Path, seq_len: int = CALIB_SEQ_LEN,
                        max_tokens: int = CALIB_TOKENS) -> list[np.ndarray]:
    """The [8, seq_len] token batches the quantizer calibrates on, from a data file."""
    return windows(model_tokens(model, path), seq_len, batch=8, max_tokens=max_tokens)


def model_tokens(model: Model, path: str | Path) -> np.ndarray:
    return load_tokens(path, model.spec.vocab_size, model.tokenizer)
