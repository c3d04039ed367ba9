"""hls/include/edgec_numerics.h against edgec.numerics, bit for bit (ladder step 3, per primitive).

A small C++ driver (tests/cpp/numerics_driver.cpp) is compiled once per session with g++ and the
ap_types headers of the installed hls4ml; it applies one primitive to records read from a binary
file of little-endian int64 and writes the results back. Each test feeds the same records to the
NumPy primitive and requires identical int64 results, on edge cases and on >= 10^5 random records.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from edgec.hls.toolchain import (
    HLS_INCLUDE_DIR,
    ToolchainError,
    ap_types_dir,
    compile_program,
    find_compiler,
    run_program,
)
from edgec.numerics.fixed import (
    EXP2_POLY_Q30,
    bit_length,
    exp2_fixed,
    exp2_int,
    isqrt,
    reciprocal_fixed,
    requant,
    rshift_round,
    saturate,
)
from edgec.numerics.lut import build_interp_lut, build_lut, interp_lookup, lookup

DRIVER_SOURCE = Path(__file__).parent / "cpp" / "numerics_driver.cpp"
HEADER = HLS_INCLUDE_DIR / "edgec_numerics.h"
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
N_RANDOM = 120_000


@pytest.fixture(scope="session")
def driver(tmp_path_factory) -> Path:
    """The compiled driver; the session skips (with the reason) only if g++ or hls4ml is absent."""
    try:
        find_compiler()
        ap_types = ap_types_dir()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    exe = tmp_path_factory.mktemp("hls_numerics") / "numerics_driver"
    return compile_program([DRIVER_SOURCE], exe, [HLS_INCLUDE_DIR, ap_types])


@pytest.fixture
def run_cpp(driver, tmp_path):
    """run_cpp(op, *columns): the driver's int64 result per record (columns broadcast together)."""
    def run(op: str, *columns, prefix: np.ndarray | None = None) -> np.ndarray:
        cols = np.broadcast_arrays(*(np.asarray(c, dtype=np.int64).ravel() for c in columns))
        records = np.stack(cols, axis=1).ravel()
        if prefix is not None:
            records = np.concatenate([np.asarray(prefix, dtype=np.int64), records])
        inp, out = tmp_path / f"{op}.in", tmp_path / f"{op}.out"
        inp.write_bytes(records.astype("<i8").tobytes())
        run_program(driver, [op, inp, out], timeout=60)
        return np.frombuffer(out.read_bytes(), dtype="<i8").astype(np.int64)
    return run


def assert_same(cpp: np.ndarray, py: np.ndarray, **inputs) -> None:
    """Bit-for-bit equality; on failure, name the first differing record and its inputs."""
    py = np.asarray(py, dtype=np.int64).ravel()
    assert cpp.shape == py.shape
    bad = np.flatnonzero(cpp != py)
    if bad.size:
        i = bad[0]
        where = ", ".join(f"{k}={np.broadcast_to(np.asarray(v), py.shape)[i]}" for k, v in inputs.items())
        pytest.fail(f"{bad.size} of {py.size} records differ; first: {where}: C++ {cpp[i]} != Python {py[i]}")


def _wide(rng: np.random.Generator, n: int, bits: int = 63) -> np.ndarray:
    """Signed int64 values of every magnitude in (-2^bits, 2^bits): uniform bits, random right shift."""
    u = rng.integers(I64_MIN, I64_MAX, size=n, dtype=np.int64, endpoint=True)
    x = u >> rng.integers(63 - bits, 64, size=n)
    return np.maximum(x, -(1 << bits) + 1) if bits < 63 else np.maximum(x, I64_MIN + 1)


def _int64(values) -> np.ndarray:
    """Python ints kept only where they fit in int64."""
    return np.array(sorted({v for v in values if I64_MIN <= v <= I64_MAX}), dtype=np.int64)


# ---- the header itself ---------------------------------------------------------------------------

def test_header_datapath_has_no_float_or_dynamic_memory():
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    assert not re.findall(r"\b(float|double|new|delete|malloc|free|vector|hls::exp|hls::sqrt)\b", code)
    assert code.count("#pragma HLS INLINE") >= 6
    constants = re.search(r"EXP2_POLY_Q30\[[^]]*\]\s*=\s*\{([^}]*)\}", code).group(1)
    assert tuple(int(c) for c in constants.split(",")) == EXP2_POLY_Q30


# ---- rshift_round --------------------------------------------------------------------------------

def test_rshift_round_edge_cases(run_cpp):
    xs, shifts = [], []
    for s in range(1, 63):  # exact ties (2k+1)/2 and their neighbours, both signs
        for odd in (1, 3, 5, 7, 9):
            for sign in (1, -1):
                for d in (-1, 0, 1):
                    xs.append(sign * odd * (1 << (s - 1)) + d)
                    shifts.append(s)
    ties = [(x, s) for x, s in zip(xs, shifts, strict=True) if I64_MIN <= x <= I64_MAX]
    x, s = np.array(ties, dtype=np.int64).T
    py = rshift_round(x, s)
    assert_same(run_cpp("rshift_round", x, s), py, x=x, shift=s)
    no_wrap = np.abs(x) < 1 << 62  # where x + 2^(shift-1) cannot wrap, the exact rational rounding
    assert py[no_wrap].tolist() == [round(Fraction(int(a), 1 << int(b))) for a, b in zip(x[no_wrap], s[no_wrap],
                                                                                          strict=True)]
    extremes = _int64([I64_MIN, I64_MIN + 1, -(1 << 62), -1, 0, 1, (1 << 62), I64_MAX - 1, I64_MAX])
    for shift in (0, 1, 31, 32, 61, 62):  # shift 0 is the identity; shift 62 near the int64 ends wraps
        assert_same(run_cpp("rshift_round", extremes, shift), rshift_round(extremes, shift), x=extremes)
    assert rshift_round(extremes, 0).tolist() == extremes.tolist()


def test_rshift_round_random(run_cpp):
    rng = np.random.default_rng(1)
    x = _wide(rng, N_RANDOM)
    s = rng.integers(0, 63, size=N_RANDOM)
    tie = rng.random(N_RANDOM) < 0.25  # a quarter exact ties: odd * 2^(s-1)
    s1 = np.maximum(s, 1)
    x = np.where(tie, ((_wide(rng, N_RANDOM, 3) * 2 + 1) << (s1 - 1)), x)
    s = np.where(tie, s1, s)
    assert_same(run_cpp("rshift_round", x, s), rshift_round(x, s), x=x, shift=s)


# ---- saturate ------------------------------------------------------------------------------------

def test_saturate_edge_cases(run_cpp):
    for bits in (1, 2, 8, 9, 16, 24, 32, 47, 48, 63, 64):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        x = _int64([I64_MIN, I64_MIN + 1, lo - 1, lo, lo + 1, -1, 0, 1, hi - 1, hi, hi + 1, I64_MAX])
        py = saturate(x, bits)
        assert_same(run_cpp("saturate", x, bits), py, x=x)
        assert py.min() >= lo and py.max() <= hi


def test_saturate_random(run_cpp):
    rng = np.random.default_rng(2)
    x = _wide(rng, N_RANDOM)
    bits = rng.integers(1, 65, size=N_RANDOM)
    py = np.empty_like(x)
    for b in np.unique(bits):
        py[bits == b] = saturate(x[bits == b], int(b))
    assert_same(run_cpp("saturate", x, bits), py, x=x, bits=bits)


# ---- requant -------------------------------------------------------------------------------------

def _requant_py(x, m, shift, bits) -> np.ndarray:
    out = np.empty_like(x)
    for b in np.unique(bits):
        sel = bits == b
        out[sel] = requant(x[sel], m[sel], shift[sel], int(b))
    return out


def test_requant_edge_cases(run_cpp):
    rows = []
    m15 = (1, 2, (1 << 14), (1 << 14) + 1, (1 << 15) - 1, -1, -(1 << 14), -((1 << 15) - 1))
    m30 = ((1 << 29), (1 << 30) - 1, -((1 << 30) - 1))  # the scan's per-element multiplier
    xs = (0, 1, -1, 3, -3, 5, -5, 127, -128, (1 << 31) - 1, -(1 << 31) + 1, (1 << 47) - 1, -(1 << 47) + 1)
    for m in m15 + m30:
        for x in xs:
            if abs(x * m) >= 1 << 63 or (abs(m) >= 1 << 15 and abs(x) >= 1 << 31):
                continue
            for shift in (0, 1, 14, 15, 16, 30, 31, 46, 61, 62):
                for bits in (8, 16, 32):
                    rows.append((x, m, shift, bits))
    x, m, shift, bits = np.array(rows, dtype=np.int64).T
    py = _requant_py(x, m, shift, bits)
    assert_same(run_cpp("requant", x, m, shift, bits), py, x=x, m=m, shift=shift, bits=bits)
    # sanity of the reference itself: ties to even, e.g. 3 * 2^14 / 2^15 = 1.5 -> 2, 5 * 2^14 / 2^15 = 2.5 -> 2
    assert requant(np.array([3, 5, -3, -5]), 1 << 14, 15).tolist() == [2, 2, -2, -2]


def test_requant_random(run_cpp):
    rng = np.random.default_rng(3)
    n = N_RANDOM
    x15 = _wide(rng, n, 47)  # the requant contract: |x| < 2^47, |m| < 2^15
    m15 = rng.integers(-(1 << 15) + 1, 1 << 15, size=n)
    x30 = _wide(rng, n, 31)  # the scan: |x| < 2^31 with a 30-bit multiplier
    m30 = rng.integers(-(1 << 30) + 1, 1 << 30, size=n)
    x, m = np.concatenate([x15, x30]), np.concatenate([m15, m30])
    shift = rng.integers(0, 63, size=2 * n)
    bits = rng.choice(np.array([8, 16, 24, 32]), size=2 * n)
    assert_same(run_cpp("requant", x, m, shift, bits), _requant_py(x, m, shift, bits),
                x=x, m=m, shift=shift, bits=bits)


# ---- isqrt ---------------------------------------------------------------------------------------

def test_isqrt_edge_cases(run_cpp):
    roots = [0, 1, 2, 3, 4, 15, 16, 255, 256, 65535, 65536, 46340, 46341, 3037000, (1 << 30) - 1,
             1 << 30, (1 << 31) - 2, (1 << 31) - 1]
    roots += [(1 << k) + d for k in range(31) for d in (-1, 0, 1)]
    x = _int64(r * r + d for r in roots for d in (-2, -1, 0, 1, 2, 2 * r, 2 * r + 1))
    x = x[(x >= 0) & (x < 1 << 62)]
    x = np.unique(np.concatenate([x, [(1 << 62) - 1, (1 << 62) - (1 << 31), (1 << 62) - (1 << 32) + 1]]))
    py = isqrt(x)
    assert_same(run_cpp("isqrt", x), py, x=x)
    assert py.tolist() == [math.isqrt(int(v)) for v in x]


def test_isqrt_random(run_cpp):
    rng = np.random.default_rng(4)
    x = np.abs(_wide(rng, N_RANDOM, 62))
    r = rng.integers(0, 1 << 31, size=N_RANDOM // 2)
    near = np.clip(r * r + rng.integers(-1, 2, size=r.size), 0, (1 << 62) - 1)  # squares and neighbours
    x = np.concatenate([x, near])
    py = isqrt(x)
    assert_same(run_cpp("isqrt", x), py, x=x)
    assert np.all((py * py <= x) & ((py + 1) * (py + 1) > x))


# ---- exp2_fixed ----------------------------------------------------------------------------------

def test_exp2_fixed_edge_cases(run_cpp):
    for fb in (0, 1, 20, 29, 30, 31, 36, 45, 61, 62):
        one = 1 << fb
        ts = [0, -1, -2, -(one // 2), -(one // 2) - 1, -(one // 2) + 1, I64_MIN + 1, -(1 << 62), -(1 << 40)]
        ts += [-k * one + d for k in (*range(0, 70), 100, 1 << 20) for d in (-1, 0, 1)]  # integer powers
        t = _int64(v for v in ts if I64_MIN < v <= 0)  # the domain: -t must fit in int64
        py = exp2_fixed(t, fb)
        assert_same(run_cpp("exp2_fixed", t, fb), py, t=t, frac_bits=fb)
        assert py[t == 0].tolist() == [1 << 30]
        if fb <= 61:
            powers = [k for k in range(0, 40) if k * one <= I64_MAX]
            assert exp2_fixed(np.array([-k * one for k in powers]), fb).tolist() == [(1 << 30) >> k for k in powers]
        assert py.min() >= 0 and py.max() <= 1 << 30
        with pytest.raises(ValueError):  # outside the domain the reference refuses (C++: precondition)
            exp2_fixed(np.array([I64_MIN]), fb)


def test_exp2_fixed_random(run_cpp):
    rng = np.random.default_rng(5)
    t = -np.abs(_wide(rng, N_RANDOM))
    fb = rng.integers(0, 63, size=N_RANDOM)
    near = rng.random(N_RANDOM) < 0.3  # a third near 0 .. 2^(fb+6), where the result is not 0
    t = np.where(near, -(np.abs(_wide(rng, N_RANDOM)) >> np.maximum(57 - fb, 0)), t)
    py = np.empty_like(t)
    for b in np.unique(fb):
        py[fb == b] = exp2_fixed(t[fb == b], int(b))
    assert (py > 0).mean() > 0.25
    assert_same(run_cpp("exp2_fixed", t, fb), py, t=t, frac_bits=fb)


# ---- exp2_int ------------------------------------------------------------------------------------

def _exp2_int_py(e, fb, cap) -> np.ndarray:
    out = np.empty_like(e)
    for key in set(zip(fb.tolist(), cap.tolist(), strict=True)):
        sel = (fb == key[0]) & (cap == key[1])
        out[sel] = exp2_int(e[sel], *key)
    return out


def test_exp2_int_edge_cases(run_cpp):
    rows = []
    for fb in (0, 1, 20, 30, 31, 45, 62):
        one = 1 << fb
        for cap in (30, 31, 47, 59, 61, 62):
            es = [0, 1, -1, one // 2, -(one // 2), I64_MIN, I64_MAX, I64_MIN + 1, I64_MAX - 1]
            es += [k * one + d for k in (*range(-70, 70), 1 << 20, -(1 << 20)) for d in (-1, 0, 1)]
            rows += [(e, fb, cap) for e in es if I64_MIN <= e <= I64_MAX]
    e, fb, cap = np.array(rows, dtype=np.int64).T
    py = _exp2_int_py(e, fb, cap)
    assert_same(run_cpp("exp2_int", e, fb, cap), py, e=e, frac_bits=fb, cap_bits=cap)
    k = np.arange(0, 59)  # exact powers of two below the cap
    assert exp2_int(k << 20, 20, 59).tolist() == [1 << int(v) for v in k]
    assert exp2_int(np.array([-(1 << 20), 100 << 20]), 20, 59).tolist() == [0, 1 << 59]  # 1/2 rounds to 0


def test_exp2_int_random(run_cpp):
    rng = np.random.default_rng(8)
    n = N_RANDOM
    fb = rng.integers(0, 63, size=n)
    cap = rng.integers(30, 63, size=n)
    e = _wide(rng, n)
    near = rng.random(n) < 0.6  # most exponents within +-2^7 of 1, where the result is neither 0 nor the cap
    small = _wide(rng, n, 8)
    e = np.where(near & (fb <= 54), small << np.minimum(fb, 54), e)
    e = np.where(near & (fb > 54), small, e)
    py = _exp2_int_py(e, fb, cap)
    assert ((py > 0) & (py < np.int64(1) << cap)).mean() > 0.2
    assert_same(run_cpp("exp2_int", e, fb, cap), py, e=e, frac_bits=fb, cap_bits=cap)


# ---- interp_lookup -------------------------------------------------------------------------------

@pytest.mark.parametrize(("in_bits", "knot_bits"), [(16, 10), (16, 16), (16, 0), (8, 4), (24, 10)])
def test_interp_lookup_every_code(run_cpp, in_bits, knot_bits):
    rng = np.random.default_rng(in_bits * 100 + knot_bits)
    tables = [rng.integers(-(1 << 31), 1 << 31, (1 << knot_bits) + 1),  # 32-bit knots, steepest slopes
              build_interp_lut(lambda t: 30 * np.tanh(t / 30), 2e-3, in_bits, 1e-3, 16, knot_bits),
              build_interp_lut(lambda t: -np.logaddexp(0, -t) / np.log(2), 5e-4, in_bits, 2.0**-20, 32, knot_bits)]
    codes = np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1))
    if codes.size > 1 << 17:
        codes = np.unique(np.concatenate([codes[:4096], codes[-4096:], rng.choice(codes, 1 << 16)]))
    for knots in tables:
        prefix = np.concatenate([[in_bits, knot_bits], knots])
        assert_same(run_cpp("interp", codes, prefix=prefix), interp_lookup(knots, codes, in_bits), code=codes)
    step = in_bits - knot_bits  # exact at the knots
    at = (np.arange(1 << knot_bits) << step) - (1 << (in_bits - 1))
    assert np.array_equal(interp_lookup(tables[0], at, in_bits), tables[0][:-1])


# ---- bit_length and reciprocal_fixed --------------------------------------------------------------

def _reciprocal_inputs(rng: np.random.Generator) -> np.ndarray:
    """Edges (powers of two and their neighbours, the 31-bit normalisation boundary, the top) and random values."""
    edges = [1, 2, 3, 5, 7, (1 << 62) - 1] + [(1 << k) + d for k in range(62) for d in (-1, 0, 1)]
    x = _int64(v for v in edges if 1 <= v < 1 << 62)
    wide = np.abs(_wide(rng, N_RANDOM, 62))
    return np.concatenate([x, wide[wide >= 1], rng.integers(1, 1 << 20, size=N_RANDOM // 4)])


def test_bit_length(run_cpp):
    x = np.concatenate([[0], _reciprocal_inputs(np.random.default_rng(6))])
    py = bit_length(x)
    assert_same(run_cpp("bit_length", x), py, x=x)
    assert py.tolist() == [int(v).bit_length() for v in x.tolist()]


def test_reciprocal_fixed_is_bit_exact_and_accurate(run_cpp):
    x = _reciprocal_inputs(np.random.default_rng(7))
    y, shift = reciprocal_fixed(x)
    assert_same(run_cpp("reciprocal", x), y * 128 + shift, x=x)
    assert y.min() >= 1 << 30 and y.max() <= 1 << 31
    rel = np.abs(np.ldexp(y.astype(np.float64) * x.astype(np.float64), -shift) - 1)  # y * x * 2^-shift ~= 1
    assert rel.max() < 2.0 ** -29
    with pytest.raises(ValueError):
        reciprocal_fixed(np.array([0]))


# ---- lut_lookup ----------------------------------------------------------------------------------

def test_lut_lookup(run_cpp):
    rng = np.random.default_rng(6)
    silu = build_lut(lambda v: v / (1 + np.exp(-v)), 0.05, 0.01, 16)
    random_table = rng.integers(-(1 << 31), 1 << 31, size=256)
    codes = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, size=N_RANDOM)])
    for table in (silu, random_table):
        assert_same(run_cpp("lut", codes, prefix=table), lookup(table, codes), code=codes)


# ---- toolchain -----------------------------------------------------------------------------------

def test_ap_types_dir_holds_the_headers():
    folder = ap_types_dir()
    assert (folder / "ap_int.h").is_file() and (folder / "ap_fixed.h").is_file()
    assert folder.parts[-3:] == ("templates", "vivado", "ap_types")


def test_ap_types_dir_without_hls4ml(monkeypatch):
    import edgec.hls.toolchain as toolchain

    monkeypatch.setattr(toolchain.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolchainError, match=r"pip install hls4ml"):
        ap_types_dir()


def test_missing_compiler_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"no C\+\+ compiler found \(g\+\+\); install g\+\+ or set CXX"):
        find_compiler()
    with pytest.raises(ToolchainError, match="install g"):
        compile_program([DRIVER_SOURCE], tmp_path / "x", [HLS_INCLUDE_DIR])
    monkeypatch.setenv("CXX", "no-such-compiler-edgec")
    with pytest.raises(ToolchainError, match="CXX=no-such-compiler-edgec"):
        find_compiler()


def test_compile_error_names_the_first_error(tmp_path):
    try:
        find_compiler()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    bad = tmp_path / "bad.cpp"
    bad.write_text("int main() {\n  return undefined_name_edgec;\n}\n")
    with pytest.raises(ToolchainError, match=r"bad\.cpp failed: .*error: .*undefined_name_edgec"):
        compile_program([bad], tmp_path / "bad", [])


def test_run_program_failure(driver, tmp_path):
    (tmp_path / "empty.in").write_bytes(b"")
    with pytest.raises(ToolchainError, match=r"numerics_driver failed \(exit status 2\): unknown op"):
        run_program(driver, ["no_such_op", tmp_path / "empty.in", tmp_path / "out"])
