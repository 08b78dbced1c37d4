"""Data-aware SVD and Tucker-2: minimise a layer's output error on calibration data.

For a layer ``y = W x + b`` with input second moment ``C = E[x x^T]`` (see
:mod:`lrd_core.calibrate`), the output error of an approximation ``W'`` that keeps the bias is
``E||(W - W') x||^2 = ||(W - W') S||_F^2`` for any ``S`` with ``S S^T = C``. Relative output
errors are ``||(W - W') S|| / ||W S||``.

Floor. ``C`` is eigendecomposed, ``C = Q diag(l) Q^T``, and eigenvalues below ``floor * max(l)``
are raised to it (``C'``). This never needs a Cholesky factor (which fails on the singular
covariances of few samples or dead ReLU channels), bounds every inverse, and interpolates
between the data-aware solution (``floor=0``) and the weight-space one (``floor=1`` gives
``C' = max(l) I``). For a KxK conv with patch statistics the ``(Cin*k)^2`` eigendecomposition
would dominate the cost, so there the same floor is applied as a ridge ``C' = C + floor*max(l)*I``
(``max(l)`` by power iteration). Reports say which floor was applied and how many eigenvalues it
raised. The default ``floor=1e-3`` changes nothing measurable when calibration data are ample and
generalises better when they are few (fewer samples than inputs) than ``floor=0``.

Whitened SVD (dense and 1x1 conv). With ``S = Q diag(sqrt(l'))``, the best rank-r ``W'`` under
``C'`` is ``U_r Sigma_r V_r^T S^-1`` for the truncated SVD ``W S = U Sigma V^T`` (Eckart-Young on
the whitened problem). Since ``U_r Sigma_r V_r^T = U_r U_r^T W S``, this equals ``U_r U_r^T W``:
the projection of ``W`` on the top-r principal directions of the layer's outputs. That form is
used (no inverse of ``S``); the factors are ``first = U_r^T W`` and ``last = U_r``, re-balanced so
both carry the square roots of the singular values of ``W'``.

Data-aware Tucker-2 (KxK conv, ``k = kh*kw``, patch index ``c*k + s``). With ``W_m`` the
``Cout x Cin*k`` matrix of the kernel, the chain 1x1 (``A``: R_in x Cin) -> KxK (core ``G``:
R_out x R_in*k) -> 1x1 (``U``: Cout x R_out) computes ``W'_m = U G T`` with ``T = A (x) I_k``.
Alternating least squares on ``L(U, G, A) = tr((W_m - W'_m) C' (W_m - W'_m)^T)``:

* Output step (``A`` fixed; exact joint minimum over ``U``, ``G``, reduced-rank regression):
  ``C_z = T C' T^T``, ``R = W_m C' T^T``, ``B = R C_z^-1``; ``U`` = the ``R_out`` leading
  eigenvectors of ``B C_z B^T = R C_z^-1 R^T``, ``G = U^T B``, and
  ``L = tr(W_m C' W_m^T) - sum of those eigenvalues``.
* Input step (``U``, ``G`` fixed): with ``G_s`` the ``R_out x R_in`` slice of ``G`` at kernel
  position ``s`` and ``C_{s's}`` the ``Cin x Cin`` blocks of ``C'``, ``A`` solves the normal
  equations ``sum_{s,s'} G_s^T G_s' A C_{s's} = sum_s G_s^T (U^T W_m C')_s``. They are solved by
  preconditioned conjugate gradients warm-started at the current ``A``, with the Kronecker
  preconditioner ``(sum_s G_s^T G_s) A C_bar`` (``C_bar`` the mean diagonal block): exact in one
  step when ``C' = C_channel (x) I_k``; otherwise every CG iterate lowers ``L``. ``A`` is then
  re-orthonormalised (its row space is all that matters: the next output step absorbs the rest).

Each step can only lower ``L``, so the recorded errors never increase. Start (HOSVD): the
``R_in`` leading eigenvectors ``V`` of the whitened mode-1 Gram ``S W_(1) W_(1)^T S`` with
``S = C_bar^{1/2}``, mapped back as ``A_0 = V^T S^-1``. With channel statistics only, ``C`` is
taken as ``C_channel (x) I_k``: spatial correlations inside the receptive field are ignored
(they are unknown), the channel correlations -- most of the structure -- are kept.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.linalg import solve_triangular

from ..errors import CalibrationError, ConfigError, RankError, UnsupportedLayerError
from ..layers import SubLayer
from ._linalg import fix_signs

DEFAULT_FLOOR = 1e-3


# ---------------------------------------------------------------- covariance helpers
def _floor(floor: Optional[float], name: str) -> float:
    f = DEFAULT_FLOOR if floor is None else float(floor)
    if not 0.0 <= f <= 1.0:
        raise ConfigError(f"{name}: the covariance floor is relative to the largest eigenvalue and must be "
                          f"in [0, 1], got {floor}")
    return f


def _check_cov(cov, dims: Sequence[int], name: str) -> np.ndarray:
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] not in dims:
        raise CalibrationError(f"{name}: covariance of shape {c.shape} does not fit the weight "
                               f"(expected a square matrix of size {' or '.join(map(str, sorted(set(dims))))})")
    if not np.isfinite(c).all():
        raise CalibrationError(f"{name}: covariance has NaN or Inf; recalibrate with finite activations")
    return (c + c.T) / 2


def floored_eigh(cov: np.ndarray, floor: float, name: str = "layer") -> Tuple[np.ndarray, np.ndarray, dict]:
    """Eigenvalues (ascending, raised to ``floor * max``) and eigenvectors of ``cov``, and a report."""
    lam, q = np.linalg.eigh(cov)
    top = float(lam[-1])
    if not top > 0:
        raise CalibrationError(f"{name}: the calibration inputs are all zero; this layer cannot be "
                               f"decomposed data-aware (use the weight-space method)")
    thr = float(floor) * top
    raised = int(np.sum(lam < thr))
    return np.maximum(lam, thr), q, {"floor": float(floor), "floor_abs": thr, "floor_kind": "clamp", "floored": raised}


def output_error(weight: np.ndarray, approx_weight: np.ndarray, cov: np.ndarray) -> float:
    """Relative output error ``||(W - W') S|| / ||W S||`` with ``S S^T = cov``.

    ``cov`` is ``Cin*kh*kw`` square (patch) or ``Cin`` square (channel; taken as ``cov (x) I_k``).
    """
    w = np.asarray(weight, dtype=np.float64)
    o, i = w.shape[:2]
    k = int(np.prod(w.shape[2:])) if w.ndim == 4 else 1
    c = _check_cov(cov, (i, i * k), "output_error")
    wm = w.reshape(o, i, k)
    dm = wm - np.asarray(approx_weight, dtype=np.float64).reshape(o, i, k)

    def energy(m):
        if c.shape[0] == i * k:
            m2 = m.reshape(o, -1)
            return float(np.sum((m2 @ c) * m2))
        return float(np.sum(np.tensordot(m, c, axes=([1], [0])) * m.transpose(0, 2, 1)))

    base = energy(wm)
    return float(np.sqrt(max(energy(dm), 0.0) / base)) if base > 0 else 0.0


def _relative(base: float, kept: float) -> float:
    """Relative error ``sqrt((base - kept) / base)`` of an approximation keeping ``kept`` of ``base``."""
    return float(np.sqrt(max(base - kept, 0.0) / base)) if base > 0 else 0.0


def _leading_left(m: np.ndarray, r: int) -> np.ndarray:
    """Orthonormal leading left singular vectors (n x r) of ``m`` from the eigendecomposition of
    the smaller Gram matrix."""
    n, p = m.shape
    if n <= p:
        return fix_signs(np.linalg.eigh(m @ m.T)[1][:, ::-1][:, :r])
    return fix_signs(np.linalg.qr(m @ np.linalg.eigh(m.T @ m)[1][:, ::-1][:, :r])[0])


def _balanced(u: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(first, last) with ``last @ first = u @ b`` and equal singular values in both."""
    ub, sb, vbt = np.linalg.svd(b, full_matrices=False)
    root = np.sqrt(sb)
    return root[:, None] * vbt, (u @ ub) * root[None, :]


# ---------------------------------------------------------------- whitened SVD
def _svd_parts(weight, cov, floor, name):
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 4 and w.shape[2:] != (1, 1):
        raise UnsupportedLayerError(f"{name}: whitened_svd takes a dense or 1x1 conv weight, got kernel "
                                    f"{w.shape[2:]}; use data_aware_tucker2")
    w = w.reshape(w.shape[0], w.shape[1])
    c = _check_cov(cov, (w.shape[1],), name)
    lam, q, report = floored_eigh(c, _floor(floor, name), name)
    return w, c, q * np.sqrt(lam)[None, :], report


def whitened_svd(weight: np.ndarray, rank: int, cov: np.ndarray, bias: Optional[np.ndarray] = None,
                 stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0, 0, 0),
                 dilation: Sequence[int] = (1, 1), floor: Optional[float] = None,
                 name: str = "layer") -> Tuple[List[SubLayer], Dict]:
    """Rank-``rank`` factorization of a dense/1x1 weight minimising the output error under ``cov``.

    Returns the same two :class:`SubLayer` as :func:`~lrd_core.factorize.svd` (first ``in -> r``
    with the stride/padding, last ``r -> out`` with the bias) and a report ``{"floor", "floor_abs",
    "floor_kind", "floored", "output_error", "weight_error"}`` (relative errors; the output error
    under the raw ``cov``).
    """
    weight = np.asarray(weight)
    n_out, n_in = weight.shape[:2]
    if not 1 <= int(rank) <= min(n_out, n_in):
        raise RankError(f"{name}: svd rank must be in [1, {min(n_out, n_in)}], got {rank}")
    w, c, s, report = _svd_parts(weight, cov, floor, name)
    u = _leading_left(w @ s, int(rank))
    first, last = _balanced(u, u.T @ w)
    approx = last @ first
    report.update(output_error=output_error(w, approx, c),
                  weight_error=float(np.linalg.norm(w - approx) / max(np.linalg.norm(w), 1e-300)))
    dtype = weight.dtype if weight.dtype.kind == "f" else np.float32
    kind = "conv2d" if weight.ndim == 4 else "dense"
    if kind == "conv2d":
        first, last = first[:, :, None, None], last[:, :, None, None]
    b = None if bias is None else np.asarray(bias, dtype=dtype).copy()
    return [SubLayer(kind, first.astype(dtype), None, tuple(stride), tuple(padding), tuple(dilation), 1, "first"),
            SubLayer(kind, last.astype(dtype), b, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last")], report


def svd_error_curve(weight: np.ndarray, cov: np.ndarray, ranks: Sequence[int], floor: Optional[float] = None,
                    name: str = "layer") -> np.ndarray:
    """Relative output errors (under the raw ``cov``) of :func:`whitened_svd` at each of ``ranks``,
    from one eigendecomposition."""
    w, c, s, _ = _svd_parts(weight, cov, floor, name)
    full = min(w.shape)
    u = _leading_left(w @ s, full)
    p = u.T @ w                                           # rows: W projected on each direction
    captured = np.concatenate([[0.0], np.cumsum(np.sum((p @ c) * p, axis=1))])
    base = float(np.sum((w @ c) * w))
    r = np.clip(np.asarray(ranks, dtype=int), 0, full)
    return np.array([_relative(base, captured[j]) for j in r])


# ---------------------------------------------------------------- covariances of a KxK conv
class _CovBase:
    """What both covariance models share: the preconditioner's channel inverse, computed once."""

    _c_inv = None

    def channel_inverse(self):
        if self._c_inv is None:
            self._c_inv = _inv_psd(self.channel())
        return self._c_inv


class _PatchCov(_CovBase):
    """Full ``(Cin*k)^2`` patch covariance with a ridge floor."""

    def __init__(self, c: np.ndarray, n_in: int, k: int, floor: float, name: str):
        top = _largest_eigenvalue(c)
        if not top > 0:
            raise CalibrationError(f"{name}: the calibration inputs are all zero; this layer cannot be "
                                   f"decomposed data-aware (use the weight-space method)")
        self.ridge = float(floor) * top
        self.c = c
        self.c[np.diag_indices_from(c)] += self.ridge
        self.c4 = self.c.reshape(n_in, k, n_in, k)
        self.n_in, self.k = n_in, k
        self.report = {"floor": float(floor), "floor_abs": self.ridge, "floor_kind": "ridge", "floored": None}

    def times(self, wm):                                  # W_m C'  (O x Cin*k)
        return wm @ self.c

    def channel(self):                                    # mean diagonal block
        return np.einsum("isjs->ij", self.c4) / self.k

    def _z(self, a):                                      # A C' as (r_in, k, Cin, k)
        return np.tensordot(a, self.c4, axes=([1], [0]))

    def solve_reduced(self, a, r):                        # R (T C' T^T)^-1
        ri = a.shape[0]
        cz = np.tensordot(self._z(a), a, axes=([2], [1])).transpose(0, 1, 3, 2).reshape(ri * self.k, -1)
        return _solve_pos(cz, r)

    def hess(self, a, g4, m):                             # sum_{s,s'} G_s^T G_s' A C_{s's}
        y = np.tensordot(g4, self._z(a), axes=([1, 2], [0, 1]))      # (r_out, Cin, k)
        return np.tensordot(g4, y, axes=([0, 2], [0, 2]))

    def prefix_grams(self, wc, basis):
        """``r_in -> R C_z^-1 R^T`` for ``A = basis[:r_in]``: in the rotated basis every ``C_z`` is a
        leading block of one matrix, whose Cholesky factor is the leading block of the full one."""
        o, d = wc.shape
        crot = np.tensordot(np.tensordot(basis, self.c4, axes=([1], [0])), basis, axes=([2], [1]))
        crot = crot.transpose(0, 1, 3, 2).reshape(d, d)
        wr = np.tensordot(wc.reshape(o, self.n_in, self.k), basis, axes=([1], [1])).transpose(0, 2, 1).reshape(o, d)
        jitter = 0.0
        while True:
            try:
                low = np.linalg.cholesky(crot + jitter * np.eye(d))
                break
            except np.linalg.LinAlgError:
                jitter = max(jitter * 100, 1e-12 * float(np.max(np.diag(crot))))
        y = solve_triangular(low, wr.T, lower=True)
        return lambda r_in: y[:r_in * self.k].T @ y[:r_in * self.k]


class _KronCov(_CovBase):
    """Channel covariance taken as ``C_channel (x) I_k``, eigenvalues floored."""

    def __init__(self, c: np.ndarray, n_in: int, k: int, floor: float, name: str):
        lam, q, self.report = floored_eigh(c, floor, name)
        self.c = (q * lam) @ q.T
        self.n_in, self.k = n_in, k

    def times(self, wm):
        o = wm.shape[0]
        return np.tensordot(wm.reshape(o, self.n_in, self.k), self.c, axes=([1], [0])).transpose(0, 2, 1).reshape(o, -1)

    def channel(self):
        return self.c

    def solve_reduced(self, a, r):
        ri = a.shape[0]
        r3 = r.reshape(r.shape[0], ri, self.k).transpose(1, 0, 2).reshape(ri, -1)
        return _solve_pos(a @ self.c @ a.T, r3.T).T.reshape(ri, r.shape[0], self.k).transpose(1, 0, 2).reshape(r.shape)

    def hess(self, a, g4, m):
        return m @ a @ self.c

    def prefix_grams(self, wc, basis):
        def gram(r_in):
            a = basis[:r_in]
            r = _reduce_rows(wc, a, self)
            return r @ self.solve_reduced(a, r).T
        return gram


def _reduce_rows(wc, a, cov):
    """``R = W_m C' T^T`` from ``W_m C'`` and ``A``."""
    o, ri = wc.shape[0], a.shape[0]
    return np.tensordot(wc.reshape(o, cov.n_in, cov.k), a, axes=([1], [1])).transpose(0, 2, 1).reshape(o, ri * cov.k)


def _largest_eigenvalue(c: np.ndarray, iters: int = 30) -> float:
    """Largest eigenvalue of a PSD matrix by power iteration from a fixed start (a few percent
    accurate at worst: it only sets the scale of the floor)."""
    v = np.ones(c.shape[0]) / np.sqrt(c.shape[0])
    lam = 0.0
    for _ in range(iters):
        w = c @ v
        lam = float(np.linalg.norm(w))
        if lam == 0:
            return 0.0
        v = w / lam
    return float(v @ c @ v)


def _solve_pos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b a^-1`` for symmetric PSD ``a`` (pseudo-inverse where it is singular)."""
    try:
        low = np.linalg.cholesky(a)
        return solve_triangular(low.T, solve_triangular(low, b.T, lower=True), lower=False).T
    except np.linalg.LinAlgError:
        return b @ _inv_psd(a, 1e-10, pseudo=True)


def _inv_psd(a: np.ndarray, rel: float = 1e-12, pseudo: bool = False):
    """Inverse of a symmetric PSD matrix with eigenvalues below ``rel * max`` either dropped
    (``pseudo``: the pseudo-inverse) or raised to that level (an SPD preconditioner)."""
    lam, q = np.linalg.eigh((a + a.T) / 2)
    if not lam[-1] > 0:
        return np.zeros_like(a) if pseudo else np.eye(len(a))
    thr = rel * lam[-1]
    inv = np.where(lam > thr, 1.0 / np.maximum(lam, thr), 0.0 if pseudo else 1.0 / thr)
    return (q * inv) @ q.T


# ---------------------------------------------------------------- data-aware Tucker-2
def _start(wm, cov, ri):
    """Whitened HOSVD input factor (orthonormal rows)."""
    lam, q = np.linalg.eigh(cov.channel())
    lam = np.maximum(lam, 1e-12 * lam[-1])
    s, s_inv = (q * np.sqrt(lam)) @ q.T, (q / np.sqrt(lam)) @ q.T
    w1 = wm.reshape(wm.shape[0], cov.n_in, cov.k).transpose(1, 0, 2).reshape(cov.n_in, -1)
    ev, vecs = np.linalg.eigh(s @ (w1 @ w1.T) @ s)
    return _orth_rows(vecs[:, ::-1][:, :ri].T @ s_inv)


def _orth_rows(a):
    q, _ = np.linalg.qr(a.T)
    return fix_signs(q).T


def _output_step(wc, a, cov, r_out):
    r = _reduce_rows(wc, a, cov)
    b = cov.solve_reduced(a, r)
    gram = r @ b.T
    ev, vecs = np.linalg.eigh((gram + gram.T) / 2)
    u = fix_signs(vecs[:, ::-1][:, :r_out])
    return u, u.T @ b, float(np.sum(ev[::-1][:r_out]))


def _input_step(wc, u, g, a, cov, iters, tol=1e-10):
    ri = a.shape[0]
    g4 = g.reshape(g.shape[0], ri, cov.k)
    rhs = np.tensordot(g4, (u.T @ wc).reshape(u.shape[1], cov.n_in, cov.k), axes=([0, 2], [0, 2]))
    m = np.tensordot(g4, g4, axes=([0, 2], [0, 2]))
    m_inv, c_inv = _inv_psd(m), cov.channel_inverse()
    x = a.copy()
    res = rhs - cov.hess(x, g4, m)
    z = m_inv @ res @ c_inv
    p, rz = z, float(np.sum(res * z))
    start = np.sqrt(abs(rz))
    for _ in range(iters):
        if rz <= 0 or np.sqrt(rz) <= tol * start:
            break
        hp = cov.hess(p, g4, m)
        php = float(np.sum(p * hp))
        if php <= 0:
            break
        alpha = rz / php
        x += alpha * p
        res -= alpha * hp
        z = m_inv @ res @ c_inv
        rz, rz_old = float(np.sum(res * z)), rz
        p = z + (rz / rz_old) * p
    return _orth_rows(x)


def _tucker_cov(weight, cov, floor, name):
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise UnsupportedLayerError(f"{name}: data_aware_tucker2 takes an OIHW conv kernel, got shape {w.shape}")
    o, i, kh, kw = w.shape
    k = kh * kw
    c = _check_cov(cov, (i, i * k), name)
    f = _floor(floor, name)
    model = (_PatchCov if c.shape[0] == i * k and k > 1 else _KronCov)(c.copy(), i, k, f, name)
    return w.reshape(o, -1), c, model


def data_aware_tucker2(weight: np.ndarray, ranks: Sequence[int], cov: np.ndarray, bias: Optional[np.ndarray] = None,
                       stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0, 0, 0),
                       dilation: Sequence[int] = (1, 1), n_iter: int = 3, cg_iters: int = 5,
                       floor: Optional[float] = None, name: str = "layer") -> Tuple[List[SubLayer], Dict]:
    """Tucker-2 of an OIHW kernel at ``ranks=(r_out, r_in)`` minimising the output error under ``cov``.

    ``cov``: patch covariance (``Cin*kh*kw`` square) or channel covariance (``Cin`` square). Returns
    the [1x1, KxK, 1x1] chain of :func:`~lrd_core.factorize.tucker2` and a report ``{"floor",
    "floor_abs", "floor_kind", "floored", "errors" (relative output error under the floored covariance after
    the start and after every ALS iteration; never increasing), "output_error", "weight_error"}``.
    """
    weight = np.asarray(weight)
    o, i = weight.shape[:2]
    r_out, r_in = (int(ranks), int(ranks)) if np.isscalar(ranks) else (int(ranks[0]), int(ranks[1]))
    if not (1 <= r_out <= o and 1 <= r_in <= i):
        raise RankError(f"{name}: tucker2 ranks must be in [1, {o}] x [1, {i}], got {(r_out, r_in)}")
    wm, c, model = _tucker_cov(weight, cov, floor, name)
    wc = model.times(wm)
    base = float(np.sum(wc * wm))
    a = _start(wm, model, r_in)
    u, g, kept = _output_step(wc, a, model, r_out)
    errors = [_relative(base, kept)]
    for _ in range(n_iter if (r_out < o or r_in < i) else 0):
        a = _input_step(wc, u, g, a, model, cg_iters)
        u, g, kept = _output_step(wc, a, model, r_out)
        errors.append(_relative(base, kept))
        if errors[-2] - errors[-1] <= 1e-7 * errors[-2]:
            break
    kh, kw = weight.shape[2:]
    core = g.reshape(r_out, r_in, kh, kw)
    approx = np.tensordot(u, np.tensordot(core, a, axes=([1], [0])), axes=([1], [0])).transpose(0, 3, 1, 2)
    report = dict(model.report, errors=[float(e) for e in errors], output_error=output_error(weight, approx, c),
                  weight_error=float(np.linalg.norm(approx - weight) / max(np.linalg.norm(weight), 1e-300)))
    dtype = weight.dtype if weight.dtype.kind == "f" else np.float32
    b = None if bias is None else np.asarray(bias, dtype=dtype).copy()
    return [SubLayer("conv2d", a[:, :, None, None].astype(dtype), None, (1, 1), (0, 0, 0, 0), (1, 1), 1, "first"),
            SubLayer("conv2d", core.astype(dtype), None, tuple(stride), tuple(padding), tuple(dilation), 1, "core"),
            SubLayer("conv2d", u[:, :, None, None].astype(dtype), b, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last")], report


def tucker2_error_curve(weight: np.ndarray, cov: np.ndarray, ranks: Sequence[Sequence[int]],
                        floor: Optional[float] = None, name: str = "layer") -> np.ndarray:
    """Relative output errors (under the floored ``cov``) at each ``(r_out, r_in)``: the whitened
    HOSVD start followed by one exact output step -- an upper bound of :func:`data_aware_tucker2`'s
    error (its ALS only lowers it). One eigendecomposition serves every ``r_in``."""
    wm, _, model = _tucker_cov(weight, cov, floor, name)
    wc = model.times(wm)
    base = float(np.sum(wc * wm))
    grams = model.prefix_grams(wc, _start(wm, model, model.n_in))
    spectra: Dict[int, np.ndarray] = {}
    out = []
    for r_out, r_in in ranks:
        if int(r_in) not in spectra:
            spectra[int(r_in)] = np.sort(np.linalg.eigvalsh(grams(int(r_in))))[::-1]
        kept = float(np.sum(spectra[int(r_in)][:int(r_out)]))
        out.append(_relative(base, kept))
    return np.asarray(out)


CURVES = {"svd": lambda w, c, ranks, **kw: svd_error_curve(w, c, [r[0] for r in ranks], **kw),
          "tucker2": tucker2_error_curve}


def error_curve(method: str, weight: np.ndarray, cov: np.ndarray, ranks: Sequence[Sequence[int]],
                **options) -> np.ndarray:
    """Relative output error of ``method`` (``svd`` / ``tucker2``) at each rank tuple in ``ranks``."""
    if method not in CURVES:
        raise KeyError(f"no data-aware error curve for {method!r}; known: {sorted(CURVES)}")
    return CURVES[method](weight, cov, [tuple(r) for r in ranks], **options)
