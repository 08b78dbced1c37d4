"""Polynomial chaos expansion (PCE) in probabilists' Hermite polynomials.

The basis of total degree <= d in r standardised variables has ``C(r + d, d)`` terms
``Phi_alpha(z) = prod_j He_{alpha_j}(z_j) / sqrt(alpha_j!)``, orthonormal under the standard normal
measure. Multi-indices are ordered by total degree, then lexicographically over the variables
(``itertools.combinations_with_replacement``), so the constant term comes first.

For native layers the same polynomial is written in monomials ``z^beta`` over the same index
set (it is closed downwards): ``Phi = monomials(z) @ T`` with ``T`` from
``numpy.polynomial.hermite_e.herme2poly``. A monomial of degree t <= d is the product of t
entries of ``z``; with ``z1 = [1, z_1, ..., z_r]`` every non-constant monomial is
``prod_q z1[index[:, q]]`` for an integer table ``index`` (T - 1 x d) padded with 0 (the 1).
"""
from __future__ import annotations

import itertools
import math
from typing import Tuple

import numpy as np
import scipy.linalg
from numpy.polynomial import hermite_e

from ..errors import ReductionError

__all__ = ["multi_indices", "n_terms", "hermite_features", "monomial_index", "monomial_features",
           "hermite_to_monomial", "fit_coefficients"]


def n_terms(r: int, degree: int) -> int:
    """Number of PCE terms of total degree <= ``degree`` in ``r`` variables: C(r + d, d)."""
    return math.comb(int(r) + int(degree), int(degree))


def _combos(r: int, degree: int):
    for t in range(degree + 1):
        yield from itertools.combinations_with_replacement(range(r), t)


def multi_indices(r: int, degree: int) -> np.ndarray:
    """(T, r) exponents of all terms of total degree <= ``degree``, graded order."""
    if r < 1 or degree < 1:
        raise ReductionError(f"PCE needs r >= 1 variables and degree >= 1, got r={r}, degree={degree}")
    rows = []
    for combo in _combos(r, degree):
        alpha = np.zeros(r, dtype=np.int64)
        np.add.at(alpha, list(combo), 1)
        rows.append(alpha)
    return np.array(rows, dtype=np.int64)


def monomial_index(r: int, degree: int) -> np.ndarray:
    """(T - 1, degree) gather table into ``[1, z_1..z_r]`` for every non-constant monomial.

    Row t lists the variables (1-based) multiplied in monomial t + 1 of :func:`multi_indices`,
    padded with 0 (the constant 1) up to ``degree`` factors.
    """
    rows = [list(np.asarray(c) + 1) + [0] * (degree - len(c)) for c in _combos(r, degree) if c]
    return np.array(rows, dtype=np.int64).reshape(-1, degree)


def monomial_features(z: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Non-constant monomials of ``z`` (N, r) from a :func:`monomial_index` table: (N, T - 1)."""
    z1 = np.concatenate([np.ones((z.shape[0], 1)), np.asarray(z, dtype=np.float64)], axis=1)
    return np.prod(z1[:, index], axis=2)


def hermite_features(z: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Orthonormal Hermite features (N, T) of standardised ``z`` (N, r) for exponents ``alphas``."""
    z = np.asarray(z, dtype=np.float64)
    degree = int(alphas.max())
    norms = np.sqrt([math.factorial(k) for k in range(degree + 1)])
    van = hermite_e.hermevander(z, degree) / norms      # (N, r, d + 1)
    cols = np.arange(z.shape[1])
    return np.stack([np.prod(van[:, cols, a], axis=1) for a in alphas], axis=1)


def hermite_to_monomial(alphas: np.ndarray) -> np.ndarray:
    """Matrix T (T x T) with ``hermite_features(z) == [1, monomial_features(z)] @ T``."""
    degree = int(alphas.max())
    coeffs = [hermite_e.herme2poly(np.eye(degree + 1)[k]) / math.sqrt(math.factorial(k))
              for k in range(degree + 1)]                  # He_k / sqrt(k!) in powers of z
    where = {tuple(a): i for i, a in enumerate(alphas)}
    out = np.zeros((len(alphas), len(alphas)))
    for col, alpha in enumerate(alphas):
        for beta in itertools.product(*(range(a + 1) for a in alpha)):
            c = np.prod([coeffs[a][b] if b < len(coeffs[a]) else 0.0 for a, b in zip(alpha, beta)])
            if c != 0.0:
                out[where[beta], col] += c
    return out


def fit_coefficients(features: np.ndarray, targets: np.ndarray, ridge: float = 0.0) -> Tuple[np.ndarray, float]:
    """Least-squares coefficients (T, K) of ``features @ coef ~= targets``; ridge adds ``ridge * ||coef||^2``.

    Returns the coefficients and the relative residual on the fitted data.
    """
    phi = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if ridge < 0:
        raise ReductionError(f"PCE ridge must be >= 0, got {ridge}")
    if ridge > 0:
        t = phi.shape[1]
        a = np.vstack([phi, math.sqrt(ridge) * np.eye(t)])
        b = np.vstack([y, np.zeros((t, y.shape[1]))])
    else:
        a, b = phi, y
    coef = scipy.linalg.lstsq(a, b, lapack_driver="gelsd")[0]
    denom = np.linalg.norm(y)
    resid = float(np.linalg.norm(phi @ coef - y) / denom) if denom > 0 else 0.0
    return coef, resid
