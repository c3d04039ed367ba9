"""Colour renderings of scikit-learn's 8x8 digits (NumPy only: no scikit-learn needed to use or check them).

A digit is an 8x8 array of grey levels 0..16 (scikit-learn's ``load_digits().images``). ``render``
upsamples it 4x (nearest) to 32x32 and colours it: pixel = paper + (ink - paper) * level / 16, rounded,
with the (paper, ink) pair ``PALETTE[i]``. Held-out and calibration images use pair ``index % 8`` of
their dataset index; training adds random colours and shifts (train.py). ``unrender`` recovers the 8x8
digit of a palette rendering exactly, so tests check the shipped images against the training digits'
digests without scikit-learn.

Tasks: ``digit`` (the class, 10) and ``parity`` (class % 2, 2).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["PALETTE", "SCALE", "TASKS", "digests", "render", "task_labels", "unrender"]

SCALE = 4  # 8x8 -> 32x32
TASKS = {"digit": 10, "parity": 2}
#: (paper, ink) RGB pairs: dark paper, bright ink of different hues (one polarity, so a small ViT learns them
#: quickly); in each, some channel differs by at least 128, so every grey level stays distinct.
PALETTE = np.array([
    [[0, 0, 0], [255, 255, 255]], [[20, 20, 60], [255, 220, 0]], [[0, 40, 0], [255, 120, 200]],
    [[50, 0, 0], [120, 230, 255]], [[10, 30, 60], [255, 200, 40]], [[40, 0, 40], [120, 255, 120]],
    [[30, 30, 30], [255, 120, 0]], [[0, 0, 80], [200, 255, 255]],
], np.float64)


def render(digits: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images of grey-level digits [N, 8, 8] (0..16) in palette pairs ``pairs`` [N]."""
    level = np.repeat(np.repeat(digits.astype(np.float64) / 16, SCALE, axis=1), SCALE, axis=2)[..., None]
    paper, ink = PALETTE[pairs, 0][:, None, None], PALETTE[pairs, 1][:, None, None]
    return np.rint(paper + (ink - paper) * level).astype(np.uint8)


def unrender(images: np.ndarray) -> np.ndarray:
    """The grey-level digits [N, 8, 8] (uint8) of palette renderings [N, 32, 32, 3]; ValueError if one is not."""
    out = np.zeros((len(images), 8, 8), np.uint8)
    for i, image in enumerate(images):
        for pair, (paper, ink) in enumerate(PALETTE):
            c = int(np.argmax(np.abs(ink - paper)))
            samples = image[::SCALE, ::SCALE, c].astype(np.float64)
            digit = np.clip(np.rint((samples - paper[c]) * 16 / (ink[c] - paper[c])), 0, 16).astype(np.uint8)
            if np.array_equal(render(digit[None], np.array([pair]))[0], image):
                out[i] = digit
                break
        else:
            raise ValueError(f"image {i} is not a palette rendering of an 8x8 digit")
    return out


def digests(digits: np.ndarray) -> list[str]:
    """A content digest of each 8x8 digit (uint8 grey levels): the first 16 hex digits of its SHA-256."""
    return [hashlib.sha256(d.astype(np.uint8).tobytes()).hexdigest()[:16] for d in digits]


def task_labels(classes: np.ndarray) -> dict[str, np.ndarray]:
    """Labels of every task from the digit classes."""
    classes = np.asarray(classes, np.int64)
    return {"digit": classes, "parity": classes % 2}
