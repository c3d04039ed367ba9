"""Text generation from an ONNX step graph with ONNX Runtime, in constant memory (state in, state out)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import ArtifactError, DataError, EdgecError
from edgec.frontends.validate import load_tokenizer, one_line
from edgec.manifest import check_files, manifest_field

__all__ = ["generate", "open_session"]

TOKENIZER = "tokenizer.json"


def open_session(path: Path, optimize: bool = False):
    """An ONNX Runtime session for the ONNX file ``path`` (hash-checked by the caller); a file that does not
    parse or that ONNX Runtime refuses is one ArtifactError line."""
    import onnx

    from edgec.targets.onnx.verify import ort_session

    try:
        model = onnx.load(path)
    except Exception as err:  # protobuf's DecodeError and friends: a truncated or garbled file
        raise ArtifactError(f"{path}: not a readable ONNX model ({one_line(err)}); rebuild the folder with "
                            "edgec build") from None
    try:
        return ort_session(model, optimize=optimize)
    except Exception as err:  # ONNX Runtime's own exception types (Fail, InvalidGraph, ...)
        raise ArtifactError(f"{path}: ONNX Runtime cannot load it ({one_line(err)}); rebuild the folder with "
                            "edgec build") from None


def checked_vocab(folder: Path, manifest: dict[str, Any], session: Any) -> int:
    """The vocabulary size of step.onnx (its logits' width), which manifest.json's vocab_size must repeat."""
    logits = next((o for o in session.get_outputs() if o.name == "logits"), None)
    width = logits.shape[-1] if logits is not None and logits.shape else None
    if not isinstance(width, int) or width < 1:
        raise ArtifactError(f"{folder / 'step.onnx'}: has no logits output of a fixed width; rebuild the folder with "
                            "edgec build")
    stated = manifest_field(folder, manifest, "vocab_size", int)
    if stated != width:
        raise ArtifactError(f"{folder / 'manifest.json'}: says vocab_size {stated}, but step.onnx's logits have "
                            f"{width}; the folder was altered: rebuild it with edgec build")
    return width


class _Codec:
    """Token ids <-> text: the folder's tokenizer.json, or bytes for a 256-token vocabulary."""

    def __init__(self, folder: Path, vocab_size: int, manifest: dict[str, Any]) -> None:
        self.tokenizer = None
        if TOKENIZER in manifest["files"] or (folder / TOKENIZER).exists():
            check_files(folder, manifest, [TOKENIZER])
            try:
                self.tokenizer = load_tokenizer(folder / TOKENIZER)
            except EdgecError as err:
                raise ArtifactError(f"{err}; the build was altered: rebuild the folder with edgec build") from None
        elif vocab_size != 256:
            raise ArtifactError(f"{folder}: no tokenizer.json and vocab_size {vocab_size} is not byte-level; the "
                                "build was altered: rebuild the folder with edgec build")
        self.bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids if self.tokenizer else list(text.encode("utf-8"))

    def decode(self, token: int) -> str:
        return self.tokenizer.decode([token]) if self.tokenizer else self.bytes.decode(bytes([token]))


def generate(folder: Path, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
             seed: int = 0) -> Iterator[str]:
    """An iterator of generated text, piece by piece (greedy when ``temperature`` is 0).

    Everything read (manifest, step.onnx, tokenizer.json) is checked against the manifest, and the
    session is loaded, before this returns: errors come before any output.
    """
    from edgec.targets.onnx.build import read_onnx_manifest

    folder = Path(folder)
    if not (folder / "manifest.json").is_file() and not (folder / "step.onnx").is_file():
        raise DataError(f"{folder}: no step.onnx; build one with edgec build --target cpu (or orin)")
    manifest = read_onnx_manifest(folder, "run")
    check_files(folder, manifest, ["step.onnx"])
    session = open_session(folder / "step.onnx", optimize=True)
    vocab_size = checked_vocab(folder, manifest, session)
    codec = _Codec(folder, vocab_size, manifest)
    ids = codec.encode(prompt)
    if not ids:
        raise DataError("the prompt is empty; pass --prompt with some text")
    if max(ids) >= vocab_size:
        raise ArtifactError(f"{folder / TOKENIZER}: gives token id {max(ids)}, outside the vocabulary of step.onnx "
                            f"({vocab_size}); rebuild the folder with edgec build")
    return _stream(session, codec, ids, max_new_tokens, temperature, seed)


def _stream(session, codec: _Codec, ids: list[int], max_new_tokens: int, temperature: float,
            seed: int) -> Iterator[str]:
    names = [o.name for o in session.get_outputs()]
    state = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs() if i.name != "tokens"}
    rng = np.random.default_rng(seed)
    logits = None
    for step in range(len(ids) + max_new_tokens - 1):
        token = ids[step] if step < len(ids) else _sample(logits, temperature, rng)
        if step >= len(ids):
            yield codec.decode(token)
        out = dict(zip(names, session.run(None, {"tokens": np.array([token], np.int64), **state}), strict=True))
        state = {k: out[k + "_out"] for k in state}
        logits = out["logits"][0]
    yield codec.decode(_sample(logits, temperature, rng))


def _sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Greedy at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature > 0:
        with np.errstate(over="ignore", invalid="ignore"):
            z = logits.astype(np.float64) / temperature
            p = np.exp(z - z.max())
        if np.isfinite(p).all():  # a temperature so small that z overflows is greedy decoding in the limit
            return int(rng.choice(len(p), p=p / p.sum()))
    return int(np.argmax(logits))
