"""The bundled vitmoe-tiny and the independently trained tests/assets/vitmoe_alt: float top-1 per task on the
held-out digits (edgec's float interpreter, one graph per task), and held-out data that shares nothing with
the training or calibration digits. No scikit-learn: the shipped images are checked through
edgec.zoo.vitmoe_tiny.digits (unrender) against split.json's digests of the training digits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import run_cli

import edgec
from edgec.frontends.vit_moe_graph import graph_name
from edgec.image_data import image_batches, load_images
from edgec.runtime.float_ref import FloatInterpreter
from edgec.zoo import BUNDLED
from edgec.zoo.vitmoe_tiny.digits import PALETTE, digests, render, unrender

ENTRY = BUNDLED["vitmoe-tiny"]
ALT = Path(__file__).parent / "assets" / "vitmoe_alt"
#: Measured top-1 on the 450 held-out digits (train_stats.json), less a margin of about 1.5 points.
#: vitmoe-tiny 97.78 / 98.89, vitmoe_alt 94.89 / 96.22 (digit / parity).
BOUNDS = {"vitmoe-tiny": {"digit": 0.96, "parity": 0.975}, "vitmoe_alt": {"digit": 0.93, "parity": 0.945}}
SPLIT = json.loads((ENTRY.folder / "split.json").read_text())


@pytest.fixture(scope="module", params=["vitmoe-tiny", "vitmoe_alt"])
def scored(request) -> tuple[str, dict[str, float], dict]:
    folder = ENTRY.folder if request.param == "vitmoe-tiny" else ALT
    model = edgec.load_checkpoint(folder)
    data, interp = load_images(ENTRY.eval, model.spec), FloatInterpreter(model.weights)
    top1 = {}
    for task in model.spec.task_names:
        hits = sum(int((interp.run(model.graphs[graph_name(task)], {"images": b.images})["logits"].argmax(-1)
                        == b.labels[task]).sum()) for b in image_batches(data, 150))
        top1[task] = hits / len(data)
    return request.param, top1, json.loads((folder / "train_stats.json").read_text())


def test_float_top1_per_task(scored):
    name, top1, stats = scored
    print(name, top1)
    for task, bound in BOUNDS[name].items():
        assert top1[task] >= bound, (name, task, top1[task])
        assert round(top1[task], 4) == stats["top1"][task], "train_stats.json disagrees with the checkpoint"


def test_held_out_digits_are_not_training_or_calibration_digits():
    held, calib, train = (np.array(SPLIT[k]) for k in ("eval", "calib", "train"))
    assert len(held) >= 300 and not set(held) & set(train) and set(calib) <= set(train)
    assert sorted({*held, *train}) == list(range(SPLIT["digits"]))
    spec = edgec.load_checkpoint(ENTRY.folder).spec
    evald, calibd = load_images(ENTRY.eval, spec), load_images(ENTRY.calib, spec, need_labels=False)
    assert len(evald) == len(held) and len(calibd) == len(calib)
    eval_digits, calib_digits = unrender(evald.images), unrender(calibd.images)
    np.testing.assert_array_equal(evald.images, render(eval_digits, held % len(PALETTE)))
    train_digests = set(SPLIT["train_digests"])
    assert len(train_digests) == len(train)
    assert not set(digests(eval_digits)) & train_digests, "a held-out digit is a training digit"
    assert set(digests(calib_digits)) <= train_digests, "a calibration digit is not a training digit"
    assert not set(digests(eval_digits)) & set(digests(calib_digits))
    np.testing.assert_array_equal(evald.labels["parity"], evald.labels["digit"] % 2)


def test_sizes_and_listing():
    assert sum(p.stat().st_size for p in ENTRY.folder.iterdir() if p.is_file()) < 4 << 20
    assert sum(p.stat().st_size for p in ALT.iterdir()) < 1.5 * (1 << 20)
    assert ENTRY.calib.name == "calib.npz" and ENTRY.eval.name == "eval.npz"
    assert BUNDLED["mamba-tiny"].eval.name == "eval.txt"
    res = run_cli("models")
    assert res.code == 0 and "vitmoe-tiny" in res.out
    assert "sklearn" not in sys.modules  # a training-only dependency
