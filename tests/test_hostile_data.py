"""Hostile data files (--calib, --data): one line naming the file and the culprit, checked by stat and by
the .npy header before anything is read or allocated; no output folder, inputs unchanged."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_fails_cleanly, assert_no_leftovers, run_cli, tree

from edgec.data import load_tokens
from edgec.errors import DataError
from edgec.limits import MAX_DATA_BYTES, MAX_DATA_TOKENS


def npy_bytes(descr: str, shape: tuple, data: bytes = b"", version: int = 1) -> bytes:
    """A .npy file with a hand-written header (any descr and shape, whatever the data holds)."""
    head = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    prefix = 10 if version == 1 else 12
    head += b" " * (-(prefix + len(head) + 1) % 64) + b"\n"
    size = len(head).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + head + data


def saved(arr: np.ndarray) -> Callable[[Path], None]:
    """np.save to exactly this path (np.save would append .npy to a name like ids.txt)."""
    def make(p: Path) -> None:
        with p.open("wb") as f:
            np.save(f, arr, allow_pickle=False)
    return make


def raw(content: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(content)


def sparse(size: int) -> Callable[[Path], None]:
    """A file of ``size`` bytes that takes no disk space (a hole)."""
    def make(p: Path) -> None:
        with p.open("wb") as f:
            f.truncate(size)
    return make


def npy_with_header_of(shape: tuple) -> Callable[[Path], None]:
    """A valid int32 .npy of 4 ids whose header then claims ``shape``."""
    def make(p: Path) -> None:
        data = np.arange(4, dtype="<i4").tobytes()
        p.write_bytes(npy_bytes("<i4", shape, data))
    return make


# (file name, how to make it, fragments of the error line)
CASES = [
    pytest.param("dir.txt", Path.mkdir, ["dir.txt", "is a directory"], id="directory"),
    pytest.param("absent.txt", lambda p: None, ["absent.txt", "no such data file"], id="absent"),
    pytest.param("link.txt", lambda p: p.symlink_to("gone.txt"), ["link.txt", "is a broken or looping symlink"],
                 id="broken-symlink"),
    pytest.param("fifo.txt", os.mkfifo, ["fifo.txt", "not a regular file"], id="fifo"),
    pytest.param("huge.txt", sparse(MAX_DATA_BYTES + 1), ["huge.txt", str(MAX_DATA_BYTES + 1), "MAX_DATA_BYTES"],
                 id="over-max-data-bytes"),
    pytest.param("long.txt", sparse(MAX_DATA_TOKENS + 1), ["long.txt", "MAX_DATA_TOKENS"], id="over-max-tokens"),
    pytest.param("bad.txt", raw(b"good text \xff\xfe here"), ["bad.txt", "not UTF-8 text", "0xff", "offset 10"],
                 id="text-not-utf8"),
    pytest.param("late.txt", raw(b"a" * (5 << 20) + b"\xc3("), ["late.txt", "not UTF-8 text", f"offset {5 << 20}"],
                 id="text-not-utf8-after-first-piece"),
    pytest.param("empty.txt", raw(b""), ["empty.txt", "empty data"], id="text-empty"),
    pytest.param("one.txt", raw(b"x"), ["one.txt", "too little data", "1 token;"], id="text-one-byte"),
    pytest.param("ids.txt", saved(np.arange(10)), ["ids.txt", "is a .npy array", "rename"], id="npy-named-txt"),
    pytest.param("random.npy", raw(os.urandom(64).replace(b"\x93", b"x")), ["random.npy", "not a .npy file"],
                 id="npy-random-bytes"),
    pytest.param("pickle.npy", raw(b"\x80\x04\x95" + bytes(40)), ["pickle.npy", "not a .npy file"], id="npy-pickle"),
    pytest.param("upper.NPY", raw(b"hello world"), ["upper.NPY", "not a .npy file"], id="npy-upper-suffix"),
    pytest.param("obj.npy", raw(npy_bytes("|O", (3,), bytes(24))), ["obj.npy", "Python objects"], id="npy-object"),
    pytest.param("f.npy", saved(np.array([0.5, 1.5])), ["f.npy", "must be integers", "float64"], id="npy-float"),
    pytest.param("b.npy", saved(np.array([True, False])), ["b.npy", "must be integers", "bool"], id="npy-bool"),
    pytest.param("rec.npy", saved(np.zeros(3, dtype=[("a", "<i4")])), ["rec.npy", "must be integers"],
                 id="npy-structured"),
    pytest.param("c.npy", saved(np.array([1 + 2j])), ["c.npy", "must be integers", "complex"], id="npy-complex"),
    pytest.param("short.npy", npy_with_header_of((1_000_000,)), ["short.npy", "(1000000,)", "4000000 bytes",
                 "holds only 16"], id="npy-shape-past-end"),
    pytest.param("giant.npy", npy_with_header_of((10**12,)), ["giant.npy", "MAX_DATA_TOKENS"], id="npy-shape-giant"),
    pytest.param("neg.npy", raw(npy_bytes("<i4", (-5,))), ["neg.npy", "garbled .npy header"], id="npy-shape-negative"),
    pytest.param("hdr.npy", raw(b"\x93NUMPY\x01\x00\x10\x00{'descr': 7}    \n"), ["hdr.npy", "garbled .npy header"],
                 id="npy-header-garbled"),
    pytest.param("expr.npy", raw(npy_bytes("<i4", (4,)).replace(b"(4,)", b"__import__('os')")),
                 ["expr.npy", "garbled .npy header"], id="npy-header-code"),
    pytest.param("v3.npy", raw(npy_bytes("<i4", (2,), bytes(8), version=2).replace(b"\x02\x00", b"\x03\x00", 1)),
                 ["v3.npy", "3.0 is not supported"], id="npy-version-3"),
    pytest.param("trunc.npy", raw(b"\x93NUMPY\x01\x00\xff"), ["trunc.npy", "garbled .npy header"],
                 id="npy-header-truncated"),
    pytest.param("vocab.npy", saved(np.array([1, 2, 9999, 3])), ["vocab.npy", "token id 9999 at position 2",
                 "[0, 256)"], id="npy-id-too-large"),
    pytest.param("neg_id.npy", saved(np.array([[1, 2], [3, -1]])), ["neg_id.npy", "token id -1 at position 3"],
                 id="npy-id-negative"),
    pytest.param("u64.npy", saved(np.array([1, 2**63 + 5], dtype=np.uint64)), ["u64.npy", str(2**63 + 5)],
                 id="npy-id-uint64-no-wrap"),
    pytest.param("one.npy", saved(np.array([7])), ["one.npy", "too little data"], id="npy-one-token"),
    pytest.param("none.npy", saved(np.zeros(0, dtype=np.int64)), ["none.npy", "empty data"], id="npy-empty"),
    pytest.param("scalar.npy", saved(np.int64(5)), ["scalar.npy", "too little data"], id="npy-0d"),
    pytest.param("x" * 300 + ".txt", lambda p: None, ["too long"], id="name-too-long"),
]


def _refused(args: list, fragments: list[str], ckpt: Path, data_dir: Path, out: Path | None) -> None:
    before = tree(ckpt), sorted(os.listdir(data_dir)), {p: os.lstat(data_dir / p).st_size for p in os.listdir(data_dir)}
    assert_fails_cleanly(run_cli(*args), *fragments)
    after = tree(ckpt), sorted(os.listdir(data_dir)), {p: os.lstat(data_dir / p).st_size for p in os.listdir(data_dir)}
    assert after == before
    if out is not None:
        assert not os.path.lexists(out)
    assert_no_leftovers(ckpt.parent, data_dir)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.mark.parametrize(("name", "make", "fragments"), CASES)
def test_quantize_refuses_data(name, make, fragments, ckpt, data_dir, tmp_path):
    make(data_dir / name)
    out = tmp_path / "out"
    _refused(["quantize", ckpt, "--calib", data_dir / name, "-o", out], fragments, ckpt, data_dir, out)


# quantize's output-folder check resolves its input paths first and words a symlink loop its own way
LOOP = pytest.param("loop.txt", lambda p: p.symlink_to("loop.txt"), ["loop.txt", "is a broken or looping symlink"],
                    id="symlink-loop")
# eval quantizes a checkpoint (about 2 s) before it opens --data, so only a few cases go through eval
EVAL_CASES = [c for c in CASES if c.id in {"text-not-utf8", "npy-object", "npy-shape-past-end"}] + [LOOP]


@pytest.mark.parametrize(("name", "make", "fragments"), EVAL_CASES)
def test_eval_refuses_data(name, make, fragments, ckpt, data_dir, byte_text):
    make(data_dir / name)
    _refused(["eval", ckpt, "--calib", byte_text, "--data", data_dir / name], fragments, ckpt, data_dir, None)


def _word_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "state": 2, "space": 300}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))


def test_tokenizer_ids_outside_vocabulary(ckpt, data_dir, tmp_path):
    _word_tokenizer(ckpt / "tokenizer.json")
    (data_dir / "t.txt").write_text("the state the space")
    out = tmp_path / "out"
    _refused(["quantize", ckpt, "--calib", data_dir / "t.txt", "-o", out],
             ["t.txt", "token id 300 at position 3", "[0, 256)"], ckpt, data_dir, out)


@pytest.fixture()
def small_pieces(monkeypatch):
    """Decode and tokenize in pieces of 64 characters, so small files cross many piece boundaries."""
    import edgec.data

    monkeypatch.setattr(edgec.data, "_PIECE", 64)


def test_text_pieces_keep_every_byte(tmp_path, small_pieces):
    """Multi-byte characters across block and piece boundaries, lines longer than a piece: every byte is kept."""
    text = ("é€𝄞 state space\n" * 300 + "x€" * 100 + "\n" + "tail").encode()
    (tmp_path / "t.txt").write_bytes(text)
    ids = load_tokens(tmp_path / "t.txt", 256)
    assert ids.dtype == np.int64 and np.array_equal(ids, np.frombuffer(text, np.uint8))


def test_tokenized_pieces_match_whole(tmp_path, small_pieces):
    """Tokenizing in pieces cut at newlines gives the ids of tokenizing the whole text."""
    _word_tokenizer(tmp_path / "tokenizer.json")
    text = "the state space\n" * 300
    (tmp_path / "t.txt").write_text(text)
    ids = load_tokens(tmp_path / "t.txt", 512, tmp_path / "tokenizer.json")
    from tokenizers import Tokenizer

    whole = Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(text).ids
    assert np.array_equal(ids, whole)


def test_fortran_npy_is_read_in_logical_order(tmp_path):
    ids = np.asfortranarray(np.arange(12).reshape(3, 4))
    np.save(tmp_path / "f.npy", ids)
    assert np.array_equal(load_tokens(tmp_path / "f.npy", 256), np.arange(12))


def test_text_error_position_across_pieces(tmp_path, small_pieces):
    (tmp_path / "t.txt").write_bytes("€".encode() * 100 + b"\xe2\x82")
    with pytest.raises(DataError, match="offset 300"):
        load_tokens(tmp_path / "t.txt", 256)


def test_corpus_is_large_and_distinct():
    ids = [c.id for c in [*CASES, LOOP]]
    assert len(ids) == len(set(ids)) and len(ids) >= 15
