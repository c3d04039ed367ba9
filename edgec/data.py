"""Token data for calibration and evaluation: a text file or a .npy array of token ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import DataError
from edgec.frontends.model import Model

__all__ = ["load_tokens", "model_tokens", "windows"]


def load_tokens(path: str | Path, vocab_size: int, tokenizer: Path | None = None) -> np.ndarray:
    """Token ids of a data file: .npy integer ids, or text (tokenizer.json, else bytes for vocab 256)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    if path.suffix == ".npy":
        try:
            ids = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: not a readable .npy array of token ids ({err})") from None
        if not np.issubdtype(ids.dtype, np.integer):
            raise DataError(f"{path}: token ids must be integers, got dtype {ids.dtype}")
        ids = ids.reshape(-1).astype(np.int64)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); pass UTF-8 text "
                            "or a .npy of token ids") from None
        if tokenizer is not None:
            from tokenizers import Tokenizer

            ids = np.asarray(Tokenizer.from_file(str(tokenizer)).encode(text).ids, dtype=np.int64)
        elif vocab_size == 256:
            ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        else:
            raise DataError(f"{path}: the model has no tokenizer.json and vocab_size {vocab_size} is not "
                            "byte-level; pass a .npy of token ids")
    if ids.size < 2:
        raise DataError(f"{path}: empty data (need at least 2 tokens)")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise DataError(f"{path}: token id {int(ids.max() if ids.max() >= vocab_size else ids.min())} is "
                        f"outside the vocabulary [0, {vocab_size})")
    return ids


def windows(ids: np.ndarray, seq_len: int, batch: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Cut ids into [B, L] batches of non-overlapping windows (a short tail is dropped, unless it is all)."""
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if seq_len < 2 or len(ids) < 2:
        raise DataError(f"need windows of at least 2 tokens (window {seq_len}, {len(ids)} tokens)")
    seq_len = min(seq_len, len(ids))
    rows = [ids[i:i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    return [np.stack(rows[i:i + batch]) for i in range(0, len(rows), batch)]


def model_tokens(model: Model, path: str | Path) -> np.ndarray:
    return load_tokens(path, model.spec.vocab_size, model.tokenizer)
