"""Each ViT-MoE HLS kernel (hls/include/edgec_vit_kernels.h) against its twin in the integer simulator.

The twins are the real VitIntOps handlers of an IntSimulator over a stub model, with their compile-time
constants injected (or built by the handler from stub scales, as the simulator does). The driver
(tests/cpp/vit_kernel_driver.cpp) runs a variant (a kernel at fixed template sizes, mirrored in SIZES) on a
file of records, one kernel invocation each. The slow fuzz test compiles the driver with -DEDGEC_VIT_FUZZ
(extra shapes) and runs 2*10^4 to 10^5 random cases per kernel; ``EDGEC_FUZZ_SEED`` overrides its seed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edgec.numerics.layernorm as ln
from edgec.hls.toolchain import (
    HLS_INCLUDE_DIR,
    ToolchainError,
    ap_types_dir,
    compile_program,
    find_compiler,
    run_program,
)
from edgec.ir import Node, Op
from edgec.numerics.fixed import quantize_multiplier, saturate
from edgec.numerics.gelu import GELU_VARIANTS
from edgec.numerics.layernorm import LayerNormConstants, build_layernorm
from edgec.numerics.softmax import SOFTMAX_VARIANTS, Exp2Exp, build_softmax, softmax_int, tabulated
from edgec.numerics.topk import topk_int
from edgec.passes.quantize import QuantOptions
from edgec.runtime.int_ops import int_matmul
from edgec.runtime.sim_int import IntSimulator
from edgec.runtime.vit_float import patchify

DRIVER_SOURCE = Path(__file__).parent / "cpp" / "vit_kernel_driver.cpp"
RNG = np.random.default_rng(29)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

#: variant -> template sizes, as in the driver's table (the fuzz-only shapes after the first line of each kernel)
SIZES: dict[str, tuple] = {
    "patchify": (8, 12, 3, 4), "patchify_1": (2, 2, 1, 2),
    "patch_embed": (8, 12, 3, 4, 10, True), "patch_embed_nobias": (8, 12, 3, 4, 10, False),
    "patch_embed_1": (4, 2, 2, 2, 3, True),
    "cls_pos": (7, 10), "cls_pos_1": (2, 1),
    "cls_pool": (7, 10),
    "layernorm": (6, 24, True), "layernorm_folded": (6, 24, False),
    "layernorm_d1": (2, 1, True), "layernorm_d3": (3, 3, False), "layernorm_d64": (2, 64, True),
    "attn_scores": (7, 3, 4), "attn_scores_1": (1, 1, 1), "attn_scores_t17": (17, 2, 8),
    "attn_context": (7, 3, 4), "attn_context_1": (1, 1, 1), "attn_context_t17": (17, 2, 8),
    "softmax_table": (6, 7), "softmax_table_1": (3, 1), "softmax_table_197": (2, 197),
    "softmax_exp2": (6, 8), "softmax_exp2_1": (3, 1), "softmax_exp2_16": (4, 16),
    "topk": (6, 8, 2), "topk_1": (3, 1, 1), "topk_4_4": (4, 4, 4), "topk_16_2": (4, 16, 2),
    "route_logits": (7, 12, 8, False), "route_logits_bias": (7, 12, 8, True), "route_logits_1": (1, 1, 1, True),
    "moe": (7, 12, 10, 4, 2), "moe_1": (3, 4, 3, 1, 1), "moe_3_3": (5, 4, 3, 3, 3), "moe_8_2": (9, 8, 16, 8, 2),
    "gelu": (256,),
}


# ---- driver -----------------------------------------------------------------------------------------

def build_driver(folder: Path, fuzz: bool = False) -> Path:
    try:
        find_compiler()
        ap_types = ap_types_dir()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    return compile_program([DRIVER_SOURCE], folder / "vit_kernel_driver", [HLS_INCLUDE_DIR, ap_types],
                           {"EDGEC_VIT_FUZZ": ""} if fuzz else None)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_driver(tmp_path_factory.mktemp("vit_kernels"))


def record(*parts) -> np.ndarray:
    """One record: scalars and arrays (flattened), side by side, as int64 words."""
    return np.concatenate([np.asarray(p, dtype=np.int64).reshape(-1) for p in parts])


def run(driver: Path, tmp_path: Path, variant: str, records: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Run ``variant`` on the records (a list of 1-D records, or [G, L]); returns its outputs as [G, -1]."""
    recs = np.asarray(records, dtype=np.int64)
    data = np.concatenate([[len(recs)], recs.reshape(-1)])
    data.astype("<i8").tofile(tmp_path / "in.bin")
    run_program(driver, [variant, tmp_path / "in.bin", tmp_path / "out.bin"])
    return np.fromfile(tmp_path / "out.bin", "<i8").reshape(len(recs), -1)


# ---- the simulator side ------------------------------------------------------------------------------

class Twin:
    """An IntSimulator over a stub QuantizedModel: VitIntOps handlers run unchanged on constants we choose."""

    def __init__(self) -> None:
        self.qm = SimpleNamespace(qweights={}, wscales={}, scales={}, bits={}, graphs={}, fparams={},
                                  state_scales={}, options=QuantOptions())
        self.sim = IntSimulator.__new__(IntSimulator)
        self.sim.qm = self.qm

    def __call__(self, node: Node, consts: dict, *inputs: np.ndarray, logits: np.ndarray | None = None):
        self.sim._const = {(node.name, k): v for k, v in consts.items()}
        self.sim._ranked = set()  # op_softmax keeps no logits; op_topk ranks on ``logits`` if given
        self.sim._logit_codes = {} if logits is None else {node.inputs[0]: logits}
        return self.sim.handler(node)(node, *inputs)

    def constant(self, node: Node, key: str):
        """A constant the handler built (from the stub's scales) in its last call."""
        return self.sim._const[(node.name, key)]


TWIN = Twin()
CLS_POS = Node(Op.CLS_POS, ("patches",), ("x0",), {"cls": "cls", "pos": "pos"}, name="cls_pos")
CLS_POOL = Node(Op.CLS_POOL, ("x",), ("cls",), name="pool")
NORM = Node(Op.LAYERNORM, ("x",), ("xn",), {"weight": "g", "bias": "b"}, {"eps": 1e-6}, "norm")
SOFTMAX = Node(Op.SOFTMAX, ("scores",), ("probs",), name="softmax")
GELU = Node(Op.GELU, ("fc1",), ("act",), name="act")
GATE = Node(Op.ROUTE_LOGITS, ("xn",), ("logits",), {"weight": "gate"}, name="gate")


def patch_node(p: int) -> Node:
    return Node(Op.PATCH_EMBED, ("pixels",), ("patches",), {"weight": "pw", "bias": "pb"}, {"patch": p}, "patch")


def scores_node(heads: int) -> Node:
    return Node(Op.ATTN_SCORES, ("q", "k"), ("scores",), attrs={"heads": heads, "scale": 0.5}, name="scores")


def context_node(heads: int) -> Node:
    return Node(Op.ATTN_CONTEXT, ("probs", "v"), ("context",), attrs={"heads": heads}, name="context")


def topk_node(k: int) -> Node:
    return Node(Op.TOPK, ("probs",), ("top", "experts"), attrs={"k": k}, name="topk")


def moe_node(e: int) -> Node:
    return Node(Op.MOE, ("xn", "route_w", "route_e"), ("mlp_out",), {"fc1_weight": "fc1", "fc1_bias": "fc1b",
                "fc2_weight": "fc2", "fc2_bias": "fc2b"}, {"experts": e}, "moe")


TWIN.qm.scales |= {"q": 1.0, "k": 1.0, "probs": 1.0, "v": 1.0, "scores": 1.0}  # read by handlers, unused here


def multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    return quantize_multiplier(np.asarray(reals, dtype=np.float64))


# ---- kernels one by one ------------------------------------------------------------------------------

def test_header_constants_match_the_python():
    code = (HLS_INCLUDE_DIR / "edgec_vit_kernels.h").read_text()
    header = {name: v for name, v in re.findall(r"static const int (\w+) = (\w+(?: \+ 1)?);", code)}
    assert header == {"LN_NORM_BITS": str(ln.NORM_BITS), "LN_INV_BITS": str(ln.INV_BITS),
                      "LN_EPS_BITS": str(ln.EPS_BITS), "LN_GUARD_BITS": str(ln.GUARD_BITS),
                      "SOFTMAX_TABLE_SPAN": "255", "EXP2_EXP_BITS": "EXP2_FRAC_BITS + 1"}
    assert Exp2Exp.bits == 31


def test_sizes_mirror_the_driver():
    table = re.findall(r'\{"(\w+)", run_\w+<([^>]*)>\}', DRIVER_SOURCE.read_text())
    parse = {"true": True, "false": False}
    assert {name: tuple(parse[a] if a in parse else int(a) for a in args.split(", ")) for name, args in table} \
        == SIZES


def test_patchify_order(driver, tmp_path):
    h, w, c, p = SIZES["patchify"]
    ramp = np.arange(h * w * c).reshape(h, w, c)  # every position distinct: checks the order itself
    img = RNG.integers(-128, 128, (h, w, c))
    got = run(driver, tmp_path, "patchify", [record(ramp), record(img)])
    assert np.array_equal(got, np.stack([patchify(ramp, p), patchify(img, p)]).reshape(2, -1))


@pytest.mark.parametrize(("variant", "bits"), [("patch_embed", 24), ("patch_embed", 0), ("patch_embed_nobias", 24)])
def test_patch_embed(driver, tmp_path, variant, bits):
    h, w, c, p, d, has_bias = SIZES[variant]
    img = RNG.integers(-128, 128, (3, h, w, c))
    img[1] = 127  # extreme images: with rows of +-127 weights, both ends of 24 bits saturate
    img[2] = -128
    wt = RNG.integers(-127, 128, (d, c, p, p))
    wt[0], wt[1] = 127, -127
    m, shift = multipliers(np.r_[50.0, 50.0, RNG.uniform(1e-3, 30, d - 2)])
    m[2:5], shift[2:5] = 1 << 14, [15, 16, 15]  # acc / 2, acc / 4: rounding ties
    bias = RNG.integers(-(1 << 20), 1 << 20, d) if has_bias else np.zeros(d, np.int64)
    if has_bias:  # patch 0 of image 0 lands exactly on -1/2, 3/2 and 0
        dot0 = int_matmul(patchify(img[0], p)[0], wt.reshape(d, -1))
        bias[2:5] = [-1 - dot0[2], 6 - dot0[3], -dot0[4]]
    TWIN.qm.qweights["pw"], TWIN.qm.bits["patches"] = wt, bits
    want = TWIN(patch_node(p), {"bias": bias if has_bias else 0, "out": (m, shift)}, img)
    got = run(driver, tmp_path, variant, [record(bits, x, wt, *([bias] if has_bias else []), m, shift) for x in img])
    assert np.array_equal(got, want.reshape(3, -1))
    if bits:
        assert {-(1 << 23), (1 << 23) - 1} <= set(got.ravel().tolist())
    if has_bias and bits:
        assert got[0, 2:5].tolist() == [0, 2, 0]


@pytest.mark.parametrize("bits", [24, 16])
def test_cls_pos(driver, tmp_path, bits):
    t, d = SIZES["cls_pos"]
    table = saturate(RNG.integers(-(1 << 22), 1 << 22, (t, d)), bits)
    table[1, :2], table[2, :2] = (1 << 21), -(1 << 21)
    x = RNG.integers(-(1 << 23), 1 << 23, (t - 1, d))
    x[0, :2], x[1, :2] = (1 << 23) - 1, -(1 << 23)  # saturates at both ends
    TWIN.qm.bits["x0"] = bits
    want = TWIN(CLS_POS, {"table": table}, x)
    got = run(driver, tmp_path, "cls_pos", [record(bits, x, table)])
    assert np.array_equal(got[0], want.ravel())
    assert {-(1 << (bits - 1)), (1 << (bits - 1)) - 1} <= set(got.ravel().tolist())


def test_cls_pool(driver, tmp_path):
    t, d = SIZES["cls_pool"]
    x = RNG.integers(-(1 << 23), 1 << 23, (t, d))
    assert np.array_equal(run(driver, tmp_path, "cls_pool", [record(x)])[0], TWIN(CLS_POOL, {}, x))


def layernorm_rows(r: int, d: int) -> np.ndarray:
    x = RNG.integers(-(1 << 23), 1 << 23, (r, d))
    x[1] = 12345  # all equal: c = 0, the output is the bias
    x[2] = RNG.integers(-2, 3, d)  # a narrow spread: shifted up
    x[3] = np.where(np.arange(d) % 2, (1 << 23) - 1, -(1 << 23))  # the widest: shifted down
    x[4] = RNG.integers(-128, 128, d)
    x[5] = 0
    x[5, 3] = (1 << 23) - 1  # one outlier
    return x


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(("out_bits", "out_scale", "eps"), [(8, 4 / 127, 1e-6), (8, 0.004, 1e-6), (16, 1e-3, 0.0),
                                                            (8, 0.05, 1e-4)])
def test_layernorm(driver, tmp_path, affine, out_bits, out_scale, eps):
    r, d, _ = SIZES["layernorm"]
    gamma, beta = (RNG.uniform(-1.5, 1.5, d), RNG.normal(0, 0.3, d)) if affine else (None, None)
    if affine:
        gamma[0] = 0.0  # a zero gain: m = 0, the output is the bias alone
    k = build_layernorm(d, 2e-6, out_scale, eps, gamma, beta, 24, out_bits)
    x = layernorm_rows(r, d)
    want = TWIN(NORM, {"ln": k}, x)
    assert np.array_equal(want, ln.layernorm_int(k, x))
    got = run(driver, tmp_path, "layernorm" if affine else "layernorm_folded",
              [record(k.eps, out_bits, k.m, k.shift, k.bias, x)])
    assert np.array_equal(got[0], want.ravel())
    if out_scale == 0.004:
        assert {-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1} <= set(got.ravel().tolist())


def attn_constants() -> list[tuple[int, int]]:
    """Plausible, saturating at both ends, and acc / 2 (ties on every odd accumulator)."""
    (m0, m1), (s0, s1) = multipliers([0.01, 1.0])
    return [(int(m0), int(s0)), (int(m1), int(s1)), (1 << 14, 15)]


def test_attn_scores(driver, tmp_path):
    t, h, dh = SIZES["attn_scores"]
    q, k = RNG.integers(-128, 128, (3, t, h * dh)), RNG.integers(-128, 128, (3, t, h * dh))
    q[:, 0], k[:, 0], k[:, 1] = 127, -128, 127  # the extreme products
    q[2], k[2] = RNG.integers(-3, 4, (t, h * dh)), RNG.integers(-3, 4, (t, h * dh))  # small: +-k.5 and 0
    node, recs, want = scores_node(h), [], []
    TWIN.qm.bits["scores"] = 8
    for i, (m, shift) in enumerate(attn_constants()):
        recs.append(record(m, shift, 8, q[i], k[i]))
        want.append(TWIN(node, {"out": (m, shift)}, q[i], k[i]).ravel())
    got = run(driver, tmp_path, "attn_scores", recs)
    assert np.array_equal(got, np.stack(want))
    assert {-128, 127} <= set(got[1].tolist())
    acc = np.einsum("ihd,jhd->hij", q[2].reshape(t, h, dh), k[2].reshape(t, h, dh))
    assert (acc == -1).any() and (acc == 1).any() and (acc == 0).any()  # -1/2 -> 0, 1/2 -> 0 (to even)


@pytest.mark.parametrize("probs_bits", [16, 8])
def test_attn_context(driver, tmp_path, probs_bits):
    t, h, dh = SIZES["attn_context"]
    top = (1 << probs_bits) - 1
    k = tabulated(build_softmax("lut", 0.05, 8, probs_bits))
    probs = np.stack([softmax_int(k, RNG.integers(-128, 128, (h, t, t))) for _ in range(3)])
    probs[:, 0, 0] = 0
    probs[:, 0, 0, 0] = top  # one dominant score
    probs[:, 1, 1] = top  # every probability at its top (not a softmax row: the widest accumulator)
    probs[2] = RNG.integers(0, 4, (h, t, t))
    v = RNG.integers(-128, 128, (3, t, h * dh))
    v[:, :, :2] = [127, -128]
    (m0, m1), (s0, s1) = multipliers([1 / top, 8 / top])
    node, recs, want = context_node(h), [], []
    TWIN.qm.bits["context"] = 8
    for i, (m, shift) in enumerate([(m0, s0), (m1, s1), (1 << 14, 15)]):
        recs.append(record(m, shift, 8, probs[i], v[i]))
        want.append(TWIN(node, {"out": (m, shift)}, probs[i], v[i]).ravel())
    got = run(driver, tmp_path, "attn_context", recs)
    assert np.array_equal(got, np.stack(want))
    assert {-128, 127} <= set(got[1].tolist())


def softmax_edge_rows(r: int, n: int, bits: int) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = RNG.integers(lo, hi + 1, (r, n))
    q[1] = 17  # all equal
    q[2] = lo
    q[2, n // 2] = hi  # one dominant score: p = P exactly, the rest 0
    q[3] = RNG.integers(-3, 1, n)
    q[3, [0, n - 1]] = 5  # two tied maxima
    q[4] = hi  # all at the top
    # rows whose per-row multiplier round(y P / 2^R) is not its floor (16-bit outputs: ibert at S = 0.06, exp2
    # at S = 3e-3), found by search
    q[5] = [-14, -11, 2, -2, -10, 5, -9] if bits == 8 else [-16, -2, -16, -9, -12, 11, 1, 22]
    return q


@pytest.mark.parametrize("variant", SOFTMAX_VARIANTS)
@pytest.mark.parametrize("out_bits", [16, 8])
def test_softmax_table(driver, tmp_path, variant, out_bits):
    r, n = SIZES["softmax_table"]
    k = tabulated(build_softmax(variant, 0.06, 8, out_bits))
    table, bits = k.exp.table, k.exp.bits
    q = softmax_edge_rows(r, n, 8)
    TWIN.qm.scales["scores"] = 0.06
    TWIN.qm.bits |= {"scores": 8, "probs": out_bits}
    want = TWIN(SOFTMAX, {"exp_table": (table, bits)}, q)
    assert np.array_equal(want, softmax_int(build_softmax(variant, 0.06, 8, out_bits), q))  # tabulated: identical
    got = run(driver, tmp_path, "softmax_table", [record(bits, out_bits, table, q)])[0].reshape(r, n)
    assert np.array_equal(got, want)
    top = (1 << out_bits) - 1
    if variant != "shiftmax":  # shiftmax clamps at 2^-15: the others' exp of -255 S rounds to 0 here
        assert got[2, n // 2] == top and got[2].sum() == top
    assert len(set(got[1].tolist())) == 1 and got[3, 0] == got[3, n - 1]


@pytest.mark.parametrize("scale", [2e-4, 3e-3, 0.05])
def test_softmax_exp2_router(driver, tmp_path, scale):
    r, n = SIZES["softmax_exp2"]
    k = build_softmax("exp2", scale, 16, 16)
    q = softmax_edge_rows(r, n, 16)
    TWIN.qm.scales["scores"] = scale
    TWIN.qm.bits |= {"scores": 16, "probs": 16}
    want = TWIN(SOFTMAX, {"exp2": (k.exp.m, k.exp.frac)}, q)
    got = run(driver, tmp_path, "softmax_exp2", [record(k.exp.m, k.exp.frac, 16, q)])[0].reshape(r, n)
    assert np.array_equal(got, want)
    if scale > 1e-3:  # exp(-65535 S) rounds to 0
        assert got[2, n // 2] == 65535 and got[2].sum() == 65535


def test_topk_ranks_logits_returns_probabilities(driver, tmp_path):
    r, e, kk = SIZES["topk"]
    logits = RNG.integers(-(1 << 15), 1 << 15, (r, e))
    logits[1] = 7  # all tied: experts 0 and 1
    logits[2, [2, 5, 6]] = (1 << 15) - 1  # three tied at the top: 2 and 5
    logits[3] = np.arange(e)  # the largest last
    logits[4] = [INT64_MAX, INT64_MIN + 1, *range(e - 2)]  # the domain's ends
    probs = RNG.integers(0, 1 << 16, (r, e))
    node = topk_node(kk)
    want_v, want_i = TWIN(node, {}, probs, logits=logits)
    got = run(driver, tmp_path, "topk", [record(logits, probs), record(probs, probs)])
    assert np.array_equal(got[0], np.concatenate([want_v.ravel(), want_i.ravel()]))
    assert want_i[1].tolist() == [0, 1] and want_i[2].tolist() == [2, 5] and want_i[3].tolist() == [e - 1, e - 2]
    alone_v, alone_i = TWIN(node, {}, probs)  # no logits kept: topk_int of the probabilities
    assert np.array_equal(got[1], np.concatenate([alone_v.ravel(), alone_i.ravel()]))
    assert np.array_equal(alone_v, topk_int(probs, kk)[0])


@pytest.mark.parametrize("variant", ["route_logits", "route_logits_bias"])
def test_route_logits(driver, tmp_path, variant):
    t, d, e, has_bias = SIZES[variant]
    x = RNG.integers(-128, 128, (t, d))
    x[0], x[1] = 127, -128
    w = RNG.integers(-127, 128, (d, e))
    w[:, 0] = 127
    bias = RNG.integers(-(1 << 16), 1 << 16, e) if has_bias else np.zeros(e, np.int64)
    m, shift = multipliers(np.r_[20.0, RNG.uniform(0.05, 2, e - 1)])  # column 0 saturates 16 bits
    TWIN.qm.qweights["gate"], TWIN.qm.bits["logits"] = w, 16
    node = Node(Op.ROUTE_LOGITS, ("xn",), ("logits",), {"weight": "gate"} | ({"bias": "gb"} if has_bias else {}),
                name="gate")
    want = TWIN(node, {"bias": bias if has_bias else 0, "out": (m, shift)}, x)
    got = run(driver, tmp_path, variant, [record(16, x, w, *([bias] if has_bias else []), m, shift)])
    assert np.array_equal(got[0], want.ravel())
    assert {-(1 << 15), (1 << 15) - 1} <= set(got[0].tolist())


def moe_stub(rng: np.random.Generator, d: int, hm: int, e: int, s_out: float, out_bits: int,
             gelu: str = "lut") -> Node:
    """Weights and scales of an MOE node in the stub model, so that the handler builds its own constants."""
    qm = TWIN.qm
    qm.options = QuantOptions(gelu=gelu)
    qm.qweights["fc1"], qm.qweights["fc2"] = rng.integers(-127, 128, (e, hm, d)), rng.integers(-127, 128, (e, d, hm))
    qm.wscales["fc1"], qm.wscales["fc2"] = rng.uniform(2e-3, 1e-2, (e, hm)), rng.uniform(2e-3, 1e-2, (e, d))
    qm.fparams["fc1b"], qm.fparams["fc2b"] = rng.normal(0, 0.3, (e, hm)), rng.normal(0, 0.3, (e, d))
    qm.scales |= {"xn": 0.04, "route_w": float(np.float32(1 / 65535)), "mlp_out": s_out}
    qm.bits["mlp_out"] = out_bits
    for i in range(e):
        s_fc1 = float(rng.uniform(0.01, 0.05))
        qm.state_scales[f"moe/fc1/{i}"], qm.state_scales[f"moe/act/{i}"] = s_fc1, s_fc1 * 0.6
    return moe_node(e)


def moe_record(node: Node, out_bits: int, x, w, idx) -> np.ndarray:
    c = {k: TWIN.constant(node, k) for k in ("fc1_bias", "fc1_out", "act_lut", "fc2_bias", "out")}
    return record(out_bits, x, w, idx, TWIN.qm.qweights["fc1"], c["fc1_bias"], *c["fc1_out"], c["act_lut"],
                  TWIN.qm.qweights["fc2"], c["fc2_bias"], *c["out"])


def routing(t: int, e: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Route weights and experts as the router makes them: exp2 softmax of 16-bit logits, top-k on the logits."""
    logits = RNG.integers(-(1 << 15), 1 << 15, (t, e)) >> RNG.integers(0, 8, (t, 1))
    probs = softmax_int(build_softmax("exp2", 1e-3, 16, 16), logits)
    _, idx = topk_int(logits, k)
    return np.take_along_axis(probs, idx, axis=-1), idx


@pytest.mark.parametrize(("s_out", "out_bits", "gelu"), [(3e-7, 24, "lut"), (3e-13, 24, "lut"), (1e-4, 8, "edgemoe")])
def test_moe(driver, tmp_path, s_out, out_bits, gelu):
    t, d, hm, e, k = SIZES["moe"]
    node = moe_stub(RNG, d, hm, e, s_out, out_bits, gelu)
    x = RNG.integers(-128, 128, (t, d))
    x[0], x[1] = 127, -128
    cases = [routing(t, e, k)]
    w, idx = routing(t, e, k)
    idx[:] = [0, 1]  # every token to experts 0 and 1: experts 2 and 3 see no token
    w[0], w[1] = [65535, 0], [0, 65535]  # a whole weight and a zero one
    cases.append((w, idx))
    w, idx = routing(t, e, k)
    idx[:] = [3, 1]
    idx[2] = [1, 3]  # experts 1 and 3 only, in either slot order
    cases.append((w, idx))
    recs, want = [], []
    for w, idx in cases:
        want.append(TWIN(node, {}, x, w, idx).ravel())  # constants built by _moe_constants from the stub's scales
        recs.append(moe_record(node, out_bits, x, w, idx))
    got = run(driver, tmp_path, "moe", recs)
    assert np.array_equal(got, np.stack(want))
    if s_out < 1e-12:  # per-slot 32-bit saturation, then the 24-bit output at both ends
        assert {-(1 << 23), (1 << 23) - 1} <= set(got.ravel().tolist())


@pytest.mark.parametrize("gelu", GELU_VARIANTS)
def test_gelu_through_lut(driver, tmp_path, gelu):
    TWIN.qm.options = QuantOptions(gelu=gelu)
    TWIN.qm.scales |= {"fc1": 0.04, "act": 0.02}
    codes = np.arange(-128, 128)
    want = TWIN(GELU, {}, codes)
    table = TWIN.constant(GELU, "lut")
    assert np.array_equal(run(driver, tmp_path, "gelu", [record(table, codes)])[0], want)


# ---- slow: differential fuzzing ----------------------------------------------------------------------

SEED = int(os.environ.get("EDGEC_FUZZ_SEED", "20250311"))
FUZZ_KERNELS = {  # kernel -> (variants, cases)
    "patchify": (("patchify", "patchify_1"), 20_000),
    "patch_embed": (("patch_embed", "patch_embed_nobias", "patch_embed_1"), 20_000),
    "cls_pos": (("cls_pos", "cls_pos_1"), 100_000),
    "cls_pool": (("cls_pool",), 20_000),
    "layernorm": (("layernorm", "layernorm_folded", "layernorm_d1", "layernorm_d3", "layernorm_d64"), 100_000),
    "attn_scores": (("attn_scores", "attn_scores_1", "attn_scores_t17"), 50_000),
    "attn_context": (("attn_context", "attn_context_1", "attn_context_t17"), 50_000),
    "softmax_table": (("softmax_table", "softmax_table_1", "softmax_table_197"), 100_000),
    "softmax_exp2": (("softmax_exp2", "softmax_exp2_1", "softmax_exp2_16"), 100_000),
    "topk": (("topk", "topk_1", "topk_4_4", "topk_16_2"), 100_000),
    "route_logits": (("route_logits", "route_logits_bias", "route_logits_1"), 50_000),
    "moe": (("moe", "moe_1", "moe_3_3", "moe_8_2"), 20_000),
}
GROUP = 32  # cases per group: one handler call (shared table or weights, per-case data)
CHUNK_WORDS = 1 << 22  # words per driver run (32 MB)


def bitlen(a) -> np.ndarray:
    """Bit length of |a| (0 for 0), for values below 2^53; only steers the random shifts."""
    return np.frexp(np.abs(np.asarray(a)).astype(np.float64))[1].astype(np.int64)


def ints(rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int, edge: float = 0.03) -> np.ndarray:
    """Integers in [lo, hi] of every magnitude, some at the edges; some cases (axis 0) all-min, all-max or tiny."""
    x = rng.integers(lo, hi, size=shape, endpoint=True)
    x = np.where(rng.random(shape) < 0.4, x >> rng.integers(0, max(abs(lo), abs(hi)).bit_length() + 1, shape), x)
    e = rng.random(shape) < edge
    x[e] = rng.choice(np.unique(np.clip([lo, hi, 0, 1, -1], lo, hi)), int(e.sum()))
    if len(shape) > 1:
        whole = rng.random(shape[0]) < 0.05
        x[whole] = rng.choice([lo, hi, 0], int(whole.sum())).reshape(-1, *([1] * (len(shape) - 1)))
        tiny = rng.random(shape[0]) < 0.05
        x[tiny] = rng.integers(max(lo, -3), min(hi, 3), (int(tiny.sum()), *shape[1:]), endpoint=True)
    return x


def codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int = 8, **kw) -> np.ndarray:
    return ints(rng, shape, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, **kw)


def mults(rng: np.random.Generator, shape: tuple[int, ...], sign: bool = False) -> np.ndarray:
    """15-bit multipliers: mostly [2^14, 2^15), some at its ends, some 2^14 exactly (ties), a few below."""
    m = rng.integers(1 << 14, 1 << 15, shape)
    u = rng.random(shape)
    m = np.where(u < 0.1, (1 << 15) - 1, np.where(u < 0.3, 1 << 14, m))
    m = np.where((u >= 0.3) & (u < 0.35), rng.integers(0, 1 << 15, shape), m)
    if sign:
        m = np.where(rng.random(shape) < 0.5, -m, m)
        m = np.where(rng.random(shape) < 0.05, 0, m)
    return m


def shifts(rng: np.random.Generator, shape: tuple[int, ...], center, hi: int = 62) -> np.ndarray:
    """Shifts around ``center`` (outputs fill the output range), some anywhere in [0, hi], some at the ends."""
    s = np.asarray(center) + rng.integers(-3, 6, shape, endpoint=True)
    u = rng.random(shape)
    s = np.where(u < 0.04, 0, np.where(u < 0.08, hi, s))
    s = np.where((u >= 0.08) & (u < 0.2), rng.integers(0, hi, shape, endpoint=True), s)
    return np.clip(s, 0, hi)


def rows(g: int, *parts) -> np.ndarray:
    """[G, L] records: scalars repeated, [G, ...] arrays flattened per case."""
    cols = [np.full((g, 1), a) if a.ndim == 0 else a.reshape(g, -1)
            for a in (np.asarray(p, dtype=np.int64) for p in parts)]
    return np.concatenate(cols, axis=1)


def _patchify(rng, sizes, g):
    h, w, c, p = sizes
    img = codes(rng, (g, h, w, c))
    return rows(g, img), patchify(img, p)


def _patch_embed(rng, sizes, g):
    h, w, c, p, d, has_bias = sizes
    bits = int(rng.choice([24, 16, 32, 0], p=[0.6, 0.15, 0.15, 0.1]))
    img, wt = codes(rng, (g, h, w, c)), codes(rng, (d, c, p, p))
    bias = codes(rng, (g, 1, d), 32) >> rng.integers(0, 16, (g, 1, 1)) if has_bias else np.zeros((g, 1, d), np.int64)
    m = mults(rng, (g, 1, d))
    shift = shifts(rng, (g, 1, d), bitlen(c * p * p * (1 << 14)) + 15 - max(bits - 1, 1))
    TWIN.qm.qweights["pw"], TWIN.qm.bits["patches"] = wt, bits
    want = TWIN(patch_node(p), {"bias": bias if has_bias else 0, "out": (m, shift)}, img)
    parts = [bits, img, np.broadcast_to(wt, (g, *wt.shape))] + ([bias] if has_bias else []) + [m, shift]
    return rows(g, *parts), want


def _cls_pos(rng, sizes, g):
    t, d = sizes
    bits = int(rng.choice([24, 16, 32]))
    table = codes(rng, (t, d), bits, edge=0.1)
    x = codes(rng, (g, t - 1, d), int(rng.choice([bits, 24])))
    TWIN.qm.bits["x0"] = bits
    want = TWIN(CLS_POS, {"table": table}, x)
    return rows(g, bits, x, np.broadcast_to(table, (g, t, d))), want


def _cls_pool(rng, sizes, g):
    t, d = sizes
    x = codes(rng, (g, t, d), 32)
    return rows(g, x), TWIN(CLS_POOL, {}, x)


def _layernorm(rng, sizes, g):
    r, d, affine = sizes
    out_bits, in_bits = int(rng.choice([8, 16, 4, 2])), int(rng.choice([24, 32, 8]))
    u = rng.random()
    eps = 0 if u < 0.15 else (1 << 60) - 1 if u < 0.2 else int(rng.integers(0, 1 << 60) >> rng.integers(0, 61))
    dm = d if affine else 1
    m = mults(rng, (g, 1, dm), sign=True)
    shift = np.where(m == 0, 0, shifts(rng, (g, 1, dm), max(0, 13 - out_bits - int(bitlen(d)) // 2)))
    bias = codes(rng, (g, 1, dm), 40) >> rng.integers(0, 40, (g, 1, dm)) if affine else np.zeros((g, 1, 1), np.int64)
    x = codes(rng, (g, r, d), in_bits)
    x = np.where(rng.random((g, r, 1)) < 0.05, x[..., :1], x)  # constant rows
    k = LayerNormConstants(d, m, shift, bias, eps, in_bits, out_bits)
    want = TWIN(NORM, {"ln": k}, x)
    return rows(g, eps, out_bits, m, shift, bias, x), want


def _attn(rng, sizes, g, context: bool):
    t, h, dh = sizes
    bits = int(rng.choice([8, 16, 4]))
    v = codes(rng, (g, t, h * dh))
    if context:
        pb = int(rng.choice([16, 8]))
        a = ints(rng, (g, h, t, t), 0, (1 << pb) - 1)
        bound = t * (1 << pb) * 128
    else:
        a = codes(rng, (g, t, h * dh))
        bound = dh * 128 * 128
    col = (g, 1, 1) if context else (g, 1, 1, 1)  # against the [T, H*DH] context or the [H, T, T] scores
    m, shift = mults(rng, col), shifts(rng, col, bitlen(bound) - 6 + 15 - (bits - 1))
    node = context_node(h) if context else scores_node(h)
    TWIN.qm.bits[node.outputs[0]] = bits
    want = TWIN(node, {"out": (m, shift)}, a, v)
    return rows(g, m, shift, bits, a, v), want


def _normalizable(emax: int, n: int, bits: int, out_bits: int) -> bool:
    """Whether rows of n exps up to emax keep softmax_int's last shift s - R within rshift_round's [0, 62]."""
    return (int(emax) * n).bit_length() + 30 - max(0, bits + out_bits - 31) <= 62


def _table(rng, n: int) -> tuple[np.ndarray, int, int]:
    """An exp table as the simulator builds it (a tabulated variant at a random scale), or a random one."""
    while True:
        out_bits = int(rng.choice([16, 8, 12, 24, 1]))
        if rng.random() < 0.75:
            try:
                variant = str(rng.choice(SOFTMAX_VARIANTS))
                k = tabulated(build_softmax(variant, float(10 ** rng.uniform(-3, math.log10(0.69))), 8, out_bits))
            except ValueError:
                continue
            table, bits = k.exp.table, int(k.exp.bits)
        else:
            bits = int(rng.integers(1, 32))
            table = np.sort(rng.integers(0, 1 << bits, 256))
            table[-1] = max(int(table[-1]), 1)
        if _normalizable(table.max(), n, bits, out_bits):
            return table, bits, out_bits


def _softmax_rows(rng, shape, bits):
    q = codes(rng, shape, bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    dom = rng.random(shape[:-1]) < 0.05  # one dominant score
    q = np.where(dom[..., None], np.where(np.arange(shape[-1]) == rng.integers(0, shape[-1]), hi, lo), q)
    near = rng.random(shape[:-1]) < 0.2  # a narrow range: ties and small differences
    return np.where(near[..., None], np.clip(hi - rng.integers(0, 4, shape), lo, hi), q)


def _softmax_table(rng, sizes, g):
    r, n = sizes
    table, bits, out_bits = _table(rng, n)
    q = _softmax_rows(rng, (g, r, n), 8)
    TWIN.qm.bits |= {"scores": 8, "probs": out_bits}
    want = TWIN(SOFTMAX, {"exp_table": (table, bits)}, q)
    return rows(g, bits, out_bits, np.broadcast_to(table, (g, 256)), q), want


def _softmax_exp2(rng, sizes, g):
    r, n = sizes
    out_bits = int(rng.choice([b for b in (16, 8, 24, 1) if _normalizable(1 << 30, n, Exp2Exp.bits, b)]))
    k = Exp2Exp.build(float(10 ** rng.uniform(-7, 0)))
    q = _softmax_rows(rng, (g, r, n), 16)
    TWIN.qm.bits |= {"scores": 16, "probs": out_bits}
    want = TWIN(SOFTMAX, {"exp2": (k.m, k.frac)}, q)
    return rows(g, k.m, k.frac, out_bits, q), want


def _topk(rng, sizes, g):
    r, e, k = sizes
    u = rng.random()
    if u < 0.3:  # many ties
        scores = rng.integers(-2, 3, (g, r, e))
    elif u < 0.5:  # the whole domain
        scores = rng.integers(INT64_MIN + 1, INT64_MAX, (g, r, e), endpoint=True)
        scores = np.where(rng.random((g, r, e)) < 0.1, rng.choice([INT64_MIN + 1, INT64_MAX], (g, r, e)), scores)
    else:
        scores = codes(rng, (g, r, e), 16)
    values = codes(rng, (g, r, e), 17)
    node = topk_node(k)
    if rng.random() < 0.5:
        v, i = TWIN(node, {}, values, logits=scores)
    else:  # topk_int of the values alone
        scores = values
        v, i = TWIN(node, {}, values)
    return rows(g, scores, values), np.concatenate([v.reshape(g, -1), i.reshape(g, -1)], axis=1)


def _route_logits(rng, sizes, g):
    t, d, e, has_bias = sizes
    bits = int(rng.choice([16, 8, 24, 0], p=[0.6, 0.15, 0.15, 0.1]))
    x, w = codes(rng, (g, t, d)), codes(rng, (d, e))
    bias = codes(rng, (g, 1, e), 32) >> rng.integers(0, 16, (g, 1, 1)) if has_bias else np.zeros((g, 1, e), np.int64)
    m, shift = mults(rng, (g, 1, e)), shifts(rng, (g, 1, e), bitlen(d * (1 << 14)) + 15 - max(bits - 1, 1))
    TWIN.qm.qweights["gate"], TWIN.qm.bits["logits"] = w, bits
    want = TWIN(GATE, {"bias": bias if has_bias else 0, "out": (m, shift)}, x)
    parts = [bits, x, np.broadcast_to(w, (g, d, e))] + ([bias] if has_bias else []) + [m, shift]
    return rows(g, *parts), want


def _moe(rng, sizes, g):
    t, d, hm, e, k = sizes
    out_bits = int(rng.choice([24, 8, 16, 32]))
    node = moe_stub(rng, d, hm, e, 1e-6, out_bits)  # scales the handler reads (its constants are injected)
    x, w = codes(rng, (g, t, d)), ints(rng, (g, t, k), 0, 65535, edge=0.1)
    # distinct experts per token, as top-k gives; in some cases any, a token's slots may repeat one
    idx = np.where(rng.random((g, 1, 1)) < 0.8, np.argsort(rng.random((g, t, e)), axis=2)[..., :k],
                   rng.integers(0, e, (g, t, k)))
    idx = np.where(rng.random((g, 1, 1)) < 0.2, idx[:, :1], idx)  # all tokens to the same experts
    fc1, fc2 = codes(rng, (g, e, hm, d)), codes(rng, (g, e, d, hm))
    b1 = codes(rng, (g, e, hm), 30) >> rng.integers(0, 30, (g, e, 1))
    b2 = codes(rng, (g, e, d), 30) >> rng.integers(0, 30, (g, 1, 1))
    m1, m2, luts = mults(rng, (g, e, hm)), mults(rng, (g, e, d)), codes(rng, (g, e, 256))
    sh1 = shifts(rng, (g, e, hm), bitlen(d * (1 << 14)) + 8)
    sh2 = shifts(rng, (g, e, d), bitlen(hm * (1 << 14) * 65535) + 15 - rng.integers(8, 33, (g, 1, 1)))
    want = []
    for i in range(g):
        TWIN.qm.qweights["fc1"], TWIN.qm.qweights["fc2"] = fc1[i], fc2[i]
        consts = {"fc1_bias": b1[i], "fc1_out": (m1[i], sh1[i]), "act_lut": luts[i], "fc2_bias": b2[i],
                  "out": (m2[i], sh2[i])}
        want.append(TWIN(node, consts, x[i], w[i], idx[i]).ravel())
    return rows(g, out_bits, x, w, idx, fc1, b1, m1, sh1, luts, fc2, b2, m2, sh2), np.stack(want)


GENERATORS: dict[str, Callable] = {
    "patchify": _patchify, "patch_embed": _patch_embed, "cls_pos": _cls_pos, "cls_pool": _cls_pool,
    "layernorm": _layernorm, "attn_scores": lambda rng, s, g: _attn(rng, s, g, False),
    "attn_context": lambda rng, s, g: _attn(rng, s, g, True), "softmax_table": _softmax_table,
    "softmax_exp2": _softmax_exp2, "topk": _topk, "route_logits": _route_logits, "moe": _moe,
}


@pytest.fixture(scope="module")
def fuzz_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_driver(tmp_path_factory.mktemp("vit_fuzz"), fuzz=True)


def _fuzz_variant(driver: Path, tmp: Path, kernel: str, variant: str, n: int, rng) -> tuple[int, str]:
    """Run ``n`` cases of one variant; (mismatching cases, first mismatch)."""
    done, bad, first = 0, 0, ""
    while done < n:
        recs, wants, words = [], [], 0
        while done < n and words < CHUNK_WORDS:
            g = min(GROUP, n - done)
            r, w = GENERATORS[kernel](rng, SIZES[variant], g)
            recs.append(r)
            wants.append(np.asarray(w, dtype=np.int64).reshape(g, -1))
            words += r.size
            done += g
        recs_all, want = np.concatenate(recs), np.concatenate(wants)
        got = run(driver, tmp, variant, recs_all)
        assert got.shape == want.shape, f"{variant}: driver output {got.shape}, expected {want.shape}"
        wrong = np.flatnonzero((got != want).any(axis=1))
        bad += wrong.size
        if wrong.size and not first:
            i = int(wrong[0])
            j = int(np.flatnonzero(got[i] != want[i])[0])
            first = (f"{variant}: output[{j}] C++ {int(got[i, j])} != simulator {int(want[i, j])}; "
                     f"record {recs_all[i].tolist()[:64]}")
    return bad, first


@pytest.mark.slow
@pytest.mark.parametrize("kernel", list(FUZZ_KERNELS))
def test_fuzz_slow(kernel: str, fuzz_driver: Path, tmp_path: Path) -> None:
    variants, n_cases = FUZZ_KERNELS[kernel]
    rng = np.random.default_rng([SEED, list(FUZZ_KERNELS).index(kernel)])
    per = -(-n_cases // len(variants))
    total_bad, firsts = 0, []
    for variant in variants:
        bad, first = _fuzz_variant(fuzz_driver, tmp_path, kernel, variant, per, rng)
        total_bad += bad
        firsts += [first] if first else []
    print(f"{kernel}: {per * len(variants)} cases, {total_bad} mismatches (seed {SEED})")
    assert total_bad == 0, f"{total_bad} cases differ (EDGEC_FUZZ_SEED={SEED}); first: {firsts[0]}"
