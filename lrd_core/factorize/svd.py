"""Truncated SVD of a dense or 1x1 conv weight into two layers (in -> r -> out)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..errors import RankError, UnsupportedLayerError
from ..layers import SubLayer
from ..values import finite_array, integer
from ._linalg import leading_left_vectors


def svd_factors(matrix: np.ndarray, rank: int):
    """(first, last) with ``last @ first`` the best rank-``rank`` approximation of ``matrix``.

    The leading singular subspace comes from the eigen-decomposition of the smaller Gram matrix
    (only the ``rank`` leading eigenpairs), much faster than a full SVD of a large weight. The
    singular values are split evenly (sqrt to each side) so both factors have similar scale, which
    keeps fine-tuning balanced.
    """
    m = np.asarray(matrix, dtype=np.float64)
    n_out, n_in = m.shape
    if n_out <= n_in:
        u = leading_left_vectors(m, rank)              # (out, r) left singular vectors
        svt = u.T @ m                                  # (r, in) = S V^T
        s = np.linalg.norm(svt, axis=1)
        root = np.sqrt(s)
        safe = np.where(root > 0, root, 1.0)
        return svt / safe[:, None], u * root[None, :]
    v = leading_left_vectors(m.T, rank)                # (in, r) right singular vectors
    us = m @ v                                         # (out, r) = U S
    s = np.linalg.norm(us, axis=0)
    root = np.sqrt(s)
    safe = np.where(root > 0, root, 1.0)
    return (v * root[None, :]).T, us / safe[None, :]


def svd(weight: np.ndarray, rank: int, bias: Optional[np.ndarray] = None,
        stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1)) -> List[SubLayer]:
    """Decompose a dense ``(out, in)`` or 1x1 conv ``(out, in, 1, 1)`` weight at ``rank``.

    Returns two :class:`SubLayer` of the input's kind: ``in -> rank`` (carries stride and padding,
    the layer that first touches the input) and ``rank -> out`` (carries the bias).
    """
    weight = finite_array(weight, "svd weight", ndim=(2, 4))
    conv = weight.ndim == 4
    if conv and weight.shape[2:] != (1, 1):
        raise UnsupportedLayerError(f"svd takes a dense or 1x1 conv weight, got kernel {weight.shape[2:]}; "
                                    f"use tucker2 for a KxK conv")
    n_out, n_in = weight.shape[:2]
    rank = integer(rank, "svd rank", error=RankError)
    if not 1 <= rank <= min(n_out, n_in):
        raise RankError(f"svd rank must be in [1, {min(n_out, n_in)}] for a {n_in}->{n_out} weight, got {rank}")
    first, last = svd_factors(weight.reshape(n_out, n_in), int(rank))
    dtype = weight.dtype if weight.dtype.kind == "f" else np.float32
    kind = "conv2d" if conv else "dense"
    if conv:
        first, last = first[:, :, None, None], last[:, :, None, None]
    b = None if bias is None else np.asarray(bias, dtype=dtype).copy()
    return [
        SubLayer(kind, first.astype(dtype), None, tuple(stride), tuple(padding), tuple(dilation), 1, "first"),
        SubLayer(kind, last.astype(dtype), b, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last"),
    ]
