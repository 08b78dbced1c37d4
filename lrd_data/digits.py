"""The embedded default data: scikit-learn's handwritten digits (1,797 8x8 images, 10 classes).

Upscaled to ``size`` x ``size`` (bilinear), replicated to 3 channels, normalised to zero mean and
unit variance, and split into train/test deterministically (stratified by class).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy.ndimage import zoom

from .arrays import ArrayData


def load_digits(size: int = 32, test_fraction: float = 0.25, seed: int = 0) -> Tuple[ArrayData, ArrayData]:
    """Return (train, test) :class:`ArrayData` of the digits data at ``size`` x ``size``, 3 channels."""
    from sklearn.datasets import load_digits as _load

    raw = _load()
    images = raw.images.astype(np.float32) / 16.0                      # (N, 8, 8) in [0, 1]
    if size != 8:
        images = zoom(images, (1, size / 8, size / 8), order=1)
    mean, std = images.mean(), images.std()
    images = ((images - mean) / std).astype(np.float32)
    x = np.repeat(images[:, None], 3, axis=1)                           # (N, 3, size, size)
    y = raw.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test_idx.extend(rng.permutation(idx)[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(y), bool)
    test_mask[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~test_mask))
    test_idx = np.flatnonzero(test_mask)
    return (ArrayData(np.ascontiguousarray(x[train_idx]), y[train_idx], 10),
            ArrayData(np.ascontiguousarray(x[test_idx]), y[test_idx], 10))
