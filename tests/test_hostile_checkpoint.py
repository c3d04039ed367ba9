"""Hostile checkpoints: each bad config.json, safetensors header, shard index, tokenizer.json or path fails
with one line naming the file and the culprit, before any output folder is created or any input touched."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile import assert_fails_cleanly, assert_no_leftovers, run_cli, tree

ST = "model.safetensors"
INDEX = "model.safetensors.index.json"
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
D0, BIAS0 = "backbone.layers.0.mixer.D", "backbone.layers.0.mixer.dt_proj.bias"  # both f32 (128,)


# ---- small editors of a copied checkpoint -------------------------------------------------------------------


def read_st(path: Path) -> tuple[dict, bytes]:
    """(header dict, data bytes) of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path: Path, header: dict | None, data: bytes, raw_header: bytes | None = None,
             length: int | None = None) -> None:
    """Write a safetensors file; ``raw_header``/``length`` override the JSON header bytes and its length field."""
    hb = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb) if length is None else length) + hb + data)


def snapshot(folder: Path) -> dict[str, str]:
    """Like hostile.tree, but safe with symlink loops and FIFOs: links by target, other non-files by mode."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root, name)
            mode = os.lstat(p).st_mode
            rel = str(p.relative_to(folder))
            if stat.S_ISLNK(mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISREG(mode):
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = f"mode:{stat.S_IFMT(mode):o}"
    return out


def config(**changes) -> Callable[[Path], None]:
    """Set (or with None as a value, keep as null) config.json fields."""
    def mutate(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(cfg | changes))
    return mutate


def drop(field: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        del cfg[field]
        (folder / "config.json").write_text(json.dumps(cfg))
    return mutate


def config_text(edit: Callable[[str], str | bytes]) -> Callable[[Path], None]:
    """Rewrite config.json's text (a str result is UTF-8 encoded)."""
    def mutate(folder: Path) -> None:
        new = edit((folder / "config.json").read_text())
        (folder / "config.json").write_bytes(new.encode() if isinstance(new, str) else new)
    return mutate


def header(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """Edit model.safetensors' header in place (``edit`` mutates the dict); data bytes are kept."""
    def mutate(folder: Path) -> None:
        h, data = read_st(folder / ST)
        edit(h)
        write_st(folder / ST, h, data)
    return mutate


def raw_st(edit: Callable[[bytes, int], bytes]) -> Callable[[Path], None]:
    """Rewrite model.safetensors' bytes: ``edit(file bytes, header length)``."""
    def mutate(folder: Path) -> None:
        raw = (folder / ST).read_bytes()
        (folder / ST).write_bytes(edit(raw, struct.unpack("<Q", raw[:8])[0]))
    return mutate


def header_text(edit: Callable[[str], str]) -> Callable[[Path], None]:
    """Edit model.safetensors' header as text; its length field follows."""
    def mutate(folder: Path) -> None:
        raw = (folder / ST).read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        write_st(folder / ST, None, raw[8 + n:], raw_header=edit(raw[8:8 + n].decode()).encode())
    return mutate


def replace(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Replace the file ``name`` by what ``make(path)`` puts there."""
    def mutate(folder: Path) -> None:
        path = folder / name
        if path.exists():
            path.unlink()
        make(path)
    return mutate


def write(name: str, content: bytes) -> Callable[[Path], None]:
    return replace(name, lambda p: p.write_bytes(content))


def shard(folder: Path) -> dict[str, str]:
    """Split model.safetensors into two shards plus an index; returns the weight_map."""
    h, data = read_st(folder / ST)
    meta = h.pop("__metadata__", None)
    names = sorted(h)
    weight_map = {}
    for fname, part in zip(SHARDS, (names[::2], names[1::2]), strict=True):
        out, chunks, off = {"__metadata__": meta}, [], 0
        for n in sorted(part, key=lambda n: h[n]["data_offsets"][0]):
            b, e = h[n]["data_offsets"]
            out[n] = h[n] | {"data_offsets": [off, off + e - b]}
            chunks.append(data[b:e])
            off += e - b
            weight_map[n] = fname
        write_st(folder / fname, out, b"".join(chunks))
    (folder / ST).unlink()
    (folder / INDEX).write_text(json.dumps({"metadata": {"total_size": len(data)}, "weight_map": weight_map}))
    return weight_map


def sharded(edit: Callable[[Path, dict], object] | None = None) -> Callable[[Path], None]:
    """Shard the checkpoint, then ``edit(folder, weight_map)``; the edited weight_map is written back."""
    def mutate(folder: Path) -> None:
        weight_map = shard(folder)
        if edit is not None:
            edit(folder, weight_map)
            (folder / INDEX).write_text(json.dumps({"weight_map": weight_map}))
    return mutate


def index_file(make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Shard the checkpoint, then replace its index by what ``make(path)`` puts there."""
    def mutate(folder: Path) -> None:
        shard(folder)
        (folder / INDEX).unlink()
        make(folder / INDEX)
    return mutate


def _hole(h: dict, data: bytes) -> bytes:
    """Shift every tensor after the first by 16 bytes, leaving 16 unindexed bytes."""
    first = min((n for n in h if n != "__metadata__"), key=lambda n: h[n]["data_offsets"][0])
    end = h[first]["data_offsets"][1]
    for n, info in h.items():
        if n != "__metadata__" and info["data_offsets"][0] >= end and n != first:
            info["data_offsets"] = [info["data_offsets"][0] + 16, info["data_offsets"][1] + 16]
    return data[:end] + bytes(16) + data[end:]


def with_hole(folder: Path) -> None:
    h, data = read_st(folder / ST)
    write_st(folder / ST, h, _hole(h, data))


def overlap(h: dict) -> None:
    """The later of D0 and BIAS0 (same size) is pointed at the earlier one's bytes."""
    a, b = sorted((D0, BIAS0), key=lambda n: h[n]["data_offsets"][0])
    h[b]["data_offsets"] = list(h[a]["data_offsets"])


def duplicate_across_shards(folder: Path, weight_map: dict) -> None:
    """Copy a tensor of shard 1 into shard 2 too."""
    name = next(n for n, s in weight_map.items() if s == SHARDS[0])
    h1, d1 = read_st(folder / SHARDS[0])
    h2, d2 = read_st(folder / SHARDS[1])
    b, e = h1[name]["data_offsets"]
    h2[name] = h1[name] | {"data_offsets": [len(d2), len(d2) + e - b]}
    write_st(folder / SHARDS[1], h2, d2 + d1[b:e])


def first_of(shard_name: str) -> Callable[[dict], str]:
    return lambda wm: sorted(n for n, s in wm.items() if s == shard_name)[0]


def move_in_index(folder: Path, wm: dict) -> None:
    wm[first_of(SHARDS[0])(wm)] = SHARDS[1]


def unlist(folder: Path, wm: dict) -> None:
    del wm[first_of(SHARDS[0])(wm)]


def symlink_to(target: str) -> Callable[[Path], None]:
    return lambda p: p.symlink_to(target)


def long_path(folder: Path) -> str:
    return str(folder / ("x" * 300))


def big_config(folder: Path) -> None:
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[:-1] + " " * (17 << 20) + "}")


def tokenizer(content: bytes) -> Callable[[Path], None]:
    return write("tokenizer.json", content)


# ---- the corpus: (mutation, fragments the one error line must hold) -------------------------------------------

CFG = "config.json"
CASES = [
    # config.json: types, ranges, defaults
    pytest.param(config(num_hidden_layers=10**9), [CFG, "num_hidden_layers", "1000000000", "MAX_LAYERS"],
                 id="layers-1e9"),
    pytest.param(config_text(lambda t: t.replace('"hidden_size": 64', '"hidden_size": 1e999')),
                 [CFG, "1e999", "overflows"], id="hidden-1e999"),
    pytest.param(config(hidden_size="64"), [CFG, "hidden_size", "'64'"], id="hidden-string"),
    pytest.param(config(hidden_size=True), [CFG, "hidden_size", "True"], id="hidden-bool"),
    pytest.param(config(hidden_size=96.7), [CFG, "hidden_size", "96.7", "whole number"], id="hidden-fraction"),
    pytest.param(config(hidden_size=10**6), [CFG, "hidden_size", "1000000", "MAX_WIDTH"], id="hidden-huge"),
    pytest.param(config(hidden_size=[64]), [CFG, "hidden_size", "[64]"], id="hidden-list"),
    pytest.param(config(intermediate_size=0), [CFG, "intermediate_size 0", "MAX_WIDTH"], id="inter-zero"),
    pytest.param(config(intermediate_size=-128), [CFG, "intermediate_size -128"], id="inter-negative"),
    pytest.param(config(vocab_size=2**40), [CFG, "vocab_size", str(2**40), "MAX_VOCAB"], id="vocab-huge"),
    pytest.param(config(state_size=4096), [CFG, "state_size 4096", "MAX_STATE_SIZE"], id="state-huge"),
    pytest.param(config(conv_kernel=1000), [CFG, "conv_kernel 1000", "MAX_CONV_KERNEL"], id="conv-huge"),
    pytest.param(drop("vocab_size"), [CFG, "'vocab_size'", "missing"], id="vocab-missing"),
    pytest.param(config(state_size=None), [CFG, "'state_size'", "missing"], id="state-null"),
    pytest.param(config(expand=0, intermediate_size=None), [CFG, "expand 0"], id="expand-zero"),
    pytest.param(config(layer_norm_epsilon=0), [CFG, "layer_norm_epsilon 0"], id="eps-zero"),
    pytest.param(config(layer_norm_epsilon=2.5), [CFG, "layer_norm_epsilon 2.5"], id="eps-above-1"),
    pytest.param(config(layer_norm_epsilon="1e-5"), [CFG, "layer_norm_epsilon '1e-5'"], id="eps-string"),
    pytest.param(config(time_step_rank="big"), [CFG, "time_step_rank 'big'"], id="rank-string"),
    pytest.param(config(time_step_rank=10_000), [CFG, "time_step_rank 10000", "intermediate_size 128"],
                 id="rank-too-large"),
    pytest.param(config(time_step_rank=0), [CFG, "time_step_rank 0"], id="rank-zero"),
    pytest.param(config(use_bias="false"), [CFG, "use_bias", "'false'"], id="bool-string"),
    pytest.param(config(tie_word_embeddings=0), [CFG, "tie_word_embeddings", "got 0"], id="bool-int"),
    pytest.param(config(architectures=5), [CFG, "architectures", "got 5"], id="arch-int"),
    pytest.param(config(architectures=["MambaForCausalLM", 3]), [CFG, "architectures", "3]"], id="arch-mixed"),
    pytest.param(config(model_type=7), [CFG, "model_type", "got 7"], id="model-type-int"),
    pytest.param(config(model_type="llama", architectures=["LlamaForCausalLM"]), [CFG, "'LlamaForCausalLM'",
                 "is not Mamba"], id="not-mamba"),
    pytest.param(config(hidden_act="gelu"), [CFG, "hidden_act 'gelu'"], id="act-gelu"),
    pytest.param(config(intermediate_size=96), ["in_proj.weight", "(256, 64)", "(192, 64)", "expand 2"],
                 id="inter-vs-expand"),
    # config.json: encoding and JSON
    pytest.param(config_text(lambda t: t.replace('"silu"', "NaN")), [CFG, "NaN"], id="json-nan"),
    pytest.param(config_text(lambda t: t.replace("1e-05", "Infinity")), [CFG, "Infinity"], id="json-infinity"),
    pytest.param(config_text(lambda t: t.replace('"silu"', '"s\xe9lu"').encode("latin-1")),
                 [CFG, "not UTF-8", "0xe9"], id="json-latin1"),
    pytest.param(config_text(lambda t: "[" * 100_000 + "]" * 100_000), [CFG, "nested too deeply"], id="json-deep"),
    pytest.param(config_text(lambda t: "[1, 2]"), [CFG, "expected a JSON object", "list"], id="json-list"),
    pytest.param(config_text(lambda t: '{"hidden_size": 64, ' + t[1:]), [CFG, "'hidden_size'", "twice"],
                 id="json-duplicate-key"),
    pytest.param(config_text(lambda t: t.replace('"hidden_size": 64', '"hidden_size": ' + "9" * 5000)),
                 [CFG, "not valid JSON"], id="json-5000-digits"),
    pytest.param(config_text(lambda t: ""), [CFG, "not valid JSON", "line 1, column 1"], id="json-empty"),
    pytest.param(big_config, [CFG, "MAX_CONFIG_BYTES"], id="config-too-big"),
    pytest.param(replace(CFG, lambda p: p.mkdir()), [CFG, "is a directory"], id="config-directory"),
    pytest.param(replace(CFG, symlink_to("nowhere.json")), [CFG, "is a broken or looping symlink"],
                 id="config-broken-link"),
    # safetensors header
    pytest.param(header(lambda h: h[D0].update(dtype="F8_E4M3")), [ST, D0, "'F8_E4M3'"], id="dtype-unknown"),
    pytest.param(header(lambda h: h[D0].update(dtype=5)), [ST, D0, "dtype 5"], id="dtype-int"),
    pytest.param(header(lambda h: h[D0].update(shape=[256])), [ST, D0, "needs 1024 bytes", "span 512"],
                 id="shape-vs-offsets"),
    pytest.param(header(lambda h: h[D0].update(shape=[-128])), [ST, D0, "shape [-128]"], id="shape-negative"),
    pytest.param(header(lambda h: h[D0].update(shape=[128.0])), [ST, D0, "shape [128.0]"], id="shape-float"),
    pytest.param(header(lambda h: h[D0].update(shape=[1] * 20 + [128])), [ST, D0, "MAX_TENSOR_RANK"],
                 id="shape-rank-21"),
    pytest.param(header(lambda h: h[D0].update(data_offsets=[-4, 508])), [ST, D0, "data_offsets [-4, 508]"],
                 id="offsets-negative"),
    pytest.param(header(lambda h: h[D0].update(data_offsets=[0])), [ST, D0, "data_offsets [0]"],
                 id="offsets-short"),
    pytest.param(header(lambda h: h[D0].pop("dtype")), [ST, D0, "lacks dtype"], id="entry-no-dtype"),
    pytest.param(header(lambda h: h.update({D0: "F32"})), [ST, D0, "'F32'"], id="entry-string"),
    pytest.param(header(overlap), [ST, D0, BIAS0, "overlap"], id="overlap"),
    pytest.param(with_hole, [ST, "belong to no tensor"], id="hole"),
    pytest.param(raw_st(lambda raw, n: raw + bytes(64)), [ST, "64 bytes after the last tensor"], id="trailing"),
    pytest.param(raw_st(lambda raw, n: raw[:-100]), [ST, "truncated"], id="truncated-data"),
    pytest.param(raw_st(lambda raw, n: struct.pack("<Q", 2**63) + raw[8:]), [ST, str(2**63), "MAX_HEADER_BYTES"],
                 id="header-length-absurd"),
    pytest.param(raw_st(lambda raw, n: struct.pack("<Q", len(raw)) + raw[8:]), [ST, "exceeds", "truncated"],
                 id="header-length-past-end"),
    pytest.param(raw_st(lambda raw, n: raw[:5]), [ST, "shorter than the 8-byte"], id="file-5-bytes"),
    pytest.param(raw_st(lambda raw, n: b""), [ST, "0 bytes"], id="file-empty"),
    pytest.param(raw_st(lambda raw, n: raw[:8] + b"[" + raw[9:8 + n - 1] + b"]" + raw[8 + n:]),
                 [ST, "not valid JSON"], id="header-garbled"),
    pytest.param(raw_st(lambda raw, n: struct.pack("<Q", 6) + b"[1, 2]"), [ST, "JSON list, not an object"],
                 id="header-list"),
    pytest.param(raw_st(lambda raw, n: raw[:9] + b"\xff" + raw[10:]), [ST, "not UTF-8", "0xff"],
                 id="header-not-utf8"),
    pytest.param(header_text(lambda t: t.replace('"shape"', '"nan": NaN, "shape"', 1)), [ST, "NaN"],
                 id="header-nan"),
    pytest.param(header_text(lambda t: t.replace("{", '{"' + D0 + '": 1, ', 1)), [ST, D0, "twice"],
                 id="header-duplicate-name"),
    pytest.param(header(lambda h: h.update(__metadata__={"format": 5})), [ST, "__metadata__", "5"],
                 id="metadata-not-strings"),
    pytest.param(header(lambda h: h.update(__metadata__=["pt"])), [ST, "__metadata__", "['pt']"],
                 id="metadata-list"),
    pytest.param(header(lambda h: h.update({"renamed": h.pop(D0)})), [D0, "is missing"], id="tensor-missing"),
    # what model.safetensors is
    pytest.param(replace(ST, lambda p: p.mkdir()), [ST, "is a directory"], id="st-directory"),
    pytest.param(replace(ST, symlink_to(ST)), [ST, "is a broken or looping symlink"], id="st-symlink-loop"),
    pytest.param(replace(ST, symlink_to("gone.safetensors")), [ST, "is a broken or looping symlink"],
                 id="st-broken-link"),
    pytest.param(replace(ST, os.mkfifo), [ST, "not a regular file"], id="st-fifo"),
    pytest.param(replace(ST, lambda p: (p.parent / "pytorch_model.bin").write_bytes(b"\x80\x02")),
                 ["no .safetensors weights", "never unpickles"], id="only-pickle"),
    # the shard index
    pytest.param(index_file(lambda p: p.write_bytes(b'{"weight_map": {"\xff": 1}}')), [INDEX, "not UTF-8"],
                 id="index-not-utf8"),
    pytest.param(index_file(lambda p: p.write_text('{"weight_map": {')), [INDEX, "not valid JSON"],
                 id="index-garbled"),
    pytest.param(index_file(lambda p: p.write_text('{"weight_map": ["a"]}')), [INDEX, "weight_map is ['a']"],
                 id="index-map-list"),
    pytest.param(index_file(lambda p: p.write_text('{"weight_map": {}}')), [INDEX, "weight_map is {}"],
                 id="index-map-empty"),
    pytest.param(sharded(lambda f, wm: wm.update({D0: 3})), [INDEX, D0, "is 3"], id="index-value-int"),
    pytest.param(sharded(lambda f, wm: wm.update({D0: "/etc/x.safetensors"})), [INDEX, "'/etc/x.safetensors'",
                 "inside the checkpoint folder"], id="index-absolute"),
    pytest.param(sharded(lambda f, wm: wm.update({D0: "../x.safetensors"})), [INDEX, "'../x.safetensors'",
                 "inside the checkpoint folder"], id="index-dotdot"),
    pytest.param(sharded(lambda f, wm: wm.update({D0: "model.bin"})), [INDEX, "'model.bin'"], id="index-not-st"),
    pytest.param(sharded(lambda f, wm: (f / SHARDS[1]).unlink()), [SHARDS[1], "shard listed in the index is missing"],
                 id="shard-missing"),
    pytest.param(sharded(lambda f, wm: ((f / SHARDS[1]).unlink(), (f / SHARDS[1]).mkdir())),
                 [SHARDS[1], "is a directory"], id="shard-directory"),
    pytest.param(sharded(move_in_index), [SHARDS[0], "maps it to", SHARDS[1]], id="shard-a-vs-b"),
    pytest.param(sharded(duplicate_across_shards), [SHARDS[1], SHARDS[0], "is also in"], id="shard-duplicate"),
    pytest.param(sharded(lambda f, wm: wm.update({"backbone.extra": SHARDS[0]})),
                 [SHARDS[0], "'backbone.extra'", "does not hold it"], id="index-lists-absent"),
    pytest.param(sharded(unlist), [SHARDS[0], "does not list it"], id="index-omits-tensor"),
    pytest.param(index_file(Path.mkdir), [INDEX, "is a directory"], id="index-directory"),
    pytest.param(index_file(symlink_to(INDEX)), [INDEX, "is a broken or looping symlink"], id="index-symlink-loop"),
    # tokenizer.json
    pytest.param(tokenizer(b"{not json"), ["tokenizer.json", "tokenizers library refuses"], id="tok-garbled"),
    pytest.param(tokenizer(b"{}"), ["tokenizer.json", "tokenizers library refuses"], id="tok-empty-object"),
    pytest.param(tokenizer(b'{"model": \xff}'), ["tokenizer.json", "tokenizers library refuses"], id="tok-not-utf8"),
    pytest.param(replace("tokenizer.json", lambda p: p.mkdir()), ["tokenizer.json", "is a directory"],
                 id="tok-directory"),
]

PATH_CASES = [
    pytest.param(long_path, ["too long"], id="path-too-long"),
    pytest.param(lambda f: f / "config.json" / "sub", ["config.json/sub", "is a file, not a folder"],
                 id="path-through-file"),
    pytest.param(lambda f: f / "config.json", ["config.json", "is a file, not a folder"], id="path-is-file"),
    pytest.param(lambda f: f.parent / "absent", ["absent", "no such model folder"], id="path-absent"),
]


def _refused(args: list, fragments: list[str], ckpt: Path, data: Path, out: Path | None) -> None:
    """The command fails cleanly and leaves the checkpoint, the data and the output path as they were."""
    before = snapshot(ckpt), tree(data.parent)
    assert_fails_cleanly(run_cli(*args), *fragments)
    assert (snapshot(ckpt), tree(data.parent)) == before
    if out is not None:
        assert not os.path.lexists(out)
    assert_no_leftovers(ckpt.parent, ckpt, data.parent)


@pytest.mark.parametrize(("mutate", "fragments"), CASES)
def test_quantize_refuses_checkpoint(mutate, fragments, ckpt, byte_text, tmp_path):
    mutate(ckpt)
    out = tmp_path / "out"
    _refused(["quantize", ckpt, "--calib", byte_text, "-o", out], fragments, ckpt, byte_text, out)


@pytest.mark.parametrize(("where", "fragments"), PATH_CASES)
def test_quantize_refuses_model_path(where, fragments, ckpt, byte_text, tmp_path):
    out = tmp_path / "out"
    _refused(["quantize", where(ckpt), "--calib", byte_text, "-o", out], fragments, ckpt, byte_text, out)


EVAL_CASES = [c for c in CASES if c.id in {"layers-1e9", "hidden-1e999", "arch-int", "json-latin1", "dtype-unknown",
                                           "overlap", "shard-a-vs-b", "tok-garbled", "st-symlink-loop"}]


@pytest.mark.parametrize(("mutate", "fragments"), EVAL_CASES)
def test_eval_refuses_checkpoint(mutate, fragments, ckpt, byte_text):
    mutate(ckpt)
    _refused(["eval", ckpt, "--calib", byte_text, "--data", byte_text], fragments, ckpt, byte_text, None)


def test_sharded_checkpoint_loads(ckpt, tiny_checkpoint):
    """The shard helper itself writes a valid checkpoint, so the index cases test only what they change."""
    from edgec.frontends.hf_checkpoint import load_checkpoint

    shard(ckpt)
    whole, split = load_checkpoint(tiny_checkpoint), load_checkpoint(ckpt)
    assert sorted(whole.weights) == sorted(split.weights)
    assert all((whole.weights[n] == split.weights[n]).all() for n in whole.weights)


def test_corpus_is_large_and_distinct():
    ids = [c.id for c in CASES + PATH_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 45
