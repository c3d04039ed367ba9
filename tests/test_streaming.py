"""Constant-memory compilation: weights read and derived on use and released layer by layer, calibration in
lockstep over the batches, the QDIR written tensor by tensor; the results byte-identical to the in-memory path."""

from __future__ import annotations

import numpy as np
import pytest

import edgec
from edgec.data import calibration_batches
from edgec.frontends.weights import WeightStore, read_safetensors_header, write_safetensors
from edgec.image_data import image_batches, load_images
from edgec.ir import entry_graphs
from edgec.passes.calibrate import _Observer, calibrate
from edgec.passes.pipeline import rewrite
from edgec.qdir import save_qdir
from edgec.zoo import BUNDLED

from conftest import make_hf_mamba


def test_write_safetensors_round_trip_aligned(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    tensors = {"q/b": np.arange(-7, 6, dtype=np.int8).reshape(13, 1), "scale/a": np.linspace(0, 1, 6, dtype=np.float32),
               "int/c": np.arange(3, dtype=np.int64), "empty": np.zeros((0, 4), np.float32),
               "t": np.arange(12, dtype=np.float32).reshape(3, 4).T,  # not contiguous
               "zero_d": np.array(5, np.int64)}
    path = tmp_path / "w.safetensors"
    write_safetensors(path, tensors, {"key": "value"})
    back = load_file(str(path))
    assert set(back) == set(tensors)
    for name, arr in tensors.items():
        assert back[name].dtype == arr.dtype and np.array_equal(back[name], arr), name
    with safe_open(str(path), "np") as f:
        assert f.metadata() == {"key": "value"}
    header = read_safetensors_header(path)  # edgec's own strict reader: the entries tile the data exactly
    data_start = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    assert data_start % 8 == 0
    for name, info in header.items():
        assert info["data_offsets"][0] % tensors[name].dtype.itemsize == 0, name
    with pytest.raises(ValueError, match="no little-endian safetensors dtype"):
        write_safetensors(tmp_path / "big.safetensors", {"x": np.ones(2, ">f4")})


def test_derived_weights_are_lazy_and_released():
    calls = []

    def doubled(store):
        calls.append(1)
        return store.read("w") * 2

    store = WeightStore()
    store.derive("w", (2, 2), lambda s: np.ones((2, 2), np.float32))  # re-derivable, like a file-backed tensor
    store.derive("w2", (2, 2), doubled)
    store["kept"] = np.zeros(3, np.float32)
    assert calls == [] and "w2" in store and store.shape("w2") == (2, 2)
    assert np.array_equal(store["w2"], np.full((2, 2), 2.0)) and calls == [1]
    store["w2"]
    assert calls == [1]  # cached
    assert "w" not in store._arrays  # deriving w2 read w without caching it
    store.forget()
    assert set(store._arrays) == {"kept"}  # an in-memory tensor cannot be read again: it stays
    store["w2"]
    assert calls == [1, 1]
    copy = store.copy()
    copy.forget(["w2"])
    assert "w2" in store._arrays and "w2" not in copy._arrays
    store.derive("bad", (3,), lambda s: np.ones(4))
    with pytest.raises(ValueError, match="derived weight 'bad' has shape"):
        store["bad"]


def test_lockstep_calibration_equals_batch_by_batch():
    """run_batches (each node on every batch, then the next node) gives exactly the statistics of the per-batch
    order, quantile sums included; the language-model head (its output keeps the accumulators) is skipped."""
    entry = BUNDLED["mamba-tiny"]
    model, _ = rewrite(edgec.load_checkpoint(entry.folder))
    batches = calibration_batches(model, entry.calib)[:3]
    lockstep = calibrate(model, batches)
    reference = calibrate(model, batches[:1])  # fresh stats, refilled below batch by batch through run()
    reference.absmax, reference.quantile_sum, reference.quantile_count, reference.state_absmax = {}, {}, {}, {}
    observer = _Observer(model, reference, set(lockstep.quantile))
    graph = entry_graphs(model.graphs)["prefill"]
    for batch in batches:
        observer.run(graph, {graph.inputs[0]: batch})
    observer.finish()
    assert set(reference.absmax) - set(lockstep.absmax) == {"logits"}  # the head is not run: no scale to calibrate
    for name, amax in lockstep.absmax.items():
        assert np.array_equal(amax, reference.absmax[name]), name
    assert lockstep.quantile == reference.quantile and lockstep.state_absmax == reference.state_absmax
    assert (lockstep.batches, lockstep.tokens) == (3, sum(b.size for b in batches))


def _in_memory(model, monkeypatch):
    """The same model with every weight held in memory, and every pass's derived weight kept once computed."""
    monkeypatch.setattr(WeightStore, "forget", lambda self, names=None: None)
    return model.with_graphs(model.graphs, WeightStore({name: model.weights[name] for name in model.weights}))


def _calibration(name, model):
    entry = BUNDLED[name]
    if model.spec.family == "vit_moe":
        return [b.images for b in image_batches(load_images(entry.calib, model.spec, need_labels=False), 64)][:2]
    return calibration_batches(model, entry.calib)[:2]


@pytest.mark.parametrize("name", ["mamba-tiny", "xlstm-tiny", "vitmoe-tiny"])
def test_streamed_qdir_is_byte_identical_to_in_memory(tmp_path, monkeypatch, name):
    """Checkpoint-backed weights, released after each layer, give the QDIR bytes of weights held in memory."""
    model = edgec.load_checkpoint(BUNDLED[name].folder)
    batches = _calibration(name, model)
    streamed = save_qdir(edgec.quantize(model, batches), tmp_path / "streamed")
    held = save_qdir(edgec.quantize(_in_memory(model, monkeypatch), batches), tmp_path / "held")
    for file in ("weights.safetensors", "graphs.json", "scales.json", "manifest.json"):
        assert (streamed / file).read_bytes() == (held / file).read_bytes(), file


def test_quantize_holds_one_layer_of_float_weights(monkeypatch, tmp_path):
    """While quantizing an 8-layer model, the float weights cached at any moment stay below the embedding plus
    two layers' share, not the whole model."""
    make_hf_mamba(num_hidden_layers=8, hidden_size=64, intermediate_size=256).save_pretrained(tmp_path)
    model = edgec.load_checkpoint(tmp_path)
    total = sum(int(np.prod(model.weights.shape(n))) * 4 for n in model.weights)
    embedding = int(np.prod(model.weights.shape("backbone.embeddings.weight"))) * 4
    peak = [0]
    getitem = WeightStore.__getitem__

    def tracked(self, key):
        value = getitem(self, key)
        peak[0] = max(peak[0], sum(a.nbytes for a in self._arrays.values()))
        return value

    monkeypatch.setattr(WeightStore, "__getitem__", tracked)
    edgec.quantize(model, [np.random.default_rng(0).integers(0, 256, (2, 16))])
    per_layer = (total - embedding) / 8
    assert 0 < peak[0] < embedding + 2 * per_layer, (peak[0], embedding, per_layer, total)


@pytest.mark.parametrize("target", ["cpu", "orin"])
def test_graphs_above_the_protobuf_limit_get_external_data(tmp_path, monkeypatch, target):
    """With the limit lowered below the bundled model's size, its graphs are written with a data file beside them,
    verified from there, and the folder verifies and runs; the graphs and golden data equal the in-memory build's."""
    import onnx
    from hostile import run_cli

    import edgec.targets.onnx.files as files

    assert run_cli("quantize", "-o", tmp_path / "q", "--calib-tokens", "512").code == 0
    assert run_cli("build", tmp_path / "q", "--target", target, "--tokens", "4", "-o", tmp_path / "small").code == 0
    monkeypatch.setattr(files, "PROTOBUF_LIMIT", files.HEADROOM + 50_000)
    monkeypatch.setattr(files, "EXTERNAL_MIN_BYTES", 4096)
    res = run_cli("build", tmp_path / "q", "--target", target, "--tokens", "4", "-o", tmp_path / "large")
    assert res.code == 0, res.err
    large, small = tmp_path / "large", tmp_path / "small"
    for name in ("step.onnx", "prefill.onnx"):
        assert (large / f"{name}.data").stat().st_size > 100_000
        assert not (small / f"{name}.data").exists()
        assert not list(large.glob("*.probe.onnx"))
        got, want = onnx.load(large / name), onnx.load(small / name)  # the data file resolves beside the graph
        assert [n.SerializeToString() for n in got.graph.node] == [n.SerializeToString() for n in want.graph.node]
        arrays = {i.name: onnx.numpy_helper.to_array(i) for i in want.graph.initializer}
        assert len(got.graph.initializer) == len(arrays)
        for init in got.graph.initializer:
            assert np.array_equal(onnx.numpy_helper.to_array(init), arrays[init.name]), init.name
    assert (large / "golden.npz").read_bytes() == (small / "golden.npz").read_bytes()
    assert run_cli("verify", large).code == 0
    if target == "cpu":
        assert run_cli("run", large, "--prompt", "The ", "--max-new-tokens", "3").out == \
            run_cli("run", small, "--prompt", "The ", "--max-new-tokens", "3").out
    (large / "step.onnx.data").write_bytes(b"0" * 16)  # hashed by the manifest like every other file
    assert run_cli("verify", large).code != 0
