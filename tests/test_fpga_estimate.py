"""FPGA device profiles and the analytic decode-step estimate (cycles, DRAM bound, resources, fit)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edgec.errors import EdgecError
from edgec.frontends.mamba_spec import MambaSpec
from edgec.ir import Op
from edgec.targets.fpga.buffers import BUFFER_BITS, assign_buffers, state_outputs, wide_value
from edgec.targets.fpga.costs import NORM_SCALAR_CYCLES, PIPELINE_DEPTH, node_cost
from edgec.targets.fpga.devices import DEVICES, FpgaDevice, UnknownDeviceError, get_device
from edgec.targets.fpga.emit import emit_design
from edgec.targets.fpga.estimate import (
    CONST_BYTES,
    DRAM_EFFICIENCY,
    DSP_BUDGET,
    Estimate,
    _Design,
    default_parallelism,
    estimate,
    format_estimate,
    spec_bits,
    step_graph,
)

from helpers import quantize_bundled

TINY = MambaSpec(vocab_size=256, hidden_size=128, state_size=16, num_hidden_layers=4, intermediate_size=256,
                 conv_kernel=4, time_step_rank=8)
M130 = MambaSpec(vocab_size=50280, hidden_size=768, state_size=16, num_hidden_layers=24, intermediate_size=1536,
                 conv_kernel=4, time_step_rank=48)
M2_8B = MambaSpec(vocab_size=50280, hidden_size=2560, state_size=16, num_hidden_layers=64, intermediate_size=5120,
                  conv_kernel=4, time_step_rank=160)


# ------------------------------------------------------------------------------------------------
# Devices
# ------------------------------------------------------------------------------------------------


def test_device_profiles():
    assert {"zcu102", "u250", "kv260"} <= set(DEVICES)
    z = get_device("zcu102")
    assert (z.part, z.dsp, z.bram_36k, z.uram, z.lut, z.clock_mhz) == ("xczu9eg-ffvb1156-2-e", 2520, 912, 0,
                                                                       274_080, 300.0)
    u = get_device("u250")
    assert (u.part, u.dsp, u.bram_36k, u.uram, u.dram_gbps) == ("xcu250-figd2104-2L-e", 12288, 2688, 1280, 76.8)
    k = get_device("kv260")
    assert (k.part, k.dsp, k.bram_36k, k.uram, k.lut) == ("xck26-sfvc784-2LV-c", 1248, 144, 64, 117_120)
    assert 250 <= k.clock_mhz <= 300 and k.dram_gbps == pytest.approx(19.2)
    for name, dev in DEVICES.items():
        assert isinstance(dev, FpgaDevice) and dev.name == name
    with pytest.raises(AttributeError):
        z.dsp = 1  # frozen


def test_get_device_is_case_insensitive():
    assert get_device(" ZCU102 ") is DEVICES["zcu102"]


def test_unknown_device_is_one_clear_line():
    with pytest.raises(UnknownDeviceError) as info:
        get_device("vcu118")
    msg = str(info.value)
    assert isinstance(info.value, EdgecError)
    assert "\n" not in msg and "'vcu118'" in msg
    assert "kv260, u250, zcu102" in msg


# ------------------------------------------------------------------------------------------------
# Cycle model
# ------------------------------------------------------------------------------------------------


def test_cycles_by_hand_tiny():
    """mamba-tiny (D 128, E 256, N 16, R 8, K 4, V 256, 4 layers) at P = 64, L = 16, pipeline depth 8.

    The engine does 2 rows x P/2 = 32 columns per cycle; an II = 1 loop costs trips + 8.
    """
    e = estimate(TINY, get_device("zcu102"), parallelism=64, lanes=16)
    per_layer = {
        "rmsnorm": 2 * (128 // 16 + 8) + 100,  # sum of squares, scale; isqrt + division = 132
        "in_proj": (512 // 2) * (128 // 32) + 8,  # 2E x D = 1032
        "conv1d": 256 // 16 + 8,  # E channels, 16 per cycle = 24
        "x_proj": (40 // 2) * (256 // 32) + 8,  # (R + 2N) x E = 168
        "dt_proj": (256 // 2) * 1 + 8,  # E x R, R = 8 fits one 32-column chunk = 136
        "scan": 256 * (16 // 16) + 24,  # E x N, 16 states per cycle, scan depth 24 = 280
        "gate": 256 // 16 + 8,  # 24
        "hadamard": 8 * (256 // 64 + 8) + (256 * 1 // 64 + 8),  # 256 = 1 * 2^8: 8 stages + K x K = 108
        "out_proj": (128 // 2) * (256 // 32) + 8,  # D x E = 520
        "residual": 128 // 16 + 8,  # 16
    }
    assert sum(per_layer.values()) == 2440
    expected = {"embed": 128 // 16 + 8} | {k: 4 * v for k, v in per_layer.items()}
    expected |= {"norm_f": 132, "lm_head": (256 // 2) * (128 // 32) + 8}
    assert e.stage_cycles == expected
    assert e.cycles_per_token == 16 + 4 * 2440 + 132 + 520 == 10428
    assert e.compute_tokens_per_s == pytest.approx(300e6 / 10428)


def test_default_cycles_tiny_zcu102():
    """The default P for mamba-tiny is capped at 512 (P/2 = 256 covers the widest reduction, E)."""
    e = estimate(TINY, get_device("zcu102"))
    assert (e.parallelism, e.lanes) == (512, 16)
    assert e.cycles_per_token == 4512


def test_hadamard_stage_non_power_of_two():
    """d_inner 192 = 12 * 2^4: 4 butterfly stages over 192 / 64 cycles, then 192 * 12 / 64 for the 12 x 12 stage."""
    spec = MambaSpec(vocab_size=256, hidden_size=96, state_size=16, num_hidden_layers=1, intermediate_size=192,
                     conv_kernel=4, time_step_rank=6)
    e = estimate(spec, get_device("zcu102"), parallelism=64, lanes=16)
    assert (e.hadamard.k, e.hadamard.m, e.hadamard.padded_dim) == (12, 4, 192)
    assert e.stage_cycles["hadamard"] == 4 * (3 + 8) + (36 + 8)


def test_more_parallelism_never_costs_cycles():
    dev = get_device("u250")
    cycles = [estimate(M130, dev, parallelism=p).cycles_per_token for p in (2, 8, 64, 512, 4096)]
    assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]


# ------------------------------------------------------------------------------------------------
# DRAM bound and the active bound
# ------------------------------------------------------------------------------------------------


def test_bytes_per_token_by_hand_tiny():
    e = estimate(TINY, get_device("zcu102"))
    c = CONST_BYTES
    int8 = 128 + 4 * (2 * 256 * 128 + 256 * 4 + 40 * 256 + 256 * 8 + 128 * 256) + 256 * 128
    consts = (2  # embedding row: its multiplier and shift
              + 4 * (2 * 256 * 2  # in_proj multiplier, shift
                     + 256 * 3 + 256  # conv bias, multiplier, shift + silu table
                     + 40 * 2  # x_proj
                     + 256 * 3 + 256  # dt_proj bias, multiplier, shift + softplus table
                     + 256 * 16 + 2 * 256  # A per (channel, state) + D's multiplier and shift
                     + 256  # silu(z) table
                     + 1  # the 1 x 1 Hadamard base
                     + 128 * 2))  # out_proj
    assert e.int8_weight_bytes == int8 == 479_360
    assert e.bytes_per_token == int8 + c * consts == 744_112
    assert e.const_bytes == c * consts
    assert sum(e.stage_bytes.values()) == e.bytes_per_token
    assert e.stage_bytes["lm_head"] == 256 * 128 and e.stage_bytes["embed"] == 128 + 2 * c


def test_dram_bound_is_bytes_over_bandwidth():
    for dev in DEVICES.values():
        for spec in (TINY, M130):
            e = estimate(spec, dev)
            assert e.dram_tokens_per_s == pytest.approx(dev.dram_gbps * 1e9 * DRAM_EFFICIENCY / e.bytes_per_token)


def test_active_bound_is_the_smaller():
    for dev in DEVICES.values():
        for spec, p in ((TINY, None), (TINY, 2), (M130, None), (M130, 8)):
            e = estimate(spec, dev, parallelism=p)
            assert e.tokens_per_s == min(e.compute_tokens_per_s, e.dram_tokens_per_s)
            assert e.bound == ("compute" if e.compute_tokens_per_s <= e.dram_tokens_per_s else "dram")
    assert estimate(M130, get_device("zcu102")).bound == "dram"  # 137 MB/token over 19.2 GB/s
    assert estimate(TINY, get_device("u250"), parallelism=2).bound == "compute"


def test_balanced_parallelism_reaches_the_dram_bound():
    dev = get_device("zcu102")
    e = estimate(M130, dev)
    b = e.balanced_parallelism
    assert b is not None and b < e.parallelism
    assert estimate(M130, dev, parallelism=b).bound == "dram"
    assert estimate(M130, dev, parallelism=b // 2).bound == "compute"


# ------------------------------------------------------------------------------------------------
# Resources and fit
# ------------------------------------------------------------------------------------------------


def test_default_parallelism_is_largest_power_of_two_within_dsp_budget():
    assert default_parallelism(M130, get_device("zcu102")) == 2048
    assert default_parallelism(M130, get_device("kv260")) == 512
    for dev in DEVICES.values():
        e = estimate(M130, dev)
        p = e.parallelism
        assert p & (p - 1) == 0
        assert e.dsp_used <= DSP_BUDGET * dev.dsp
        if p < 4096:  # 4096 = 2 * 2048 is the largest P the engine can use on d_inner 1536
            assert estimate(M130, dev, parallelism=2 * p).dsp_used > DSP_BUDGET * dev.dsp


def test_two_int8_macs_per_dsp():
    dev = get_device("u250")
    assert estimate(M130, dev, parallelism=256).dsp_used - estimate(M130, dev, parallelism=128).dsp_used == 64


def test_mamba_tiny_fits_everywhere():
    for dev in DEVICES.values():
        e = estimate(TINY, dev)
        assert e.fits, (dev.name, e.reason)
        assert e.reason == "" and e.reasons == ()
        assert e.ssm_state_bytes == 4 * 256 * 16 * 4 and e.conv_state_bytes == 4 * 256 * 3


def test_mamba_2_8b_state_does_not_fit_kv260():
    e = estimate(M2_8B, get_device("kv260"))
    assert e.ssm_state_bytes == 64 * 5120 * 16 * 4 == 20_971_520
    assert e.state_bytes > get_device("kv260").bram_bytes + get_device("kv260").uram_bytes
    assert not e.fits
    assert "state" in e.reason and "on chip" in e.reason and "20.97 MB" in e.reason
    assert "\n" not in e.reason
    assert not estimate(M2_8B, get_device("zcu102")).fits
    assert estimate(M2_8B, get_device("u250")).fits  # 21 MB of state in 1,280 URAMs (45 MB)


def test_too_much_parallelism_does_not_fit_by_dsp():
    e = estimate(TINY, get_device("kv260"), parallelism=4096)
    assert not e.fits and "DSP" in e.reason


@pytest.mark.parametrize("p", [0, 1, 3, -2])
def test_bad_parallelism(p):
    with pytest.raises(EdgecError, match="parallelism"):
        estimate(TINY, get_device("zcu102"), parallelism=p)


# ------------------------------------------------------------------------------------------------
# Reports
# ------------------------------------------------------------------------------------------------


def test_format_and_dict():
    e = estimate(M130, get_device("zcu102"))
    assert isinstance(e, Estimate)
    text = format_estimate(e)
    for word in ("zcu102", "in_proj", "scan", "lm_head", "compute bound", "DRAM bound", "active bound:  dram ->",
                 "DSP48E2", "BRAM36", "fits: yes"):
        assert word in text
    d = json.loads(json.dumps(e.as_dict()))
    assert d["cycles_per_token"] == e.cycles_per_token == sum(d["stage_cycles"].values())
    assert d["bound"] == "dram" and d["fits"] is True
    assert d["resources"]["dsp"] == {"used": e.dsp_used, "available": 2520}
    assert d["device"]["name"] == "zcu102" and d["model"]["intermediate_size"] == 1536
    bad = format_estimate(estimate(M2_8B, get_device("kv260")))
    assert "fits: NO" in bad and "state" in bad


# ------------------------------------------------------------------------------------------------
# Wide products: one rule for the cost model, the emitter and the buffers
# ------------------------------------------------------------------------------------------------

#: Per bundled model: (RMSNORMs reading a wide product, plain ones), wide products, the estimate's buffer bytes with
#: the 256-element product at 32 bits, 16-bit y times 16-bit gate (16-bit storage gave 512 bytes fewer).
BUNDLED_WIDE = {"mamba2-tiny": (4, 5, 4, 4528), "mamba-tiny": (0, 5, 4, 4560)}


@pytest.fixture(scope="module", params=sorted(BUNDLED_WIDE))
def bundled(request):
    """(name, QuantizedModel, its generated top's source)."""
    qm = quantize_bundled(request.param)[1]
    return request.param, qm, emit_design(qm).files["edgec_top.cpp"]


def _emitted_calls(top: str) -> dict[str, str]:
    """Each node's first kernel call in a generated top, by node name (the comment line before it ends in it)."""
    lines = top.splitlines()
    named = ((i, re.search(r"^ +// .*# (\S+)$", line)) for i, line in enumerate(lines))
    return {m.group(1): lines[i + 1].strip() for i, m in named if m}


def _emitted_wide(call: str) -> bool:
    """The WIDE flag of an emitted norm call (edgec::rmsnorm has none: a stored format)."""
    grouped = re.search(r"edgec::rmsnorm_groups<\d+, \d+, (true|false)>", call)
    assert grouped or call.startswith("edgec::rmsnorm<"), call
    return bool(grouped) and grouped.group(1) == "true"


def test_norm_of_a_wide_product_is_one_rule(bundled):
    """mamba2-tiny's gated norms (2 groups of 128) read the wide y * silu(z); its residual norms and every norm of
    mamba-tiny read stored codes. The emitter's WIDE flag, the shared predicate and the cost's max pass agree."""
    name, qm, top = bundled
    graph, calls = qm.graphs["step"], _emitted_calls(top)
    norms = [n for n in graph.nodes if n.op is Op.RMSNORM]
    wide = [n for n in norms if wide_value(qm.bits, n.inputs[0])]
    assert (len(wide), len(norms) - len(wide)) == BUNDLED_WIDE[name][:2]
    for node in norms:
        is_wide = wide_value(qm.bits, node.inputs[0])
        assert _emitted_wide(calls[node.name]) == is_wide, node.name
        width, groups = int(graph.values[node.inputs[0]].shape[-1]), int(node.attrs.get("groups", 1))
        passes = 3 if is_wide else 2
        expected = passes * (width // 16 + PIPELINE_DEPTH) + groups * NORM_SCALAR_CYCLES
        assert node_cost(graph, node, 64, 16, qm.bits).cycles == expected == (272 if is_wide else 132)


def test_spec_only_estimate_finds_the_same_wide_products(bundled):
    """Without formats, the estimate assumes the quantizer's: the same values wide, so the same cycles."""
    name, qm, _ = bundled
    graph, assumed = qm.graphs["step"], spec_bits(step_graph(qm.spec))
    buffered = assign_buffers(graph, state_outputs(graph))
    wide = [v for v in buffered if wide_value(qm.bits, v)]
    assert len(wide) == BUNDLED_WIDE[name][2] and {graph.producer(v).op for v in wide} == {Op.MUL}
    assert [v for v in buffered if wide_value(assumed, v)] == wide
    dev = get_device("zcu102")
    assert estimate(qm.spec, dev, 64, 16).stage_cycles == estimate(qm.spec, dev, 64, 16, graph, qm.bits).stage_cycles


def test_wide_product_buffer_holds_the_exact_product(bundled):
    """The buffer of each wide product is counted at the sum of its factors' widths (the exact product), which the
    element the emitted top declares for it holds."""
    name, qm, top = bundled
    graph = qm.graphs["step"]
    declared = {buf: ctype for ctype, buf in re.findall(r"^static (\w+) (buf\d+)\[\d+\];$", top, re.M)}
    buffers = assign_buffers(graph, state_outputs(graph))  # as the emitter assigns them
    design = _Design(qm.spec, graph, qm.bits)
    wide = [v for v in buffers if wide_value(qm.bits, v)]
    assert len(wide) == BUNDLED_WIDE[name][2]
    for value in wide:
        factors = sum(qm.bits[x] for x in graph.producer(value).inputs)
        element = 8 * np.dtype(declared[buffers[value][0]].removesuffix("_t")).itemsize
        assert design.storage_bits(value) == factors == 32 <= element == BUFFER_BITS
    assert (256, 32) in design.buffers(16)  # the product, d_inner = 256 values
    e = estimate(qm.spec, get_device("zcu102"), 64, 1, graph, qm.bits)
    assert e.buffer_bytes == BUNDLED_WIDE[name][3]
