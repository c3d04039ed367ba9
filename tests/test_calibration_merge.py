"""Mergeable calibration statistics (issue 11, item 5): N shards calibrated apart and merged equal one pass
over all the batches — maxima exactly, the percentile (mean of per-batch quantiles) to float rounding — and
quantizing from the merged statistics gives the same model."""

from __future__ import annotations

import numpy as np
import pytest

import edgec
from edgec.data import calibration_batches
from edgec.errors import DataError
from edgec.image_data import image_batches, load_images
from edgec.passes.calibrate import calibrate, load_stats, save_stats
from edgec.passes.pipeline import quantize, rewrite
from edgec.zoo import BUNDLED


def _shards(batches, n):
    return [batches[i::n] for i in range(n)]


def _assert_same(merged, whole):
    assert merged.absmax.keys() == whole.absmax.keys()
    for name, amax in whole.absmax.items():
        assert np.array_equal(merged.absmax[name], amax), name
    assert merged.state_absmax == whole.state_absmax
    assert merged.quantile.keys() == whole.quantile.keys()
    for name, q in whole.quantile.items():
        assert merged.quantile[name] == pytest.approx(q, rel=1e-12)
    assert (merged.batches, merged.tokens) == (whole.batches, whole.tokens)


@pytest.mark.parametrize("name", ["mamba-tiny", "vitmoe-tiny"])
def test_shards_merge_into_one_pass(name, tmp_path):
    entry = BUNDLED[name]
    model = edgec.load_checkpoint(entry.folder)
    if name == "vitmoe-tiny":
        batches = [b.images for b in image_batches(load_images(entry.calib, model.spec, need_labels=False), 64)]
    else:
        batches = calibration_batches(model, entry.calib, 128, 4096)
    rewritten, _ = rewrite(model)
    whole = calibrate(rewritten, batches)
    assert len(batches) >= 3 and (name != "mamba-tiny" or whole.quantile)  # the SSM input's percentile
    parts = []
    for i, shard in enumerate(_shards(batches, 3)):  # three workers; each ships its summary as a file
        save_stats(calibrate(rewritten, shard), tmp_path / f"shard{i}.safetensors")
        parts.append(load_stats(tmp_path / f"shard{i}.safetensors"))
    merged = parts[0].merge(parts[1]).merge(parts[2])
    _assert_same(merged, whole)
    one = quantize(model, batches)
    from_shards = quantize(model, batches[:1], stats=merged)
    assert one.scales == from_shards.scales and one.state_scales == from_shards.state_scales
    assert all(np.array_equal(one.qweights[k], from_shards.qweights[k]) for k in one.qweights)


def test_bad_statistics_are_one_line(tmp_path):
    bad = tmp_path / "stats.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="not an edgec calibration-statistics file"):
        load_stats(bad)
    model = edgec.load_checkpoint(BUNDLED["mamba-tiny"].folder)
    rewritten, _ = rewrite(model)
    a = calibrate(rewritten, calibration_batches(model, BUNDLED["mamba-tiny"].calib, 64, 256))
    b = calibrate(rewritten, calibration_batches(model, BUNDLED["mamba-tiny"].calib, 64, 256), alpha=0.999)
    with pytest.raises(DataError, match="different percentiles"):
        a.merge(b)
    with pytest.raises(DataError, match="one sample batch"):
        quantize(model, [], stats=a)
