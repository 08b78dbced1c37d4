"""ASNet: active subspace of a cut activation + polynomial chaos head (Cui et al., SIMODS 2020).

The network is cut before layer ``cut``: the pre-model maps an input to the cut activation ``x``
(flattened, D features). Per-sample gradients ``g = d f / d x`` (of every output, or of the loss
when labels are given) are gathered as rows; the active subspace is spanned by the ``r`` leading
right singular vectors of that gradient matrix, i.e. the leading eigenvectors of ``E[g g^T]``.
Rows are streamed into a :class:`FrequentDirections` sketch (memory ``O(ell * D)``), whose
leading right singular vectors (randomized SVD) give ``V`` (D x r). The reduced input
``z = V^T x`` is standardised with the calibration mean and standard deviation and a Hermite PCE
of total degree ``d`` is fitted by least squares to the logits.

Native form of the head (:meth:`ASNetHead.arrays`): ``Flatten`` -> ``Dense(D -> r)`` with
``weight = (V / std).T`` and ``bias = -mean / std`` (standardisation folded in) -> a fixed
polynomial-feature layer ``m = prod(concat([1, z])[:, index], axis=-1)`` (T - 1 monomials) ->
``Dense(T - 1 -> K)`` whose bias holds the constant term. No learned parameters other than the
two Dense layers, so the head can be fine-tuned (e.g. by distillation from the original logits).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg

from ..errors import RankError, ReductionError
from .graph import Residual, walk
from .pce import (fit_coefficients, hermite_features, hermite_to_monomial, monomial_features, monomial_index,
                  multi_indices, n_terms)
from .rsvd import randomized_svd

__all__ = ["FrequentDirections", "active_subspace", "ASNetHead", "fit_head", "asnet_from_gradients", "split_at"]


def _finite(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ReductionError(f"ASNet: {what} contain NaN or Inf; check the calibration data and the model")
    return a


class FrequentDirections:
    """Deterministic sketch ``B`` (ell x dim) of a stream of rows ``A`` (Liberty 2013; Ghashami et al. 2016).

    Rows fill a buffer of ``2 * ell`` rows; when it is full its SVD is shrunk by the ``ell``-th
    largest squared singular value ``delta`` (``s_i^2 <- max(s_i^2 - delta, 0)``), which empties at
    least ``ell + 1`` rows. Guarantee for every sketch: ``0 <= x^T (A^T A - B^T B) x`` and
    ``||A^T A - B^T B||_2 <= ||A||_F^2 / ell``; exact when ``rank(A) < ell``.
    """

    def __init__(self, dim: int, ell: int):
        if not 1 <= int(ell) <= int(dim):
            raise ReductionError(f"FrequentDirections: sketch size ell must be in [1, {dim}], got {ell}")
        self.dim, self.ell = int(dim), int(ell)
        self._buf = np.zeros((2 * self.ell, self.dim))
        self._used = 0
        self.rows_seen = 0

    def _shrink(self, buf: np.ndarray) -> Tuple[np.ndarray, int]:
        # The SVD of the short, wide buffer from the eigenpairs of its (2 ell x 2 ell) Gram matrix:
        # s_i^2 = eigenvalues, s_i v_i = u_i^T buf, so the shrunk row is (s_new_i / s_i) u_i^T buf.
        # For ell = 32 and 4,096 columns this took 3 ms instead of 200 ms for a dense SVD.
        w, u = scipy.linalg.eigh(buf @ buf.T)
        order = np.argsort(w)[::-1]
        s2, u = np.maximum(w[order], 0.0), u[:, order]
        delta = s2[self.ell - 1] if len(s2) >= self.ell else 0.0
        s2_new = np.maximum(s2 - delta, 0.0)
        keep = int(np.count_nonzero(s2_new > 1e-12 * max(float(s2[0]), 1e-300)))
        out = np.zeros_like(self._buf)
        out[:keep] = np.sqrt(s2_new[:keep] / s2[:keep])[:, None] * (u[:, :keep].T @ buf)
        return out, keep

    def update(self, rows: np.ndarray) -> "FrequentDirections":
        """Add rows (k x dim, or one row of length dim)."""
        rows = _finite(rows, "gradient rows")
        rows = rows.reshape(-1, rows.shape[-1]) if rows.ndim != 1 else rows[None, :]
        if rows.shape[1] != self.dim:
            raise ReductionError(f"FrequentDirections: rows have {rows.shape[1]} entries, the sketch {self.dim}")
        start = 0
        while start < len(rows):
            take = min(len(rows) - start, len(self._buf) - self._used)
            self._buf[self._used:self._used + take] = rows[start:start + take]
            self._used += take
            start += take
            if self._used == len(self._buf):
                self._buf, self._used = self._shrink(self._buf)
        self.rows_seen += len(rows)
        return self

    def sketch(self) -> np.ndarray:
        """The sketch ``B`` (ell x dim)."""
        buf, used = (self._buf, self._used) if self._used <= self.ell else self._shrink(self._buf)
        return buf[:self.ell].copy()


def active_subspace(rows: np.ndarray, dim: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(V, eigenvalues)``: the ``dim`` leading right singular vectors (D x dim) of gradient rows or
    of their sketch, and the matching eigenvalues of the (unnormalised) gradient covariance."""
    rows = _finite(rows, "gradient rows")
    if rows.ndim != 2:
        raise ReductionError(f"ASNet: gradient rows must be 2-D (rows x features), got shape {rows.shape}")
    if not 1 <= dim <= min(rows.shape):
        raise RankError(f"ASNet: dim={dim} must be in [1, {min(rows.shape)}] for a {rows.shape[0]} x "
                        f"{rows.shape[1]} gradient sketch; lower dim or enlarge the sketch (ell)")
    _, s, vt = randomized_svd(rows, int(dim), seed=seed)
    return vt.T, s ** 2


@dataclass
class ASNetHead:
    """Projection + standardisation + Hermite PCE head fitted on a cut activation.

    Attributes
    ----------
    vectors : (D, r) active subspace; mean, std : (r,) of ``z = x @ vectors`` on calibration data;
    alphas : (T, r) multi-indices; coef : (T, K) PCE coefficients; residual : relative fit residual.
    """

    vectors: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    alphas: np.ndarray
    coef: np.ndarray
    residual: float

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def degree(self) -> int:
        return int(self.alphas.sum(axis=1).max())

    def reduce(self, x: np.ndarray) -> np.ndarray:
        """Standardised reduced input ``(x V - mean) / std`` of cut activations (N, ...)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return (x @ self.vectors - self.mean) / self.std

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K) by direct Hermite evaluation."""
        return hermite_features(self.reduce(x), self.alphas) @ self.coef

    def arrays(self) -> Dict[str, np.ndarray]:
        """The native head: Dense ``projection`` -> fixed ``poly_index`` features -> Dense ``output``.

        Keys: ``projection_weight`` (r, D), ``projection_bias`` (r,), ``poly_index`` (T-1, d) int64
        into ``concat([1], z)``, ``output_weight`` (K, T-1), ``output_bias`` (K,), all float32
        except the index.
        """
        mono = hermite_to_monomial(self.alphas) @ self.coef          # (T, K), row 0 = constant
        f32 = np.float32
        return {"projection_weight": (self.vectors / self.std).T.astype(f32),
                "projection_bias": (-self.mean / self.std).astype(f32),
                "poly_index": monomial_index(self.dim, self.degree),
                "output_weight": mono[1:].T.astype(f32), "output_bias": mono[0].astype(f32)}

    @staticmethod
    def forward_arrays(arrays: Dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """NumPy reference of the native head built from :meth:`arrays` (what adapters must match)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        z = x @ arrays["projection_weight"].T.astype(np.float64) + arrays["projection_bias"]
        m = monomial_features(z, arrays["poly_index"])
        return m @ arrays["output_weight"].T.astype(np.float64) + arrays["output_bias"]

    def to_dict(self) -> dict:
        """Plain-data record for a plan."""
        return {"method": "asnet", "dim": self.dim, "degree": self.degree, "terms": int(len(self.alphas)),
                "features": int(self.vectors.shape[0]), "outputs": int(self.coef.shape[1]),
                "residual": self.residual}


def _check_data(activations, logits) -> Tuple[np.ndarray, np.ndarray]:
    x = _finite(activations, "cut activations")
    y = _finite(logits, "logits")
    if x.ndim < 2 or y.ndim != 2 or len(x) != len(y):
        raise ReductionError(f"ASNet: cut activations {x.shape} and logits {y.shape} must be (N, ...) and "
                             "(N, K) for the same N calibration samples")
    return x.reshape(len(x), -1), y


def fit_head(activations: np.ndarray, logits: np.ndarray, vectors: np.ndarray, degree: int = 2,
             ridge: float = 0.0) -> ASNetHead:
    """Fit the standardisation and the Hermite PCE on (cut activation, logits) pairs."""
    x, y = _check_data(activations, logits)
    vectors = _finite(vectors, "subspace vectors")
    if vectors.ndim != 2 or vectors.shape[0] != x.shape[1]:
        raise ReductionError(f"ASNet: subspace of shape {vectors.shape} does not match {x.shape[1]} features")
    n, r = len(x), vectors.shape[1]
    if int(degree) != degree or degree < 1:
        raise ReductionError(f"ASNet: degree must be an integer >= 1, got {degree!r}")
    if r > n or r > x.shape[1]:
        raise RankError(f"ASNet: dim={r} is larger than the {n} calibration samples or the {x.shape[1]} "
                        "features at the cut; lower dim or add data")
    terms = n_terms(r, degree)
    if terms > n and ridge == 0:
        raise RankError(f"ASNet: a degree-{degree} PCE in {r} variables has {terms} terms but only {n} "
                        "calibration samples; lower dim/degree, add samples, or set ridge > 0")
    z = x @ vectors
    mean, std = z.mean(axis=0), z.std(axis=0)
    std = np.where(std > 1e-12 * max(float(std.max()), 1e-300), std, 1.0)
    alphas = multi_indices(r, int(degree))
    coef, resid = fit_coefficients(hermite_features((z - mean) / std, alphas), y, ridge)
    return ASNetHead(vectors, mean, std, alphas, coef, resid)


def asnet_from_gradients(activations: np.ndarray, logits: np.ndarray, gradients: np.ndarray, dim: int,
                         degree: int = 2, ell: Optional[int] = None, ridge: float = 0.0,
                         seed: int = 0) -> ASNetHead:
    """Sketch the gradient rows (rows x D), take the ``dim``-dimensional active subspace, fit the head.

    ``ell`` defaults to ``min(D, max(2 * dim, 32))``.
    """
    x, _ = _check_data(activations, logits)
    g = _finite(gradients, "gradients")
    g = g.reshape(-1, x.shape[1]) if g.size % x.shape[1] == 0 else g
    if g.ndim != 2 or g.shape[1] != x.shape[1]:
        raise ReductionError(f"ASNet: gradients of shape {np.shape(gradients)} do not match the "
                             f"{x.shape[1]} features of the cut activation")
    d = x.shape[1]
    if not 1 <= dim <= min(len(x), d):
        raise RankError(f"ASNet: dim={dim} must be in [1, {min(len(x), d)}] ({len(x)} samples, {d} features "
                        "at the cut); lower dim or add calibration samples")
    ell = min(d, max(2 * dim, 32)) if ell is None else int(ell)
    fd = FrequentDirections(d, ell).update(g)
    vectors, _ = active_subspace(fd.sketch(), dim, seed=seed)
    return fit_head(x, logits, vectors, degree=degree, ridge=ridge)


def split_at(net: Sequence, cut: str) -> Tuple[list, list]:
    """``(pre, post)``: the ops before the top-level op named ``cut`` and the rest.

    ASNet cuts between blocks: a name inside a residual block raises, naming the block.
    """
    for i, op in enumerate(net):
        if op.name == cut:
            return list(net[:i]), list(net[i:])
    for op in net:
        if isinstance(op, Residual) and any(o.name == cut for o in walk(list(op.main) + list(op.shortcut))):
            raise ReductionError(f"ASNet: cut={cut!r} is inside residual block {op.name!r}, where the network "
                                 f"cannot be cut; use cut={op.name!r} (before the block) or a later top-level "
                                 "layer")
    names = [op.name for op in net]
    raise ReductionError(f"ASNet: no layer named {cut!r} to cut at; top-level layers: {names}")
