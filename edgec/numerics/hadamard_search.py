"""Computer search for Goethals–Seidel quadruples (offline tool behind two Hadamard base orders).

A Goethals–Seidel (GS) quadruple of length ``n`` is four ±1 sequences ``a, b, c, d`` whose periodic
autocorrelations sum to zero at every nonzero shift::

    PAF_a(s) + PAF_b(s) + PAF_c(s) + PAF_d(s) = 0,   PAF_x(s) = sum_i x[i] * x[(i + s) % n],  s != 0.

The circulants ``A, B, C, D`` with these first rows satisfy ``A A^T + B B^T + C C^T + D D^T = 4n I``
and plug into the Goethals–Seidel array to give a Hadamard matrix of order ``4n``
(:func:`edgec.numerics.hadamard.goethals_seidel`). No closed-form construction covers orders
156 = 4*39 and 172 = 4*43, so :mod:`edgec.numerics.hadamard` ships first rows found by
:func:`search_gs_quadruple`; rerun ``python -m edgec.numerics.hadamard_search 39 43`` to reproduce them.

The search is a seeded, batched tabu search over single-entry flips minimising
``sum_{s=1}^{n//2} (sum_x PAF_x(s))^2`` and is fully deterministic for a given ``(n, seed)``.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = [
    "is_gs_quadruple",
    "periodic_autocorrelation",
    "rows_from_str",
    "rows_to_str",
    "search_gs_quadruple",
]


def periodic_autocorrelation(rows: np.ndarray) -> np.ndarray:
    """PAF of each ±1 row: ``out[r, s] = sum_i rows[r, i] * rows[r, (i + s) % n]`` for s in [0, n)."""
    x = np.asarray(rows, dtype=np.int64)
    n = x.shape[-1]
    idx = (np.arange(n)[:, None] + np.arange(n)[None, :]) % n  # [i, s] -> i + s
    return np.einsum("...i,...is->...s", x, x[..., idx])


def is_gs_quadruple(rows: np.ndarray) -> bool:
    """True when ``rows`` is a [4, n] ±1 array whose PAFs sum to zero at every nonzero shift."""
    x = np.asarray(rows)
    if x.ndim != 2 or x.shape[0] != 4 or not np.isin(x, (-1, 1)).all():
        return False
    total = periodic_autocorrelation(x).sum(axis=0)
    return bool((total[1:] == 0).all())


def search_gs_quadruple(
    n: int, *, seed: int = 0, chains: int = 32, max_iters: int = 100_000, tabu: int | None = None
) -> np.ndarray | None:
    """Batched tabu search for a GS quadruple of length ``n``; an int8 [4, n] array or None.

    ``chains`` independent random starts advance in lockstep; each step every chain flips its non-tabu
    entry of lowest cost (ties broken by seeded noise), which then stays tabu for ``tabu`` steps
    (default ``n // 2``). The first chain (lowest index) to reach cost 0 wins.
    """
    if n < 1:
        raise ValueError(f"length must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    shifts = np.arange(1, n // 2 + 1)
    i = np.arange(n)
    plus, minus = (i[:, None] + shifts) % n, (i[:, None] - shifts) % n
    x = rng.choice(np.array([-1, 1], dtype=np.int64), size=(chains, 4, n))
    total = (x[..., None] * x[..., plus]).sum(axis=(1, 2))  # [chain, s]: sum_r PAF_r(s), s = 1..n//2
    tabu_len = n // 2 if tabu is None else tabu
    tabu_until = np.zeros((chains, 4 * n), dtype=np.int64)
    flat = x.reshape(chains, 4 * n)  # view: entry (r, j) is column r * n + j
    chain = np.arange(chains)
    for it in range(max_iters + 1):
        done = ~total.any(axis=1)
        if done.any():
            return x[np.argmax(done)].astype(np.int8)
        if it == max_iters:
            break
        # Flipping x[r, j] changes PAF_r(s) by -2 x[r, j] (x[r, j+s] + x[r, j-s]).
        delta = (-2 * x[..., None] * (x[..., plus] + x[..., minus])).reshape(chains, 4 * n, -1)
        cost = ((total[:, None, :] + delta) ** 2).sum(axis=-1) + rng.random((chains, 4 * n))
        cost[tabu_until > it] = np.inf
        best = np.argmin(cost, axis=1)
        total += delta[chain, best]
        flat[chain, best] *= -1
        tabu_until[chain, best] = it + tabu_len
    return None


def rows_to_str(rows: np.ndarray) -> tuple[str, ...]:
    """Encode ±1 rows as '+'/'-' strings (the format stored in :mod:`edgec.numerics.hadamard`)."""
    return tuple("".join("+" if v > 0 else "-" for v in row) for row in np.asarray(rows))


def rows_from_str(rows: tuple[str, ...] | list[str]) -> np.ndarray:
    """Decode '+'/'-' strings into an int8 ±1 array."""
    return np.array([[1 if ch == "+" else -1 for ch in row] for row in rows], dtype=np.int8)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m edgec.numerics.hadamard_search N [N ...] [--seed S]``; prints the first rows."""
    args = list(sys.argv[1:] if argv is None else argv)
    seed = 0
    if "--seed" in args:
        pos = args.index("--seed")
        seed = int(args[pos + 1])
        del args[pos : pos + 2]
    for n in map(int, args):
        rows = search_gs_quadruple(n, seed=seed)
        if rows is None:
            print(f"{n}: no quadruple found (seed={seed})")
            continue
        assert is_gs_quadruple(rows)
        print(f"{n}: seed={seed}")
        for row in rows_to_str(rows):
            print(f'    "{row}",')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
