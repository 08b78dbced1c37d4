"""Tucker-2 decomposition of a KxK conv kernel on its channel modes.

``W[o, i, :, :] ~= sum_{a,b} U_out[o, a] G[a, b, :, :] U_in[i, b]`` becomes three convs:
1x1 (Cin -> R_in), KxK (R_in -> R_out, original stride/padding/dilation), 1x1 (R_out -> Cout, bias).
Initialised by HOSVD (leading singular vectors of the mode-0/mode-1 unfoldings) and refined by
HOOI (higher-order orthogonal iteration), De Lathauwer et al. 2000.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import RankError, UnsupportedLayerError
from ..layers import SubLayer
from ..values import finite_array, integer
from ._linalg import leading_left_vectors


def tucker2_factors(weight: np.ndarray, ranks: Tuple[int, int], n_iter: int = 4, tol: float = 1e-7):
    """Return (U_out (O x r_out), core (r_out, r_in, kh, kw), U_in (I x r_in)) in float64."""
    w = np.asarray(weight, dtype=np.float64)
    o, i, kh, kw = w.shape
    r_out, r_in = int(ranks[0]), int(ranks[1])
    u_out = leading_left_vectors(w.reshape(o, -1), r_out)
    u_in = leading_left_vectors(np.moveaxis(w, 1, 0).reshape(i, -1), r_in)
    if r_out < o or r_in < i:
        last = None
        for _ in range(n_iter):
            # Fix U_in, best U_out: leading vectors of the mode-0 unfolding of W x_1 U_in^T.
            y = np.tensordot(w, u_in, axes=([1], [0]))           # (o, kh, kw, r_in)
            u_out = leading_left_vectors(y.reshape(o, -1), r_out)
            z = np.tensordot(u_out, w, axes=([0], [0]))          # (r_out, i, kh, kw)
            z = np.moveaxis(z, 1, 0).reshape(i, -1)
            u_in = leading_left_vectors(z, r_in)
            norm = np.linalg.norm(u_in.T @ z)                    # ||core||, grows to convergence
            if last is not None and abs(norm - last) <= tol * norm:
                break
            last = norm
    core = np.tensordot(u_out, w, axes=([0], [0]))               # (r_out, i, kh, kw)
    core = np.tensordot(core, u_in, axes=([1], [0]))             # (r_out, kh, kw, r_in)
    core = np.moveaxis(core, 3, 1)                               # (r_out, r_in, kh, kw)
    return u_out, core, u_in


def tucker2(weight_oihw: np.ndarray, ranks: Sequence[int], bias: Optional[np.ndarray] = None,
            stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0, 0, 0),
            dilation: Sequence[int] = (1, 1), n_iter: int = 4) -> List[SubLayer]:
    """Decompose an OIHW kernel at ``ranks=(r_out, r_in)`` into [1x1, KxK, 1x1] sublayers."""
    weight = finite_array(weight_oihw, "tucker2 weight", ndim=(2, 3, 4, 5, 6))
    if weight.ndim != 4:
        raise UnsupportedLayerError(f"tucker2 takes an OIHW conv kernel, got shape {weight.shape}; use svd for a "
                                    f"dense weight")
    o, i = weight.shape[:2]
    if np.isscalar(ranks):
        ranks = (ranks, ranks)
    if not isinstance(ranks, (tuple, list, np.ndarray)) or len(ranks) != 2:
        raise RankError(f"tucker2 ranks must be one integer or (r_out, r_in), got {ranks!r}")
    r_out, r_in = (integer(r, "tucker2 rank", error=RankError) for r in ranks)
    if not (1 <= r_out <= o and 1 <= r_in <= i):
        raise RankError(f"tucker2 ranks must be in [1, {o}] x [1, {i}] for a {i}->{o} kernel, got {(r_out, r_in)}")
    u_out, core, u_in = tucker2_factors(weight, (r_out, r_in), n_iter=n_iter)
    dtype = weight.dtype if weight.dtype.kind == "f" else np.float32
    b = None if bias is None else np.asarray(bias, dtype=dtype).copy()
    return [
        SubLayer("conv2d", u_in.T[:, :, None, None].astype(dtype), None, (1, 1), (0, 0, 0, 0), (1, 1), 1, "first"),
        SubLayer("conv2d", core.astype(dtype), None, tuple(stride), tuple(padding), tuple(dilation), 1, "core"),
        SubLayer("conv2d", u_out[:, :, None, None].astype(dtype), b, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last"),
    ]
