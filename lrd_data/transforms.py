"""Batch augmentations in NumPy (framework-neutral, seeded by the loader)."""
from __future__ import annotations

import numpy as np


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4, flip: bool = True) -> np.ndarray:
    """CIFAR-style augmentation: zero-pad by ``pad``, random crop back to size, random horizontal flip."""
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]                         # (n, h)
    cols = dx[:, None] + np.arange(w)[None, :]                         # (n, w)
    out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mirror = rng.random(n) < 0.5
        out[mirror] = out[mirror, :, :, ::-1]
    return np.ascontiguousarray(out)


AUGMENTS = {"none": None, "crop_flip": random_crop_flip}
