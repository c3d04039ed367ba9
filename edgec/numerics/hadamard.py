"""Exact Hadamard rotations for model dimensions ``n = K * 2**m``.

``H_n = H_K ⊗ H_{2**m}``: ``H_K`` is a base Hadamard matrix of a known order ``K`` (:data:`KNOWN_ORDERS`)
and ``H_{2**m}`` is the Sylvester (natural-order Walsh–Hadamard) matrix. Base matrices are built
constructively, no hard-coded matrices:

* 1: ``[[1]]``; 40: ``H_2 ⊗ H_20`` (Kronecker product).
* 12, 20, 60, 108, 140: Paley I over GF(q), q = 11, 19, 59, 107, 139 (q ≡ 3 mod 4), order q + 1.
* 28, 36, 52: Paley II over GF(q), q = 13, 17, 25 (q ≡ 1 mod 4; GF(25) = GF(5)[t]/(f)), order 2(q + 1).
* 156 = 4*39, 172 = 4*43: Goethals–Seidel array of four circulants whose first rows were found by the
  tabu search :func:`edgec.numerics.hadamard_search.search_gs_quadruple` (only those rows are stored).

A dimension with no such factorization is zero-padded (never truncated) to the smallest ``K * 2**m``
above it (:func:`plan_hadamard`). :func:`hadamard_transform_int` is the exact, unnormalized fast
transform that the HLS kernel mirrors; :func:`hadamard_transform_float` is its orthonormal float twin.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "BASE_CONSTRUCTIONS",
    "GS_FIRST_ROWS",
    "KNOWN_ORDERS",
    "MAX_HADAMARD_FACTOR",
    "HadamardPlan",
    "goethals_seidel",
    "hadamard_base",
    "hadamard_factor_matrices",
    "hadamard_factors",
    "hadamard_matrix",
    "hadamard_transform_float",
    "hadamard_transform_int",
    "paley_i",
    "paley_ii",
    "plan_hadamard",
    "sylvester",
]

MAX_HADAMARD_FACTOR = 6  # float rotations apply the 2^m part as factors of at most 2^6 = 64

KNOWN_ORDERS: tuple[int, ...] = (1, 12, 20, 28, 36, 40, 52, 60, 108, 140, 156, 172)

#: How each base order is built: ("trivial",), ("paley1", q), ("paley2", q), ("kron2", K), ("gs", n).
BASE_CONSTRUCTIONS: dict[int, tuple] = {
    1: ("trivial",),
    12: ("paley1", 11),
    20: ("paley1", 19),
    28: ("paley2", 13),
    36: ("paley2", 17),
    40: ("kron2", 20),
    52: ("paley2", 25),
    60: ("paley1", 59),
    108: ("paley1", 107),
    140: ("paley1", 139),
    156: ("gs", 39),
    172: ("gs", 43),
}

#: First rows (a, b, c, d; '+' = 1, '-' = -1) of Goethals–Seidel quadruples: the output of
#: ``search_gs_quadruple(n, seed=0)`` in :mod:`edgec.numerics.hadamard_search`, checked on use.
GS_FIRST_ROWS: dict[int, tuple[str, str, str, str]] = {
    39: (
        "-++-+--+--++++++-+-+-++++-+++--++-+---+",
        "--++++++-++--+-+--+---+--+++-+-+++--+--",
        "++-+++----+----++++---++++++--+++-+-+-+",
        "--+-++----+--+--+-+++--++-+--++---+----",
    ),
    43: (
        "---+-+++--++--++-+-+++---+-++-+-----++-++-+",
        "-----+-+-+-++--+-++++++++++----++----+++-+-",
        "+-++-+++++-++++----++-+-++++-+++-++---++-++",
        "++-+----+-+--+-++-+++---++--++--+++++-+-+--",
    ),
}


# --------------------------------------------------------------------------------------------------
# Finite fields and the Paley constructions
# --------------------------------------------------------------------------------------------------


def _prime_power(q: int) -> tuple[int, int]:
    """``(p, e)`` with ``q = p**e``, p prime; ValueError otherwise."""
    if q >= 2:
        p = next(d for d in range(2, q + 1) if q % d == 0)
        e, r = 0, q
        while r % p == 0:
            r //= p
            e += 1
        if r == 1:
            return p, e
    raise ValueError(f"{q} is not a prime power")


@lru_cache(maxsize=16)
def _jacobsthal(q: int) -> np.ndarray:
    """Jacobsthal matrix ``Q[x, y] = chi(x - y)`` of GF(q) (chi: quadratic character), int8.

    Elements are indexed by base-p digits of polynomials over GF(p) modulo the smallest monic
    irreducible of degree e (e <= 3, so "no root in GF(p)" certifies irreducibility).
    """
    p, e = _prime_power(q)
    if e > 3:
        raise ValueError(f"GF({q}) with extension degree {e} > 3 is not supported")
    digits = np.array([[(v // p**t) % p for t in range(e)] for v in range(q)], dtype=np.int64)
    weights = p ** np.arange(e)
    if e == 1:
        squares = {(v * v) % p for v in range(1, p)}
    else:
        # Smallest monic f = t^e + sum c_t t^t (c in base-p digits of idx) without roots in GF(p).
        for idx in range(q):
            low = digits[idx]
            if all((pow(r, e, p) + sum(int(c) * r**t for t, c in enumerate(low))) % p for r in range(p)):
                break
        squares = set()
        for v in range(1, q):
            prod = np.convolve(digits[v], digits[v]) % p  # degree <= 2e - 2
            for deg in range(2 * e - 2, e - 1, -1):  # reduce t^deg = -t^(deg-e) * low(t)
                coef = prod[deg]
                prod[deg] = 0
                prod[deg - e : deg] = (prod[deg - e : deg] - coef * low) % p
            squares.add(int(prod[:e] @ weights))
    chi = np.array([0] + [1 if v in squares else -1 for v in range(1, q)], dtype=np.int8)
    diff = ((digits[:, None, :] - digits[None, :, :]) % p) @ weights
    return chi[diff]


def paley_i(q: int) -> np.ndarray:
    """Paley I Hadamard matrix of order q + 1 for a prime power q ≡ 3 (mod 4)."""
    if q % 4 != 3:
        raise ValueError(f"Paley I needs q ≡ 3 mod 4, got {q}")
    s = np.zeros((q + 1, q + 1), dtype=np.int8)
    s[0, 1:], s[1:, 0], s[1:, 1:] = 1, -1, _jacobsthal(q)  # skew conference matrix
    return s + np.eye(q + 1, dtype=np.int8)


def paley_ii(q: int) -> np.ndarray:
    """Paley II Hadamard matrix of order 2(q + 1) for a prime power q ≡ 1 (mod 4)."""
    if q % 4 != 1:
        raise ValueError(f"Paley II needs q ≡ 1 mod 4, got {q}")
    c = np.zeros((q + 1, q + 1), dtype=np.int8)
    c[0, 1:], c[1:, 0], c[1:, 1:] = 1, 1, _jacobsthal(q)  # symmetric conference matrix
    h2 = np.array([[1, 1], [1, -1]], dtype=np.int8)
    off = np.array([[1, -1], [-1, -1]], dtype=np.int8)
    return np.kron(c, h2) + np.kron(np.eye(q + 1, dtype=np.int8), off)


# --------------------------------------------------------------------------------------------------
# Sylvester and Goethals–Seidel
# --------------------------------------------------------------------------------------------------


def sylvester(m: int) -> np.ndarray:
    """Sylvester matrix ``H_{2**m}`` (natural order: ``H[i, j] = (-1)**popcount(i & j)``), int8."""
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    h = np.ones((1, 1), dtype=np.int8)
    for _ in range(m):
        h = np.block([[h, h], [h, -h]])
    return h


def _circulant(row: np.ndarray) -> np.ndarray:
    """Circulant matrix ``C[i, j] = row[(j - i) % n]``."""
    n = len(row)
    return np.asarray(row)[(np.arange(n)[None, :] - np.arange(n)[:, None]) % n]


def goethals_seidel(rows: np.ndarray) -> np.ndarray:
    """Goethals–Seidel array on circulants A, B, C, D with first rows ``rows`` ([4, n]); order 4n.

    ``[[A, BR, CR, DR], [-BR, A, D'R, -C'R], [-CR, -D'R, A, B'R], [-DR, C'R, -B'R, A]]`` with R the
    back-identity; Hadamard iff the rows form a GS quadruple (their PAFs sum to 0 off shift 0).
    """
    a, b, c, d = (_circulant(np.asarray(r, dtype=np.int8)) for r in rows)
    r = np.eye(a.shape[0], dtype=np.int8)[::-1]
    br, cr, dr = b @ r, c @ r, d @ r
    btr, ctr, dtr = b.T @ r, c.T @ r, d.T @ r
    return np.block(
        [
            [a, br, cr, dr],
            [-br, a, dtr, -ctr],
            [-cr, -dtr, a, btr],
            [-dr, ctr, -btr, a],
        ]
    ).astype(np.int8)


def _gs_rows(n: int) -> np.ndarray:
    return np.array([[1 if ch == "+" else -1 for ch in row] for row in GS_FIRST_ROWS[n]], dtype=np.int8)


# --------------------------------------------------------------------------------------------------
# Base matrices, dense matrices and plans
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def hadamard_base(k: int) -> np.ndarray:
    """Base Hadamard matrix ``H_k`` (±1, int8, ``H H^T = k I``) for k in :data:`KNOWN_ORDERS`.

    The cached array is read-only; copy it before modifying.
    """
    if k not in BASE_CONSTRUCTIONS:
        raise ValueError(f"no base Hadamard construction for order {k}; known orders: {KNOWN_ORDERS}")
    kind, *args = BASE_CONSTRUCTIONS[k]
    if kind == "trivial":
        h = np.ones((1, 1), dtype=np.int8)
    elif kind == "paley1":
        h = paley_i(args[0])
    elif kind == "paley2":
        h = paley_ii(args[0])
    elif kind == "kron2":
        h = np.kron(sylvester(1), hadamard_base(args[0]))
    else:  # "gs"
        h = goethals_seidel(_gs_rows(args[0]))
    h = np.ascontiguousarray(h, dtype=np.int8)
    hh = h.astype(np.int64) @ h.T.astype(np.int64)
    if h.shape != (k, k) or not np.array_equal(hh, k * np.eye(k, dtype=np.int64)):
        raise AssertionError(f"construction {BASE_CONSTRUCTIONS[k]} did not give a Hadamard matrix")
    h.flags.writeable = False
    return h


@dataclass(frozen=True)
class HadamardPlan:
    """Factorization ``padded_dim = k * 2**m >= dim`` of a model dimension; ``pad`` zeros are appended."""

    dim: int
    k: int
    m: int
    padded_dim: int
    pad: int

    @property
    def block(self) -> int:
        """Walsh–Hadamard length ``2**m`` (the inner, butterfly axis)."""
        return 1 << self.m


def plan_hadamard(dim: int) -> HadamardPlan:
    """Plan for ``dim``: the smallest ``padded_dim = K * 2**m >= dim``, ties to the smallest K.

    When ``dim`` itself factors (e.g. 5120 = 20 * 256 = 40 * 128 -> K = 20) there is no padding;
    otherwise the input is zero-padded, never truncated (10944 -> 172 * 64 = 11008, pad 64).
    """
    dim = operator.index(dim)
    if dim < 1:
        raise ValueError(f"dimension must be >= 1, got {dim}")
    best: tuple[int, int, int] | None = None
    for k in KNOWN_ORDERS:
        m = 0
        while k << m < dim:
            m += 1
        if best is None or (k << m, k) < best[:2]:
            best = (k << m, k, m)
    assert best is not None
    padded, k, m = best
    return HadamardPlan(dim=dim, k=k, m=m, padded_dim=padded, pad=padded - dim)


def hadamard_matrix(n: int) -> np.ndarray:
    """Dense ``H_n = H_K ⊗ H_{2**m}`` (int8, ±1, ``H H^T = n I``) with K, m from :func:`plan_hadamard`."""
    plan = plan_hadamard(n)
    if plan.pad:
        raise ValueError(
            f"{n} is not K * 2**m for a known order K in {KNOWN_ORDERS} "
            f"(nearest valid size above it: {plan.padded_dim} = {plan.k} * 2**{plan.m})"
        )
    return np.kron(hadamard_base(plan.k), sylvester(plan.m))


# --------------------------------------------------------------------------------------------------
# Fast transforms
# --------------------------------------------------------------------------------------------------


def _check_input(x: np.ndarray, plan: HadamardPlan) -> None:
    if x.ndim < 1 or x.shape[-1] != plan.dim:
        raise ValueError(f"last axis must have length {plan.dim}, got shape {x.shape}")


def _fast_transform(xp: np.ndarray, plan: HadamardPlan, hk: np.ndarray) -> np.ndarray:
    """In-place butterflies on the [..., k, 2**m] view of ``xp``, then ``H_K`` across the k rows."""
    lead = xp.shape[:-1]
    z = xp.reshape(*lead, plan.k, plan.block)
    h = 1
    while h < plan.block:
        v = z.reshape(*lead, plan.k, plan.block // (2 * h), 2, h)  # pairs (j, j + h) in blocks of 2h
        a = v[..., 0, :].copy()
        v[..., 0, :] += v[..., 1, :]  # x[j]     <- a + b
        np.subtract(a, v[..., 1, :], out=v[..., 1, :])  # x[j + h] <- a - b
        h *= 2
    return np.matmul(hk, z).reshape(*lead, plan.padded_dim)


def hadamard_transform_int(x: np.ndarray, plan: HadamardPlan) -> np.ndarray:
    """Exact unnormalized ``y = H_padded @ pad(x)`` along the last axis; int64 ``[..., padded_dim]``.

    Equals ``x_padded @ hadamard_matrix(plan.padded_dim).T`` bit-exactly. Order of operations (the
    HLS kernel mirrors it):

    1. zero-pad the last axis from ``dim`` to ``padded_dim`` (pad at the end);
    2. view it row-major as ``[k, 2**m]`` (element ``r * 2**m + c`` is row r, column c);
    3. per row, Walsh–Hadamard butterflies in the standard iterative order: for h = 1, 2, 4, ...,
       2**(m-1): for each block start i = 0, 2h, 4h, ...: for j in [i, i + h):
       ``(x[j], x[j + h]) <- (x[j] + x[j + h], x[j] - x[j + h])`` (natural/Sylvester order);
    4. mix rows with the ±1 base matrix: ``out[r, :] = sum_s H_K[r, s] * row_s``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"integer input required, got {x.dtype}")
    _check_input(x, plan)
    xp = np.zeros((*x.shape[:-1], plan.padded_dim), dtype=np.int64)
    xp[..., : plan.dim] = x
    return _fast_transform(xp, plan, hadamard_base(plan.k).astype(np.int64))


def hadamard_factors(plan: HadamardPlan) -> list[int]:
    """The Kronecker factors a float rotation is applied with (here and in the ONNX graphs): K (when > 1), then
    2^m split into the fewest near-equal powers of two of at most 2^MAX_HADAMARD_FACTOR."""
    parts = -(-plan.m // MAX_HADAMARD_FACTOR)
    bits = [plan.m // parts + (i < plan.m % parts) for i in range(parts)]
    return [plan.k] * (plan.k > 1) + [1 << b for b in bits]


def hadamard_factor_matrices(plan: HadamardPlan) -> list[np.ndarray]:
    """The ±1 matrix of each of :func:`hadamard_factors`: H_K first (when K > 1), then Sylvester factors."""
    sizes = hadamard_factors(plan)
    return [hadamard_base(size) if j == 0 and plan.k > 1 else sylvester(size.bit_length() - 1)
            for j, size in enumerate(sizes)]


def hadamard_transform_float(x: np.ndarray, plan: HadamardPlan) -> np.ndarray:
    """Orthonormal ``(H_padded / sqrt(padded_dim)) @ pad(x)`` along the last axis.

    Applied in Kronecker factors (:func:`hadamard_factors`, the fastest index first, as the ONNX graphs do): each
    factor is one matrix product over the whole batch, then one scale by ``1 / sqrt(padded_dim)``. Computes in
    float32 for float32 input, float64 otherwise; output ``[..., padded_dim]``.
    """
    x = np.asarray(x)
    _check_input(x, plan)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    lead = x.shape[:-1]
    rows = int(np.prod(lead, dtype=np.int64))
    y = np.zeros((rows, plan.padded_dim), dtype=dtype)
    y[:, : plan.dim] = x.reshape(rows, plan.dim)
    after = 1
    for h in reversed(hadamard_factor_matrices(plan)):
        size = h.shape[0]
        before = plan.padded_dim // (after * size)
        hd, blocks = h.astype(dtype), y.reshape(rows * before, size, after)
        if after == 1:  # the fastest axis: one product of the whole batch
            y = blocks[..., 0] @ hd.T
        elif after >= 64:  # H times each [size, after] block (wide enough for one BLAS call each)
            y = np.matmul(hd, blocks)
        else:  # the factor's axis moved last, one product of the whole batch, moved back
            y = np.ascontiguousarray(np.tensordot(blocks, hd, axes=([1], [1])).transpose(0, 2, 1))
        y = y.reshape(rows, plan.padded_dim)
        after *= size
    y *= dtype(1.0 / np.sqrt(plan.padded_dim))
    return y.reshape(*lead, plan.padded_dim)
