"""Composite integer kernels built only from edgec.numerics primitives (mirrored by the HLS)."""

from __future__ import annotations

import numpy as np

from edgec.numerics.fixed import isqrt, quantize_multiplier, requant

__all__ = ["Float32Weights", "int_matmul", "rmsnorm_int", "signed_multiplier"]

INV_BITS = 16  # inv = 2^(b+16) // rms with 2^(b-1) <= rms < 2^b lies in (2^16, 2^17]


def int_matmul(x: np.ndarray, w: np.ndarray, w_f32: np.ndarray | None = None) -> np.ndarray:
    """x[..., K] @ w[N, K].T of integer codes, exact; ``w_f32``: ``w`` as float32 already (Float32Weights).

    Float BLAS is exact while every partial sum stays below the mantissa (2^24 in float32, 2^53 in float64): the
    contraction runs in float32 over slices of K short enough for the operands' magnitudes (int8 x int8: 1032
    terms), summed in int64; float64 when even short slices would not be exact. float32 halves the weight bytes
    converted per call (the simulators' decode cost at real widths).
    """
    x = np.asarray(x)
    k = x.shape[-1]
    x_max = int(np.abs(x).max(initial=0))
    w_max = 128 if w.dtype == np.int8 else int(np.abs(w).max(initial=0))
    span = (2**24 - 1) // max(x_max * w_max, 1)
    if span < min(k, 256):
        return (x.astype(np.float64) @ np.asarray(w, np.float64).T).astype(np.int64)
    xf, wf = x.astype(np.float32), np.asarray(w, np.float32) if w_f32 is None else w_f32
    acc = (xf[..., :span] @ wf[:, :span].T).astype(np.int64)
    for start in range(span, k, span):
        acc += (xf[..., start:start + span] @ wf[:, start:start + span].T).astype(np.int64)
    return acc


class Float32Weights:
    """float32 copies of int8 weights for int_matmul, kept while they fit ``budget`` bytes: a simulator decoding
    token by token would otherwise convert every weight on every call (at mamba-130m widths, 520 MB per token)."""

    def __init__(self, budget: int = 1 << 30) -> None:
        self.budget = budget
        self.cache: dict[str, np.ndarray] = {}
        self.used = 0

    def get(self, name: str, w: np.ndarray) -> np.ndarray | None:
        """The float32 copy of int8 weight ``name`` (``w``), or None once the budget is spent."""
        if name not in self.cache:
            if w.dtype != np.int8 or self.used + 4 * w.size > self.budget:
                return None
            self.cache[name] = w.astype(np.float32)
            self.used += 4 * w.size
        return self.cache[name]


def rmsnorm_int(x: np.ndarray, eps_q: int, m: np.ndarray | int, shift: np.ndarray | int, bits: int = 8) -> np.ndarray:
    """``bits``-bit codes of x / sqrt(mean(x^2) + eps) / s_out, for integer x (e.g. 24-bit residual codes).

    rms = isqrt(sum(x^2) // d + eps_q); inv = 2^(b+16) // rms with b = bit_length(rms), so inv has
    17 significant bits whatever the magnitude; then one requant with shift + b + 16.
    """
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[-1]
    ms = np.sum(x * x, axis=-1, keepdims=True) // d + eps_q
    rms = np.maximum(isqrt(ms), 1)
    b = np.floor(np.log2(rms.astype(np.float64))).astype(np.int64) + 1  # exact bit length below 2^52
    inv = (np.int64(1) << (b + INV_BITS)) // rms
    return requant(x * inv, m, shift + b + INV_BITS, bits)


def signed_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier for reals of any sign: m carries the sign; a zero gives m = 0."""
    real = np.asarray(real, dtype=np.float64)
    mag = np.where(real == 0, 1.0, np.abs(real))
    m, shift = quantize_multiplier(mag)
    return np.where(real == 0, 0, np.sign(real).astype(np.int64) * m), np.where(real == 0, 0, shift)
