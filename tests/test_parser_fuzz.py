"""Property-based fuzzing of the input parsers: on any input they return a result or raise an EdgecError
with a one-line message, never another exception (config.json, safetensors headers, shard indexes, .npy, text)."""

from __future__ import annotations

import itertools
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_checkpoint import INDEX, SHARDS, shard

from edgec.data import load_tokens
from edgec.errors import EdgecError
from edgec.frontends.hf_checkpoint import load_checkpoint
from edgec.frontends.mamba_spec import MambaSpec
from edgec.frontends.weights import WeightStore, read_safetensors_header
from edgec.limits import MAX_CONV_KERNEL, MAX_LAYERS, MAX_STATE_SIZE, MAX_VOCAB, MAX_WIDTH

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NUMBERS = st.sampled_from([0, 1, -1, 2, 8, 16, 64, 128, 256, 64.0, 96.7, 1e-5, 2**31, 2**63, 10**9, 10**30,
                           float("nan"), float("inf"), -0.0, True, False])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | NUMBERS
JSON = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=8)
CONFIG = {"model_type": "mamba", "architectures": ["MambaForCausalLM"], "hidden_act": "silu", "vocab_size": 256,
          "hidden_size": 64, "state_size": 16, "num_hidden_layers": 2, "intermediate_size": 128, "expand": 2,
          "conv_kernel": 4, "time_step_rank": 8, "layer_norm_epsilon": 1e-5, "use_bias": False,
          "use_conv_bias": True, "tie_word_embeddings": True}
FIELDS = st.sampled_from(sorted(CONFIG))


def outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``, or None if it raised an EdgecError (whose message must be one line); anything else propagates."""
    try:
        return fn()
    except EdgecError as err:
        assert "\n" not in str(err) and str(err), repr(err)
        return None


# ---- config.json ----------------------------------------------------------------------------------------------

config_edits = st.dictionaries(FIELDS, JSON | NUMBERS | st.sampled_from(["auto", "mamba", "silu", None]), max_size=4)


@FUZZ
@given(edits=config_edits, dropped=st.sets(FIELDS, max_size=3))
def test_config_fields(edits, dropped):
    cfg = {k: v for k, v in (CONFIG | edits).items() if k not in dropped}
    spec = outcome(lambda: MambaSpec.from_config(cfg))
    if spec is not None:
        assert 1 <= spec.num_hidden_layers <= MAX_LAYERS and 1 <= spec.vocab_size <= MAX_VOCAB
        assert 1 <= spec.hidden_size <= MAX_WIDTH and 1 <= spec.intermediate_size <= MAX_WIDTH
        assert 1 <= spec.state_size <= MAX_STATE_SIZE and 1 <= spec.conv_kernel <= MAX_CONV_KERNEL
        assert 1 <= spec.time_step_rank <= spec.intermediate_size and 0 < spec.layer_norm_epsilon < 1
        assert all(isinstance(v, bool) for v in (spec.use_bias, spec.use_conv_bias, spec.tie_word_embeddings))
        assert len(spec.expected_shapes()) <= 12 * MAX_LAYERS + 3


XLSTM_CONFIG = {"model_type": "xlstm", "architectures": ["xLSTMForCausalLM"], "vocab_size": 256, "hidden_size": 128,
                "num_hidden_layers": 2, "num_heads": 4, "qk_dim_factor": 0.5, "v_dim_factor": 1.0,
                "ffn_proj_factor": 2.667, "ffn_round_up_to_multiple_of": 64, "chunk_size": 16, "gate_soft_cap": 15.0,
                "output_logit_soft_cap": 30.0, "weight_mode": "single", "use_bias": False, "embedding_dim": 128,
                "num_blocks": 2, "norm_eps": 1e-6, "eps": 1e-6}
XLSTM_FIELDS = st.sampled_from(sorted(XLSTM_CONFIG))


@FUZZ
@given(edits=st.dictionaries(XLSTM_FIELDS, JSON | NUMBERS | st.sampled_from(["single", "fused", None]), max_size=4),
       dropped=st.sets(XLSTM_FIELDS, max_size=3))
def test_xlstm_config_fields(edits, dropped):
    from edgec.frontends.xlstm_spec import XlstmSpec

    cfg = {k: v for k, v in (XLSTM_CONFIG | edits).items() if k not in dropped}
    spec = outcome(lambda: XlstmSpec.from_config(cfg))
    if spec is not None:
        assert 1 <= spec.num_hidden_layers <= MAX_LAYERS and 1 <= spec.vocab_size <= MAX_VOCAB
        assert max(spec.hidden_size, spec.qk_dim, spec.v_dim, spec.ffn_dim) <= MAX_WIDTH
        assert spec.qk_dim % spec.num_heads == 0 and spec.v_dim % spec.num_heads == 0
        assert spec.weight_mode in ("single", "fused")
        assert len(spec.expected_shapes()) <= 16 * MAX_LAYERS + 3


@FUZZ
@given(cfg=JSON)
def test_config_any_json(cfg):
    outcome(lambda: MambaSpec.from_config(cfg))


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory, tiny_checkpoint) -> Path:
    dst = tmp_path_factory.mktemp("fuzz") / "model"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


def _flip(raw: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(raw)
    for pos, byte in flips:
        if data:
            data[pos % len(data)] = byte
    return bytes(data)


FLIPS = st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=4)


@FUZZ
@given(edits=config_edits, flips=FLIPS, cut=st.none() | st.integers(0, 600))
def test_config_file(ckpt_dir, edits, flips, cut):
    raw = _flip(json.dumps(CONFIG | edits).encode(), flips)
    (ckpt_dir / "config.json").write_bytes(raw if cut is None else raw[:cut])
    model = outcome(lambda: load_checkpoint(ckpt_dir))
    assert model is None or model.spec.vocab_size == 256


# ---- safetensors headers ----------------------------------------------------------------------------------------

TENSORS = {"a": ("F32", [2, 3]), "b": ("F16", [4]), "c": ("BF16", [2, 2]), "d": ("I8", [0, 5])}
_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1}


def _valid_st() -> tuple[dict, bytes]:
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape) in TENSORS.items():
        n = _SIZES[dtype] * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    return header, bytes(i % 61 for i in range(off))


KEYS = st.sampled_from(["dtype", "shape", "data_offsets"])
TARGETS = st.sampled_from([*TENSORS, "__metadata__"])


@st.composite
def safetensors_files(draw) -> bytes:
    header, data = _valid_st()
    for _ in range(draw(st.integers(0, 3))):
        target, key = draw(TARGETS), draw(KEYS)
        if target == "__metadata__" or not isinstance(header.get(target), dict) or draw(st.booleans()):
            header[target] = draw(JSON)
        else:
            header[target][key] = draw(JSON | st.lists(st.integers(-5, 40), max_size=3) | st.sampled_from(
                ["F64", "U16", "F8_E4M3", "BOOL", "I64"]))
    raw_header = json.dumps(header).encode()
    length = draw(st.none() | st.integers(0, 2**64 - 1) | st.integers(0, len(raw_header) + 40))
    raw = struct.pack("<Q", len(raw_header) if length is None else length) + raw_header + data
    raw = _flip(raw, draw(FLIPS))
    cut = draw(st.none() | st.integers(0, len(raw) + 8))
    return raw if cut is None else (raw + bytes(8))[:cut]


@FUZZ
@given(raw=safetensors_files() | st.binary(max_size=200))
def test_safetensors_header(tmp_path, raw):
    path = tmp_path / "w.safetensors"
    path.write_bytes(raw)
    header = outcome(lambda: read_safetensors_header(path))
    if header is not None:
        spans = sorted(tuple(info["data_offsets"]) for info in header.values())
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        store = WeightStore.from_safetensors([path])
        for name in store:
            arr = outcome(lambda name=name: store[name])
            assert arr is None or arr.shape == tuple(header[name]["shape"])


# ---- the shard index --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sharded_dir(tmp_path_factory, tiny_checkpoint) -> tuple[Path, dict[str, str]]:
    dst = tmp_path_factory.mktemp("fuzz") / "sharded"
    shutil.copytree(tiny_checkpoint, dst)
    return dst, shard(dst)


SHARD_NAMES = st.sampled_from([*SHARDS, "../x.safetensors", "/etc/x.safetensors", "", "model.safetensors",
                               "config.json", "sub/a.safetensors", ".", "..", "\x00.safetensors"])


@st.composite
def index_files(draw, weight_map: dict[str, str]) -> bytes:
    wm: dict[str, Any] = dict(weight_map)
    for name in draw(st.sets(st.sampled_from(sorted(wm)), max_size=3)):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            del wm[name]
        else:
            wm[name] = draw(SHARD_NAMES) if choice == 1 else draw(JSON)
    for extra in draw(st.lists(st.text(max_size=10), max_size=2)):
        wm[extra] = draw(SHARD_NAMES)
    index: Any = {"metadata": {"total_size": 1}, "weight_map": wm}
    if draw(st.integers(0, 9)) == 0:
        index = draw(JSON)
    elif draw(st.integers(0, 9)) == 0:
        index["weight_map"] = draw(JSON)
    return _flip(json.dumps(index).encode(), draw(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)),
                                                           max_size=1)))


@FUZZ
@given(data=st.data())
def test_shard_index(sharded_dir, data):
    folder, weight_map = sharded_dir
    (folder / INDEX).write_bytes(data.draw(index_files(weight_map)))
    model = outcome(lambda: load_checkpoint(folder))
    assert model is None or len(model.weights) == len(weight_map)


# ---- data files -------------------------------------------------------------------------------------------------


@st.composite
def npy_files(draw) -> bytes:
    descr = draw(st.sampled_from(["<i4", "<i8", "|u1", "<u8", ">i2", "<f4", "|b1", "|O", "<U3", "V8", "[('a', '<i4')]",
                                  "'<i4'", "7", "None", "{}"]))
    shape = draw(st.lists(st.integers(-3, 2**40) | st.integers(0, 5), max_size=3).map(tuple) |
                 st.sampled_from(["()", "(2,", "'x'", "[1]", "(1.5,)", "None"]))
    head = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (  # noqa: UP031 (the header is Python syntax)
        descr if descr.startswith(("[", "'", "7", "N", "{")) else repr(descr), draw(st.sampled_from(
            ["False", "True", "0", "'no'"])), shape if isinstance(shape, str) else repr(shape))
    raw = head.encode() + b" " * draw(st.integers(0, 80)) + b"\n"
    version = draw(st.sampled_from([1, 2, 3, 0, 255]))
    size = len(raw).to_bytes(2 if version == 1 else 4, "little")
    body = draw(st.binary(max_size=64)) if draw(st.booleans()) else np.arange(8, dtype="<i4").tobytes()
    out = b"\x93NUMPY" + bytes([version, 0]) + size + raw + body
    return _flip(out, draw(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=2)))


@FUZZ
@given(raw=npy_files() | st.binary(max_size=100) | st.binary(max_size=100).map(lambda b: b"\x93NUMPY" + b))
def test_npy(tmp_path, raw):
    (tmp_path / "d.npy").write_bytes(raw)
    ids = outcome(lambda: load_tokens(tmp_path / "d.npy", 256))
    assert ids is None or (ids.dtype == np.int64 and ids.ndim == 1 and ids.size >= 2 and ids.min() >= 0
                           and ids.max() < 256)


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_text(tmp_path, raw):
    (tmp_path / "d.txt").write_bytes(raw)
    ids = outcome(lambda: load_tokens(tmp_path / "d.txt", 256))
    assert ids is None or np.array_equal(ids, np.frombuffer(raw, np.uint8))
