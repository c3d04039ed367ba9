"""Exact Hadamard rotations: base constructions, plans, fast integer/float transforms."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.numerics.hadamard import (
    BASE_CONSTRUCTIONS,
    GS_FIRST_ROWS,
    KNOWN_ORDERS,
    HadamardPlan,
    goethals_seidel,
    hadamard_base,
    hadamard_matrix,
    hadamard_transform_float,
    hadamard_transform_int,
    paley_i,
    paley_ii,
    plan_hadamard,
    sylvester,
)
from edgec.numerics.hadamard_search import (
    is_gs_quadruple,
    periodic_autocorrelation,
    rows_from_str,
    search_gs_quadruple,
)


def _assert_hadamard(h: np.ndarray, n: int) -> None:
    assert h.shape == (n, n)
    assert h.dtype == np.int8
    assert np.isin(h, (-1, 1)).all()
    hi = h.astype(np.int64)
    np.testing.assert_array_equal(hi @ hi.T, n * np.eye(n, dtype=np.int64))


def _gram_exact(h: np.ndarray) -> np.ndarray:
    """H H^T via float32 BLAS: exact, since every partial sum is an integer of size <= n < 2**24."""
    assert h.shape[0] < 2**24
    f = h.astype(np.float32)
    return (f @ f.T).astype(np.int64)


def _dense_apply(x: np.ndarray, n: int) -> np.ndarray:
    """``x_padded @ hadamard_matrix(n).T`` exactly: float32 in row chunks, every partial sum an integer
    of size <= 128 n < 2**24."""
    assert 128 * n < 2**24
    h = hadamard_matrix(n)
    xp = np.zeros((*x.shape[:-1], n), dtype=np.float32)
    xp[..., : x.shape[-1]] = x
    out = np.empty((*x.shape[:-1], n), dtype=np.int64)
    for r in range(0, n, 2048):
        out[..., r : r + 2048] = (h[r : r + 2048].astype(np.float32) @ xp[..., None])[..., 0]
    return out


# ---------------------------------------------------------------------------- base matrices


def test_every_known_order_has_a_construction() -> None:
    assert set(BASE_CONSTRUCTIONS) == set(KNOWN_ORDERS)


@pytest.mark.parametrize("k", KNOWN_ORDERS)
def test_base_is_hadamard(k: int) -> None:
    h = hadamard_base(k)
    _assert_hadamard(h, k)
    assert not h.flags.writeable  # cached array is shared
    assert hadamard_base(k) is h


@pytest.mark.parametrize("q", [3, 7, 11, 19, 27, 43])
def test_paley_i(q: int) -> None:
    _assert_hadamard(paley_i(q), q + 1)  # 27: GF(3^3)


@pytest.mark.parametrize("q", [5, 9, 13, 17, 25])
def test_paley_ii(q: int) -> None:
    _assert_hadamard(paley_ii(q), 2 * (q + 1))  # 9, 25: GF(p^2)


def test_paley_rejects_wrong_residue_and_non_prime_powers() -> None:
    with pytest.raises(ValueError):
        paley_i(13)
    with pytest.raises(ValueError):
        paley_ii(11)
    with pytest.raises(ValueError, match="prime power"):
        paley_i(15)


@pytest.mark.parametrize("m", range(6))
def test_sylvester_natural_order(m: int) -> None:
    h = sylvester(m)
    n = 1 << m
    _assert_hadamard(h, n)
    i = np.arange(n)
    bits = np.array([bin(v).count("1") for v in (i[:, None] & i[None, :]).ravel()]).reshape(n, n)
    np.testing.assert_array_equal(h, (-1) ** bits)


@pytest.mark.parametrize("n", sorted(GS_FIRST_ROWS))
def test_stored_gs_rows_are_gs_quadruples(n: int) -> None:
    rows = rows_from_str(GS_FIRST_ROWS[n])
    assert rows.shape == (4, n)
    assert is_gs_quadruple(rows)
    paf = periodic_autocorrelation(rows).sum(axis=0)
    assert paf[0] == 4 * n and (paf[1:] == 0).all()
    assert (rows.astype(np.int64).sum(axis=1) ** 2).sum() == 4 * n
    _assert_hadamard(goethals_seidel(rows), 4 * n)


@pytest.mark.parametrize("n", [5, 9, 13])
def test_gs_search_small_and_deterministic(n: int) -> None:
    rows = search_gs_quadruple(n, seed=1, chains=4, max_iters=5000)
    assert rows is not None and is_gs_quadruple(rows)
    np.testing.assert_array_equal(rows, search_gs_quadruple(n, seed=1, chains=4, max_iters=5000))
    _assert_hadamard(goethals_seidel(rows), 4 * n)


def test_gs_quadruple_check_rejects_bad_rows() -> None:
    assert not is_gs_quadruple(np.ones((4, 5), dtype=np.int8))
    assert not is_gs_quadruple(np.ones((3, 5), dtype=np.int8))


# ---------------------------------------------------------------------------- dense matrices


@pytest.mark.parametrize("n", [1, 2, 12, 24, 40, 192, 1536, 2048])
def test_dense_matrix_is_hadamard(n: int) -> None:
    h = hadamard_matrix(n)
    assert h.shape == (n, n) and h.dtype == np.int8
    np.testing.assert_array_equal(_gram_exact(h), n * np.eye(n, dtype=np.int64))


@pytest.mark.parametrize("n", [3072, 4096, 5120])
def test_large_dense_matrix_is_hadamard(n: int) -> None:
    """Exact Gram of a row band, plus the Kronecker factorization (which then implies all of H H^T)."""
    h = hadamard_matrix(n)
    plan = plan_hadamard(n)
    assert np.isin(h, (-1, 1)).all()
    np.testing.assert_array_equal(h, np.kron(hadamard_base(plan.k), sylvester(plan.m)))
    band = np.r_[0:64, n // 2 - 32 : n // 2 + 32, n - 64 : n]
    f = h.astype(np.float32)
    g = (f[band] @ f.T).astype(np.int64)
    np.testing.assert_array_equal(g, n * np.eye(n, dtype=np.int64)[band])
    # Factors: H_K H_K^T = K I, and Sylvester H_{2^m} = H_2 ⊗ H_{2^(m-1)} with H_2 H_2^T = 2 I.
    _assert_hadamard(hadamard_base(plan.k), plan.k)
    np.testing.assert_array_equal(sylvester(plan.m), np.kron(sylvester(1), sylvester(plan.m - 1)))


def test_dense_matrix_rejects_unfactorable() -> None:
    for n in (100, 10944, 7):
        with pytest.raises(ValueError, match="not K"):
            hadamard_matrix(n)


# ---------------------------------------------------------------------------- plans


@pytest.mark.parametrize(
    ("dim", "k", "m"),
    [(1, 1, 0), (2, 1, 1), (12, 12, 0), (24, 12, 1), (40, 20, 1), (192, 12, 4), (1536, 12, 7),
     (4096, 1, 12), (5120, 20, 8), (2560, 20, 7), (11008, 172, 6), (9984, 156, 6)],
)  # fmt: skip
def test_plan_exact_factorization(dim: int, k: int, m: int) -> None:
    assert plan_hadamard(dim) == HadamardPlan(dim=dim, k=k, m=m, padded_dim=dim, pad=0)


@pytest.mark.parametrize("dim", [3, 7, 100, 1000, 2500, 10944, 14000])
def test_plan_pads_to_smallest_valid_size(dim: int) -> None:
    plan = plan_hadamard(dim)
    assert plan.padded_dim == plan.k * 2**plan.m >= dim
    assert plan.pad == plan.padded_dim - dim > 0
    brute = min((k * 2**m, k) for k in KNOWN_ORDERS for m in range(20) if k * 2**m >= dim)
    assert (plan.padded_dim, plan.k) == brute


def test_plan_10944_pads_not_truncates() -> None:
    plan = plan_hadamard(10944)
    assert (plan.k, plan.m, plan.padded_dim, plan.pad) == (172, 6, 11008, 64)
    assert plan_hadamard(100) == HadamardPlan(dim=100, k=52, m=1, padded_dim=104, pad=4)


def test_plan_rejects_bad_dims() -> None:
    with pytest.raises(ValueError):
        plan_hadamard(0)
    with pytest.raises(TypeError):
        plan_hadamard(12.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- fast transforms


@pytest.mark.parametrize("dim", [1, 12, 40, 100, 156 * 2, 172 * 4, 192, 1536, 5120, 10944])
def test_fast_int_transform_matches_dense(dim: int) -> None:
    rng = np.random.default_rng(dim)
    plan = plan_hadamard(dim)
    x = rng.integers(-128, 128, size=(3, dim), dtype=np.int8)
    y = hadamard_transform_int(x, plan)
    assert y.dtype == np.int64 and y.shape == (3, plan.padded_dim)
    np.testing.assert_array_equal(y, _dense_apply(x, plan.padded_dim))
    # 1-D input, and y = H @ x_padded orientation.
    np.testing.assert_array_equal(hadamard_transform_int(x[0], plan), y[0])


@pytest.mark.parametrize("k", KNOWN_ORDERS)
def test_fast_int_transform_every_base(k: int) -> None:
    plan = plan_hadamard(k * 8)
    assert plan.k == k or k == 40  # 40 * 8 = 20 * 16 picks the smaller K
    plan = HadamardPlan(dim=k * 8 - 3, k=k, m=3, padded_dim=k * 8, pad=3)
    x = np.random.default_rng(k).integers(-128, 128, size=(2, 2, plan.dim), dtype=np.int8)
    h = np.kron(hadamard_base(k), sylvester(3)).astype(np.int64)
    xp = np.concatenate([x, np.zeros((2, 2, 3), dtype=np.int8)], axis=-1).astype(np.int64)
    np.testing.assert_array_equal(hadamard_transform_int(x, plan), xp @ h.T)


def test_int_transform_input_checks() -> None:
    plan = plan_hadamard(24)
    with pytest.raises(TypeError):
        hadamard_transform_int(np.zeros(24), plan)
    with pytest.raises(ValueError, match="length 24"):
        hadamard_transform_int(np.zeros(25, dtype=np.int8), plan)


@pytest.mark.parametrize("dim", [100, 192, 1536, 10944])
def test_float_transform_orthonormal(dim: int) -> None:
    rng = np.random.default_rng(dim)
    plan = plan_hadamard(dim)
    x = rng.standard_normal((4, dim))
    y = hadamard_transform_float(x, plan)
    assert y.dtype == np.float64 and y.shape == (4, plan.padded_dim)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)
    xi = rng.integers(-128, 128, size=(2, dim), dtype=np.int8)
    np.testing.assert_allclose(
        hadamard_transform_float(xi, plan),
        hadamard_transform_int(xi, plan) / np.sqrt(plan.padded_dim),
        rtol=1e-12,
        atol=1e-12,
    )
    if plan.padded_dim <= 2048:  # dense normalized inverse (= transpose) recovers x and the zero pad
        hn = hadamard_matrix(plan.padded_dim).astype(np.float64) / np.sqrt(plan.padded_dim)
        back = y @ hn  # x_padded = Hn^T y, row-vector form
        np.testing.assert_allclose(back[:, :dim], x, atol=1e-12)
        np.testing.assert_allclose(back[:, dim:], 0.0, atol=1e-12)


def test_float_transform_float32() -> None:
    plan = plan_hadamard(1536)
    x = np.random.default_rng(0).standard_normal((2, 1536)).astype(np.float32)
    y = hadamard_transform_float(x, plan)
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
