r"""CPD-EPC: the CP decomposition of minimal sensitivity within an error bound (Phan et al., ECCV 2020).

For an N-way tensor :math:`T` (sizes :math:`I_1..I_N`) and factors :math:`U^{(n)}` (:math:`I_n \times R`,
weights folded in), the *sensitivity* is

.. math::
    ss = \sum_n I_n \sum_r \prod_{m \ne n} \|u^{(m)}_r\|^2,

which for three factors :math:`[\![A, B, C]\!]` reads
:math:`\sum_r I_3 |a_r|^2 |b_r|^2 + I_2 |a_r|^2 |c_r|^2 + I_1 |b_r|^2 |c_r|^2` (the expected squared change of
the tensor under unit Gaussian perturbations of the factors). CPD-EPC solves

.. math::
    \min ss(U^{(1)}, ..., U^{(N)}) \quad \text{s.t.} \quad \|T - [\![U^{(1)}, ..., U^{(N)}]\!]\|_F \le \delta

by alternating over the factors, each sweep starting with the exact rescaling of every rank-one term
to its least sensitive form (:func:`gauge`, which leaves the tensor unchanged). With the others fixed,
factor :math:`k` (written :math:`X`) enters as

* the objective :math:`\mathrm{tr}(X D X^T)`, :math:`D = \mathrm{diag}(d_r)`,
  :math:`d_r = \sum_{n \ne k} I_n \prod_{m \notin \{n, k\}} \|u^{(m)}_r\|^2`;
* the constraint :math:`\|T_{(k)} - X K^T\|^2 \le \delta^2`, :math:`K` the Khatri-Rao product of the other
  factors (tensorly's unfolding convention), :math:`Z = K^T K` (Hadamard product of their Gram matrices),
  :math:`M = T_{(k)} K`.

The Lagrange conditions give :math:`X(\lambda) = M (Z + \lambda D)^{-1}`, :math:`\lambda \ge 0`. With the
eigen-decomposition :math:`D^{-1/2} Z D^{-1/2} = V \mathrm{diag}(s) V^T` and :math:`P = M D^{-1/2} V`,

.. math::
    X(\lambda) = P\, \mathrm{diag}(1 / (s + \lambda))\, V^T D^{-1/2}, \qquad
    \|T_{(k)} - X(\lambda) K^T\|^2 = e_{LS} + \sum_j q_j \Big(\frac{\lambda}{s_j + \lambda}\Big)^2,

with :math:`q_j = \|p_j\|^2 / s_j` and :math:`e_{LS}` the error of the least-squares solution
:math:`X(0)`. The error rises monotonically from :math:`e_{LS}` to :math:`\|T\|^2`, so the multiplier is
the single root of :math:`\sum_j q_j (\lambda / (s_j + \lambda))^2 = \delta^2 - e_{LS}`, found by
``scipy.optimize.brentq`` on :math:`\log \lambda`. The error of every update is then recomputed from the
residual itself; an update that would break the bound (rounding) backs off towards :math:`\lambda = 0`, and
an update that does not lower the sensitivity is not taken, so the error never exceeds :math:`\delta` and
the sensitivity never rises. A start outside the bound takes least-squares steps until it is inside.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np
import tensorly as tl
from scipy.optimize import brentq
from tensorly.tenalg import khatri_rao

__all__ = ["sensitivity", "residual_norm", "reconstruct", "gauge", "epc"]


def _factors(factors) -> List[np.ndarray]:
    """Float64 copies of the factor matrices; a tensorly ``(weights, factors)`` pair gets its weights folded."""
    if len(factors) == 2 and isinstance(factors[1], (list, tuple)) \
            and (factors[0] is None or np.ndim(factors[0]) == 1):
        weights, mats = factors
        mats = [np.array(m, dtype=np.float64) for m in mats]
        if weights is not None:
            mats[0] = mats[0] * np.asarray(weights, np.float64)[None, :]
        return mats
    return [np.array(m, dtype=np.float64) for m in factors]


def reconstruct(factors) -> np.ndarray:
    """The full tensor :math:`[\\![U^{(1)}, ..., U^{(N)}]\\!]` of factor matrices (weights folded in)."""
    mats = _factors(factors)
    return tl.cp_to_tensor((np.ones(mats[0].shape[1]), mats))


def residual_norm(tensor, factors) -> float:
    """Absolute Frobenius error :math:`\\|T - [\\![U^{(1)}, ..., U^{(N)}]\\!]\\|_F`."""
    return float(np.linalg.norm(np.asarray(tensor, np.float64) - reconstruct(factors)))


def _norms2(mats: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.sum(m * m, axis=0) for m in mats])            # (N, R)


def sensitivity(factors) -> float:
    """:math:`ss = \\sum_n I_n \\sum_r \\prod_{m \\ne n} \\|u^{(m)}_r\\|^2` (3-way, 4-way, any order)."""
    mats = _factors(factors)
    n2 = _norms2(mats)
    return float(sum(m.shape[0] * np.prod(np.delete(n2, n, axis=0), axis=0).sum() for n, m in enumerate(mats)))


def _penalty(mats: Sequence[np.ndarray], k: int) -> np.ndarray:
    """:math:`d_r`: the weight of :math:`\\|u^{(k)}_r\\|^2` in the sensitivity."""
    n2 = _norms2(mats)
    d = np.zeros(n2.shape[1])
    for n, m in enumerate(mats):
        if n != k:
            d += m.shape[0] * np.prod(np.delete(n2, [n, k], axis=0), axis=0)
    return d


def gauge(factors) -> List[np.ndarray]:
    r"""Rescale every rank-one term to its least sensitive form, :math:`\|u^{(n)}_r\|^2 \propto I_n`.

    The term (so the tensor) is unchanged; with :math:`x_n = \|u^{(n)}_r\|^2` and :math:`\prod_n x_n`
    fixed, :math:`\sum_n I_n \prod_{m \ne n} x_m = \prod_m x_m \sum_n I_n / x_n` is smallest when
    :math:`x_n \propto I_n` (Lagrange conditions).
    """
    mats = _factors(factors)
    n2 = _norms2(mats)
    dims = np.array([m.shape[0] for m in mats], dtype=np.float64)
    alive = np.all(n2 > 0, axis=0)
    target = dims[:, None] * (np.prod(np.where(alive, n2, 1.0), axis=0) / np.prod(dims)) ** (1.0 / len(mats))
    scale = np.sqrt(np.where(alive, target / np.where(alive, n2, 1.0), 0.0))
    return [m * s[None, :] for m, s in zip(mats, scale)]


def _root(q: np.ndarray, s: np.ndarray, c: float) -> float:
    """The lambda > 0 with sum_j q_j (lambda / (s_j + lambda))^2 = c, for 0 < c < sum q."""
    def g(log_lam):
        lam = math.exp(log_lam)
        return float(np.sum(q * (lam / (s + lam)) ** 2) - c)

    hi = math.log(max(float(s.max()), 1e-300))
    while g(hi) <= 0 and hi < 700:
        hi += 4.0
    lo = hi
    while g(lo) >= 0 and lo > -700:
        lo -= 4.0
    if g(lo) >= 0:
        return 0.0
    return math.exp(brentq(g, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, maxiter=500))


def _update(unfolded, kr, current, d, delta2, cur_err2):
    """One constrained least-squares update of a factor; returns (factor, squared error)."""
    def err2(x):
        return float(np.sum((unfolded - x @ kr.T) ** 2))

    live = d > d.max() * 1e-14 if d.max() > 0 else np.zeros(d.shape, bool)
    if not live.any():
        return current, cur_err2
    sd = np.sqrt(d[live])
    k_live = kr[:, live]
    m = unfolded @ k_live                                        # (I_k, R_live)
    z = (k_live.T @ k_live) / np.outer(sd, sd)
    s, v = np.linalg.eigh(z)
    keep = s > max(s.max(), 0.0) * s.size * np.finfo(float).eps
    s, v = s[keep], v[:, keep]
    if s.size == 0:
        return current, cur_err2
    p = (m / sd[None, :]) @ v                                    # (I_k, J)
    back = v.T / sd[None, :]                                     # (J, R_live)

    def factor(lam):
        x = np.zeros_like(current)
        x[:, live] = (p / (s + lam)[None, :]) @ back
        return x

    x_ls = factor(0.0)
    e_ls = err2(x_ls)
    q = np.sum(p * p, axis=0) / s
    c = delta2 - e_ls
    if c <= 0 or c >= q.sum():
        # Bound unreachable from here (least squares is the best step) or so loose that the
        # factor could vanish: take the least-squares step only if it lowers the error.
        return (x_ls, e_ls) if e_ls < cur_err2 else (current, cur_err2)
    lam = _root(q, s, c)
    for shrink in [0.0] + [10.0 ** -j for j in range(13, 0, -1)] + [1.0]:
        x = factor(lam * (1.0 - shrink))                         # rounding may cross the bound: back off
        e = err2(x)
        if e <= delta2:
            break
    if cur_err2 <= delta2:
        if np.sum(d * np.sum(x * x, axis=0)) > np.sum(d * np.sum(current * current, axis=0)):
            return current, cur_err2
    return x, e


def epc(tensor, factors, delta: float, n_iter: int = 100, tol: float = 1e-6) -> List[np.ndarray]:
    """Lower the sensitivity of a CP decomposition while keeping its error within ``delta``.

    Parameters
    ----------
    tensor : ndarray
        The N-way tensor (N >= 2) that ``factors`` approximates.
    factors : sequence of ndarray or tensorly CP tensor
        Factor matrices ``(I_n, R)`` (a ``(weights, factors)`` pair has its weights folded in).
    delta : float
        Absolute Frobenius error bound, usually the error of the starting CPD.
    n_iter : int
        Maximum number of sweeps over all factors.
    tol : float
        Stop when a sweep lowers the sensitivity by less than ``tol`` (relative) inside the bound.

    Returns
    -------
    list of ndarray
        Float64 factors with ``||T - [[factors]]||_F <= delta`` when the start is within the bound
        (then the sensitivity is no higher than at the start) or least-squares sweeps bring it there.
        Each sweep costs a few MTTKRP-sized products; EPC converges slowly, so ``n_iter`` bounds the
        time on large kernels.
    """
    t = np.asarray(tensor, dtype=np.float64)
    mats = _factors(factors)
    if len(mats) != t.ndim or any(m.shape[0] != n for m, n in zip(mats, t.shape)):
        raise ValueError(f"factors {[m.shape for m in mats]} do not match a tensor of shape {t.shape}")
    if not np.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be a finite non-negative error bound, got {delta!r}")
    delta2 = float(delta) ** 2
    unfolded = [tl.unfold(t, k) for k in range(t.ndim)]
    err2 = residual_norm(t, mats) ** 2
    ss = sensitivity(mats)
    for _ in range(int(n_iter)):
        scaled = gauge(mats)
        scaled_err2 = residual_norm(t, scaled) ** 2
        if scaled_err2 <= max(delta2, err2):
            mats, err2 = scaled, scaled_err2
        for k in range(t.ndim):
            kr = khatri_rao(mats, skip_matrix=k)
            mats[k], err2 = _update(unfolded[k], kr, mats[k], _penalty(mats, k), delta2, err2)
        new = sensitivity(mats)
        done = err2 <= delta2 and ss - new <= tol * ss
        ss = new
        if done:
            break
    return mats
