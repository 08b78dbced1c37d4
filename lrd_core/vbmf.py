"""Rank estimation by Empirical Variational Bayesian Matrix Factorization (EVBMF).

Global analytic solution of Nakajima, Sugiyama, Babacan and Tomioka (JMLR 2013): for an L x M
observation (L <= M, alpha = L/M) with singular values s_h, the noise variance sigma^2 minimises
the EVB free energy (their Theorem 2) and the components kept are those whose singular value is
above ``gamma = sqrt(M sigma^2 (1 + tau) (1 + alpha / tau))`` with ``tau ~= 2.5129 sqrt(alpha)``.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import svdvals
from scipy.optimize import minimize_scalar

from .values import finite_array

TAU_COEF = 2.5129  # tau_bar = TAU_COEF * sqrt(alpha), the EVB threshold constant


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    """Positive root of tau^2 - (x - (1 + alpha)) tau + alpha = 0 (per-component shrinkage)."""
    b = x - (1.0 + alpha)
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4.0 * alpha, 0.0)))


def _free_energy(sigma2: float, L: int, M: int, s: np.ndarray, residual: float, x_bar: float) -> float:
    """EVB free energy (up to constants) as a function of the noise variance."""
    alpha = L / M
    x = s ** 2 / (M * sigma2)
    big, small = x[x > x_bar], x[x <= x_bar]
    tau = _tau(big, alpha)
    energy = np.sum(small - np.log(small))
    energy += np.sum(big - tau) + np.sum(np.log((tau + 1.0) / big))
    energy += alpha * np.sum(np.log(tau / alpha + 1.0))
    energy += residual / (M * sigma2) + (L - len(s)) * np.log(sigma2)
    return float(energy)


def evbmf_noise_and_threshold(matrix: np.ndarray):
    """Return (sigma2, threshold, singular values) of the EVBMF solution for a 2-D array.

    A matrix with a single row or column (or none, or all zeros) has no estimable signal component
    (at most ``ceil(L / (1 + alpha)) - 1 = 0`` of them): the threshold is then 0 with no component kept.

    Raises
    ------
    ConfigError
        Not a 2-D real array.
    BadWeightsError
        NaN or Inf in the matrix.
    """
    Y = finite_array(matrix, "the EVBMF matrix", ndim=(2,)).astype(np.float64)
    if Y.shape[0] > Y.shape[1]:
        Y = Y.T
    L, M = Y.shape
    if L <= 1:
        return 0.0, 0.0, (np.zeros(L) if L == 0 else svdvals(Y))
    s = svdvals(Y, check_finite=False)
    if s[0] == 0:
        return 0.0, 0.0, s
    alpha = L / M
    tau_bar = TAU_COEF * np.sqrt(alpha)
    x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar)
    # Bounds of sigma^2 (Nakajima et al. 2013, Sec. 4): at most all energy is noise; at least the
    # noise explains the components past the largest possible signal rank.
    h_max = int(min(np.ceil(L / (1.0 + alpha)) - 1, L)) - 1
    h_max = max(0, min(h_max, L - 2))
    upper = np.sum(s ** 2) / (L * M)
    lower = max(s[h_max + 1] ** 2 / (M * x_bar), np.mean(s[h_max + 1:] ** 2) / M)
    if not lower < upper:
        lower = upper * 1e-6
    res = minimize_scalar(_free_energy, args=(L, M, s, 0.0, x_bar), bounds=(lower, upper),
                          method="bounded", options={"xatol": upper * 1e-10})
    sigma2 = float(res.x)
    threshold = float(np.sqrt(M * sigma2 * (1.0 + tau_bar) * (1.0 + alpha / tau_bar)))
    return sigma2, threshold, s


def evbmf_rank(matrix: np.ndarray) -> int:
    """EVBMF rank of a 2-D array: the number of singular values above the EVB threshold.

    Returns 0 for weights with no low-rank structure (e.g. random initialisation), and for an
    empty, all-zero, single-row or single-column matrix (no component can be told from noise).
    """
    _, threshold, s = evbmf_noise_and_threshold(matrix)
    if threshold == 0.0:
        return 0
    return int(np.sum(s > threshold))
