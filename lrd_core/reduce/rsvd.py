"""Randomized truncated SVD (Halko, Martinsson & Tropp 2011): range finder + small exact SVD."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import scipy.linalg

from ..factorize._linalg import column_signs

__all__ = ["randomized_svd", "exact_svd"]


def exact_svd(X: np.ndarray, rank: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(U, s, Vt)`` of the ``rank`` leading singular triplets by a dense SVD, signs fixed."""
    u, s, vt = scipy.linalg.svd(np.asarray(X, dtype=np.float64), full_matrices=False, lapack_driver="gesdd")
    return _fix(u[:, :rank], s[:rank], vt[:rank])


def _fix(u, s, vt):
    """Deterministic signs: each right singular vector's largest entry is positive."""
    signs = column_signs(vt.T)
    return u * signs[None, :], s, vt * signs[:, None]


def randomized_svd(X: np.ndarray, rank: int, oversample: int = 10, power_iters: int = 2,
                   seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rank`` leading singular triplets of ``X`` (m x n) from a randomized range finder.

    A Gaussian test matrix of ``rank + oversample`` columns (seeded) samples the range of ``X``;
    ``power_iters`` subspace iterations (re-orthonormalised by QR) sharpen it for slowly decaying
    spectra; the SVD of the small projected matrix gives the triplets. When the sketch would be
    as wide as ``min(m, n)`` the exact SVD is used instead (same cost, no randomness).

    Returns
    -------
    U : ndarray (m, rank), s : ndarray (rank,), Vt : ndarray (rank, n)
        Signs fixed so that each row of ``Vt`` has a positive largest-magnitude entry.
    """
    X = np.asarray(X, dtype=np.float64)
    m, n = X.shape
    rank = int(rank)
    width = rank + int(oversample)
    if width >= min(m, n):
        return exact_svd(X, rank)
    rng = np.random.default_rng(seed)
    q, _ = scipy.linalg.qr(X @ rng.standard_normal((n, width)), mode="economic")
    for _ in range(int(power_iters)):
        z, _ = scipy.linalg.qr(X.T @ q, mode="economic")
        q, _ = scipy.linalg.qr(X @ z, mode="economic")
    u, s, vt = scipy.linalg.svd(q.T @ X, full_matrices=False)
    return _fix((q @ u)[:, :rank], s[:rank], vt[:rank])
