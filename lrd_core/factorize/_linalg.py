"""Small dense linear-algebra helpers shared by the factorizations."""
from __future__ import annotations

import numpy as np


def column_signs(u: np.ndarray) -> np.ndarray:
    """Sign of each column's largest-magnitude entry (+1 for a zero column)."""
    idx = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return signs


def fix_signs(u: np.ndarray) -> np.ndarray:
    """Make each column's largest-magnitude entry positive (deterministic factors)."""
    return u * column_signs(u)


def leading_left_vectors(mat: np.ndarray, r: int) -> np.ndarray:
    """Orthonormal basis (n x r) of the r leading left singular vectors of ``mat`` (n x m).

    Uses the eigen-decomposition of the n x n Gram matrix, which is much cheaper than an SVD
    when m >> n (channel unfoldings of conv kernels). NumPy's full symmetric solver measured
    ~3x faster here than SciPy's subset solver for n = 1024, so all pairs are computed.
    """
    n = mat.shape[0]
    if r >= n:
        # Full rank: any orthonormal basis reproduces the tensor exactly; keep the ordered one.
        r = n
    gram = mat @ mat.T
    _, vecs = np.linalg.eigh(gram)                     # ascending eigenvalues
    return fix_signs(vecs[:, ::-1][:, :r])
