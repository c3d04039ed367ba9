"""Acceptance on the bundled model: quantized perplexity on held-out text stays near float."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.data import model_tokens, windows
from edgec.evaluate import perplexities
from edgec.zoo import BUNDLED

from helpers import quantize_bundled

ENTRY = BUNDLED["mamba-tiny"]


@pytest.fixture(scope="module")
def bundled():
    return quantize_bundled("mamba-tiny")


def test_held_out_text_is_not_calibration_text():
    assert ENTRY.eval.read_text()[:2000] not in ENTRY.calib.read_text()


def test_int_and_qdq_perplexity_within_budget(bundled):
    model, qm = bundled
    batches = windows(model_tokens(model, ENTRY.eval), 512, 16)
    ppl = perplexities(model, qm, batches)
    assert sum(b.size for b in batches) >= 30_000
    assert ppl["float"] < 20  # a trained byte-level model, far below the uniform 256
    assert ppl["int"] <= 1.02 * ppl["float"], ppl
    assert ppl["qdq"] <= 1.01 * ppl["float"], ppl


def test_int_decode_matches_int_prefill_on_bundled_model(bundled):
    from edgec.runtime.sim_int import IntSimulator

    from helpers import decode

    _, qm = bundled
    tokens = model_tokens(bundled[0], ENTRY.eval)[None, :48]
    sim = IntSimulator(qm)
    prefill = sim.run(qm.graphs["prefill"], {"tokens": tokens})["logits"]
    assert np.array_equal(prefill, decode(sim, qm.graphs["step"], qm.spec, tokens, np.int64))
