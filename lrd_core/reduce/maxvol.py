"""Maximum-volume row selection: square (``maxvol``) and rectangular (``rect_maxvol``).

For a tall matrix ``A`` (n x r, full column rank) a set ``I`` of r rows is *dominant* when every
entry of the coefficient matrix ``B = A @ inv(A[I])`` has modulus at most ``tol``. Each such row
then is a combination of the selected rows with bounded coefficients, and ``|det A[I]|`` is
locally maximal: swapping in row ``i`` for position ``j`` multiplies the determinant by ``B[i, j]``.

The rectangular variant keeps adding rows: with ``k >= r`` rows the coefficients are
``C = A @ pinv(A[I])`` (n x k) and a row is added while some row of ``C`` has Euclidean norm above
``tol``. The squared row norms are the leverages ``l_j = a_j G^{-1} a_j^T`` with
``G = A[I]^T A[I]``; adding row ``i`` multiplies ``det G`` by ``1 + l_i``, so the greedy choice of the
largest leverage grows the volume fastest. Both loops use rank-1 updates only (no inversion per
iteration).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import scipy.linalg

from ..errors import ReductionError

__all__ = ["maxvol", "rect_maxvol"]


def _check(A: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise ReductionError(f"{name}: expected a 2-D (n x r) matrix, got shape {A.shape}")
    n, r = A.shape
    if r < 1 or n < r:
        raise ReductionError(f"{name}: need a tall matrix with n >= r >= 1 rows, got shape {A.shape}; "
                             "pass the basis with rows as candidates (transpose a wide one)")
    if not np.all(np.isfinite(A)):
        raise ReductionError(f"{name}: the matrix contains NaN or Inf; clean the activations first")
    return A


def _initial_rows(A: np.ndarray) -> np.ndarray:
    """r well-conditioned starting rows: QR with column pivoting of ``A^T`` (rank revealing)."""
    r = A.shape[1]
    _, piv = scipy.linalg.qr(A.T, mode="r", pivoting=True)
    return np.asarray(piv[:r], dtype=np.int64)


def maxvol(A: np.ndarray, tol: float = 1.05, max_iters: int = 200,
           start: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of a dominant (locally maximum-volume) square submatrix of a tall ``A``.

    Parameters
    ----------
    A : ndarray, shape (n, r)
        Tall matrix of full column rank.
    tol : float
        Stop when no entry of the coefficient matrix exceeds ``tol`` in modulus (>= 1).
    max_iters : int
        Upper bound on row swaps; each swap grows ``|det A[I]|`` by more than ``tol``.
    start : array of int, optional
        r distinct starting rows; default: the pivots of a column-pivoted QR of ``A^T``.

    Returns
    -------
    rows : ndarray of int, shape (r,)
        Selected row indices (position ``j`` holds the row matched to column ``j`` of ``coef``).
    coef : ndarray, shape (n, r)
        ``A @ inv(A[rows])``; ``coef[rows]`` is the identity.
    """
    A = _check(A, "maxvol")
    if tol < 1:
        raise ReductionError(f"maxvol: tol must be >= 1, got {tol}")
    n, r = A.shape
    rows = _initial_rows(A) if start is None else np.array(start, dtype=np.int64)
    if rows.shape != (r,) or len(set(rows.tolist())) != r or rows.min() < 0 or rows.max() >= n:
        raise ReductionError(f"maxvol: start must hold {r} distinct row indices in [0, {n}), got {start}")
    sub = A[rows]
    if np.linalg.matrix_rank(sub) < r:
        raise ReductionError(f"maxvol: the starting {r} x {r} submatrix of the {n} x {r} matrix is singular "
                             f"(rank < {r}); use a smaller rank or other start rows")
    coef = scipy.linalg.solve(sub.T, A.T).T          # A @ inv(A[rows])
    for _ in range(int(max_iters)):
        i, j = np.unravel_index(np.argmax(np.abs(coef)), coef.shape)
        if abs(coef[i, j]) <= tol:
            break
        # Row i replaces row rows[j]: B <- B - B[:, j] (B[i] - e_j) / B[i, j].
        row = coef[i].copy()
        row[j] -= 1.0
        coef -= np.outer(coef[:, j] / coef[i, j], row)
        rows[j] = i
    return rows, coef


def rect_maxvol(A: np.ndarray, tol: float = 1.05, max_rows: Optional[int] = None, min_add: int = 0,
                start_tol: float = 1.05) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of a rectangular dominant submatrix: at least r rows, added greedily by leverage.

    Starts from :func:`maxvol` (at ``start_tol``) and adds the row with the largest row norm of the
    coefficient matrix while that norm exceeds ``tol``, until ``max_rows`` rows are kept. At least
    ``min_add`` rows are added in any case (when ``max_rows`` allows).

    Parameters
    ----------
    A : ndarray, shape (n, r)
    tol : float
        Target bound on the Euclidean norm of every row of the coefficient matrix (>= 1).
    max_rows : int, optional
        At most this many rows (``r <= max_rows <= n``); default ``n``.
    min_add : int
        Rows added beyond the r of the square start even when all norms are already below ``tol``.
    start_tol : float
        Tolerance of the square start.

    Returns
    -------
    rows : ndarray of int, shape (k,)
        Selected rows in the order chosen (the first r are the square start).
    coef : ndarray, shape (n, k)
        ``A @ pinv(A[rows])`` (so ``coef @ A[rows] == A``); its rows have norm <= ``tol`` unless
        ``max_rows`` stopped the loop.
    """
    A = _check(A, "rect_maxvol")
    n, r = A.shape
    if tol < 1:
        raise ReductionError(f"rect_maxvol: tol must be >= 1, got {tol}")
    max_rows = n if max_rows is None else int(max_rows)
    if not r <= max_rows <= n:
        raise ReductionError(f"rect_maxvol: max_rows must be in [{r}, {n}] for a {n} x {r} matrix, "
                             f"got {max_rows}")
    if min_add < 0:
        raise ReductionError(f"rect_maxvol: min_add must be >= 0, got {min_add}")
    square, _ = maxvol(A, tol=start_tol)
    rows = list(int(i) for i in square)
    # Q = A G^{-1} with G = A[rows]^T A[rows]; leverages l_j = <Q_j, A_j> (squared coefficient row norms).
    sub = A[square]
    gram_inv_a = scipy.linalg.solve(sub.T @ sub, A.T, assume_a="pos").T
    lev = np.einsum("ij,ij->i", gram_inv_a, A)
    chosen = np.zeros(n, dtype=bool)
    chosen[square] = True
    while len(rows) < max_rows:
        masked = np.where(chosen, -np.inf, lev)
        i = int(np.argmax(masked))
        if masked[i] <= tol * tol and len(rows) - r >= min_add:
            break
        # Sherman-Morrison: G' = G + a_i^T a_i.
        q_ai = gram_inv_a @ A[i]                       # (n,) = A G^{-1} a_i^T
        denom = 1.0 + lev[i]
        gram_inv_a -= np.outer(q_ai / denom, gram_inv_a[i])
        lev -= q_ai * q_ai / denom
        rows.append(i)
        chosen[i] = True
    rows = np.asarray(rows, dtype=np.int64)
    coef = gram_inv_a @ A[rows].T                      # A (A_I^T A_I)^{-1} A_I^T = A pinv(A_I)
    return rows, coef
