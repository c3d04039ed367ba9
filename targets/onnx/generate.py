"""Text generation from an ONNX step graph with ONNX Runtime, in constant memory (state in, state out)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from edgec.errors import DataError, EdgecError
from edgec.targets.onnx.verify import ort_session

__all__ = ["generate"]


class _Codec:
    """Token ids <-> text: the folder's tokenizer.json, or bytes for a 256-token vocabulary."""

    def __init__(self, folder: Path, vocab_size: int) -> None:
        self.tokenizer = None
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        elif vocab_size != 256:
            raise DataError(f"{folder}: no tokenizer.json and vocab_size {vocab_size} is not byte-level")
        self.bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids if self.tokenizer else list(text.encode("utf-8"))

    def decode(self, token: int) -> str:
        return self.tokenizer.decode([token]) if self.tokenizer else self.bytes.decode(bytes([token]))


def generate(folder: Path, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
             seed: int = 0) -> Iterator[str]:
    """Yield generated text piece by piece (greedy when ``temperature`` is 0)."""
    if not (folder / "step.onnx").is_file():
        raise EdgecError(f"{folder}: no step.onnx; build one with edgec build --target cpu (or orin)")
    manifest = json.loads((folder / "manifest.json").read_text())
    codec = _Codec(folder, int(manifest["vocab_size"]))
    ids = codec.encode(prompt)
    if not ids:
        raise DataError("the prompt is empty; pass --prompt with some text")
    session = ort_session(onnx.load(folder / "step.onnx"), optimize=True)
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
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))
