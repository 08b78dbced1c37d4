"""Basis convolutions (Alekseev et al., "Layer-specific optimization: sensitivity based convolution layers
basis search", seed 003): C' <= Cout basis filters, the other outputs rebuilt from the basis *outputs*.

With the kernel as a matrix ``W`` (Cout x Cin*kh*kw), ``W ~= Coef @ Basis``:

``basis`` (dense mix)
    [KxK conv Cin -> C' (the basis filters, original stride / padding / dilation, position ``first``),
    1x1 conv C' -> Cout (``Coef``, original bias, position ``last``)]. ``init="svd"``: the truncated SVD
    (best in Frobenius norm; singular values split evenly). ``init="qr"``: the C' filters picked first by
    a column-pivoted QR of ``W^T`` are kept exactly, the other outputs are their least-squares
    combinations.

``basis_combine`` (the alpha/beta variant, seed §3.1)
    C' = round(alpha Cout) basis filters; round(beta Cout) outputs are weighted sums of two basis outputs,
    the rest are (scaled) copies of one. The second layer is a ``combine`` SubLayer: ``weight`` (Cout, 2)
    coefficients, ``index`` (Cout, 2) int64 basis channels, ``bias``;
    ``out[:, o] = weight[o, 0] * x[:, index[o, 0]] + weight[o, 1] * x[:, index[o, 1]] + bias[o]``.
    A copy has ``index[o, 1] == index[o, 0]`` and ``weight[o, 1] == 0`` (it stays a copy while training).

Choosing copies and pairs. For fixed basis filters the best copy of output ``o`` keeps the largest
``(w_o . b_j)^2 / |b_j|^2`` and the best pair the largest projection of ``w_o`` onto ``span(b_j, b_k)``
(all pairs, from the Gram matrix); the ``n_pair`` outputs gaining most from a second term become pairs,
which is optimal for the given basis. Starting from the pivoted-QR filters, the basis is then refitted
by least squares for the chosen coefficients and the assignment redone (``n_iter`` rounds); both steps
can only lower ``||W - Coef Basis||_F``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy.linalg import lstsq, qr

from ..errors import BadWeightsError, ConfigError, RankError, UnsupportedLayerError
from ..layers import LayerInfo, SubLayer
from .svd import svd_factors
from .threads import blas_threads

INITS = ("svd", "qr")


# ------------------------------------------------------------------------------------ checks
def _where(name: Optional[str]) -> str:
    return f"layer {name}" if name else "the kernel"


def _matrix(weight, groups: int, name: Optional[str]) -> np.ndarray:
    w = np.asarray(weight)
    if w.ndim != 4:
        raise UnsupportedLayerError(f"basis convolutions of {_where(name)} need an OIHW conv kernel, got shape "
                                    f"{w.shape}")
    if groups != 1:
        raise UnsupportedLayerError(f"{_where(name)} is a grouped convolution (groups={groups}); basis "
                                    f"convolutions mix all outputs and need groups=1")
    if not np.all(np.isfinite(w)):
        raise BadWeightsError(f"{_where(name)} has NaN/Inf weights; fix the checkpoint before decomposing")
    return np.asarray(w, np.float64).reshape(w.shape[0], -1)


def _check_count(n_basis, c_out: int, name: Optional[str]) -> int:
    if isinstance(n_basis, bool) or int(n_basis) != n_basis or not 1 <= n_basis <= c_out:
        raise RankError(f"basis count of {_where(name)} must be an integer in [1, {c_out}] (Cout), got {n_basis!r}")
    return int(n_basis)


def combine_counts(c_out: int, alpha: float, beta: float, require_speedup: bool = False,
                   name: Optional[str] = None) -> Tuple[int, int]:
    """``(n_basis, n_pair)`` = (round(alpha Cout), round(beta Cout)) after validating alpha and beta.

    alpha and beta must lie in (0, 1]; ``require_speedup`` also demands alpha + beta < 1 (seed §3.1).
    """
    for key, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ConfigError(f"basis {key} of {_where(name)} must be in (0, 1], got {value!r}")
    if require_speedup and alpha + beta >= 1:
        raise ConfigError(f"basis alpha + beta of {_where(name)} is {alpha + beta:g}: a training speed-up needs "
                          f"alpha + beta < 1; lower alpha or beta")
    n_basis, n_pair = max(1, int(round(alpha * c_out))), int(round(beta * c_out))
    if n_pair and n_basis < 2:
        raise ConfigError(f"{_where(name)}: alpha={alpha:g} gives {n_basis} basis filter for {c_out} outputs, but "
                          f"pairs need two; raise alpha or set a smaller beta")
    return n_basis, n_pair


# ------------------------------------------------------------------------------------ factors
def pivoted_filters(matrix: np.ndarray, n_basis: int) -> np.ndarray:
    """Sorted indices of the ``n_basis`` filters (rows) a column-pivoted QR of ``matrix^T`` picks first."""
    _, _, piv = qr(matrix.T, mode="economic", pivoting=True)
    return np.sort(piv[:n_basis])


def basis_factors(matrix: np.ndarray, n_basis: int, init: str = "svd"):
    """``(basis (C', n), coef (Cout, C'))`` with ``coef @ basis ~= matrix``."""
    if init == "svd":
        return svd_factors(matrix, n_basis)
    if init != "qr":
        raise ConfigError(f"basis init must be one of {INITS}, got {init!r}")
    kept = pivoted_filters(matrix, n_basis)
    basis = matrix[kept]
    coef = lstsq(basis.T, matrix.T, lapack_driver="gelsy")[0].T
    coef[kept] = np.eye(n_basis)                                   # kept filters are exact copies
    return basis, coef


def assign(matrix: np.ndarray, basis: np.ndarray, n_pair: int, chunk: int = 64):
    """Best copies / pairs of ``basis`` rows for every row of ``matrix`` with exactly ``n_pair`` pairs.

    Returns ``(coef (Cout, 2), index (Cout, 2) int64)`` (copies: ``index[:, 1] == index[:, 0]``, coef 0).
    """
    g = basis @ basis.T
    h = matrix @ basis.T                                           # (Cout, C')
    diag = np.diag(g)
    safe = np.where(diag > 0, diag, np.inf)
    one = np.argmax(h * h / safe[None, :], axis=1)
    c_out, c_b = h.shape
    rows = np.arange(c_out)
    copy_gain = h[rows, one] ** 2 / safe[one]
    index = np.stack([one, one], axis=1).astype(np.int64)
    coef = np.stack([h[rows, one] / safe[one], np.zeros(c_out)], axis=1)
    if n_pair == 0 or c_b < 2:
        return coef, index
    j, k = np.triu_indices(c_b, 1)
    det = diag[j] * diag[k] - g[j, k] ** 2
    ok = det > 1e-12 * diag[j] * diag[k]
    j, k, det = j[ok], k[ok], det[ok]
    if j.size == 0:                                                # collinear basis: pairs add nothing
        return coef, index
    best_gain, best = np.full(c_out, -np.inf), np.zeros(c_out, np.int64)
    for lo in range(0, c_out, chunk):
        hj, hk = h[lo:lo + chunk, j], h[lo:lo + chunk, k]
        gain = (hj * hj * diag[k] - 2 * hj * hk * g[j, k] + hk * hk * diag[j]) / det
        arg = np.argmax(gain, axis=1)
        best[lo:lo + chunk] = arg
        best_gain[lo:lo + chunk] = gain[np.arange(len(arg)), arg]
    pairs = np.argsort(-(best_gain - copy_gain), kind="stable")[:n_pair]
    for o in pairs:
        a, b = j[best[o]], k[best[o]]
        sol = np.linalg.solve(g[np.ix_([a, b], [a, b])], h[o, [a, b]])
        index[o], coef[o] = (a, b), sol
    return coef, index


def _dense(coef: np.ndarray, index: np.ndarray, c_basis: int) -> np.ndarray:
    out = np.zeros((coef.shape[0], c_basis))
    np.add.at(out, (np.arange(coef.shape[0])[:, None], index), coef)
    return out


def combine_factors(matrix: np.ndarray, n_basis: int, n_pair: int, n_iter: int = 10, tol: float = 1e-9):
    """``(basis, coef, index)`` of the alpha/beta variant (see the module docstring); small problems run
    with one BLAS thread (many small solves: extra threads only wait for each other on a loaded machine)."""
    with blas_threads(matrix.shape[0]):
        return _combine_factors(matrix, n_basis, n_pair, n_iter, tol)


def _combine_factors(matrix: np.ndarray, n_basis: int, n_pair: int, n_iter: int, tol: float):
    basis = matrix[pivoted_filters(matrix, n_basis)].copy()
    coef, index = assign(matrix, basis, n_pair)
    err = np.linalg.norm(matrix - _dense(coef, index, n_basis) @ basis)
    for _ in range(int(n_iter)):
        dense = _dense(coef, index, n_basis)
        used = np.any(dense != 0, axis=0)
        refit = basis.copy()
        refit[used] = np.linalg.lstsq(dense[:, used], matrix, rcond=None)[0]
        new_coef, new_index = assign(matrix, refit, n_pair)
        new_err = np.linalg.norm(matrix - _dense(new_coef, new_index, n_basis) @ refit)
        if new_err > err:
            break
        done = err - new_err <= tol * max(err, 1e-300)
        basis, coef, index, err = refit, new_coef, new_index, new_err
        if done:
            break
    return basis, coef, index


# ------------------------------------------------------------------------------------ chains
def _conv(basis, shape, stride, padding, dilation, dtype) -> SubLayer:
    return SubLayer("conv2d", basis.reshape((basis.shape[0],) + tuple(shape[1:])).astype(dtype), None,
                    tuple(stride), tuple(padding), tuple(dilation), 1, "first")


def basis(weight: np.ndarray, n_basis: int, bias: Optional[np.ndarray] = None, stride=(1, 1),
          padding=(0, 0, 0, 0), dilation=(1, 1), init: str = "svd", *, groups: int = 1,
          name: Optional[str] = None) -> List[SubLayer]:
    """Basis convolutions with a dense output mix: [KxK conv Cin -> C', 1x1 conv C' -> Cout (+bias)]."""
    mat = _matrix(weight, groups, name)
    n_basis = _check_count(n_basis, mat.shape[0], name)
    b, coef = basis_factors(mat, n_basis, init)
    w = np.asarray(weight)
    dtype = w.dtype if w.dtype.kind == "f" else np.float32
    bias_ = None if bias is None else np.asarray(bias, dtype).copy()
    return [_conv(b, w.shape, stride, padding, dilation, dtype),
            SubLayer("conv2d", coef[:, :, None, None].astype(dtype), bias_, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last")]


def basis_combine(weight: np.ndarray, alpha: float, beta: float, bias: Optional[np.ndarray] = None, stride=(1, 1),
                  padding=(0, 0, 0, 0), dilation=(1, 1), n_iter: int = 10, require_speedup: bool = False, *,
                  groups: int = 1, name: Optional[str] = None) -> List[SubLayer]:
    """The alpha/beta variant: [KxK conv Cin -> C' = alpha Cout, ``combine`` (copies and beta Cout pairs)]."""
    mat = _matrix(weight, groups, name)
    n_basis, n_pair = combine_counts(mat.shape[0], alpha, beta, require_speedup, name)
    b, coef, index = combine_factors(mat, n_basis, n_pair, n_iter)
    w = np.asarray(weight)
    dtype = w.dtype if w.dtype.kind == "f" else np.float32
    bias_ = None if bias is None else np.asarray(bias, dtype).copy()
    return [_conv(b, w.shape, stride, padding, dilation, dtype),
            SubLayer("combine", coef.astype(dtype), bias_, position="last", index=index.astype(np.int64),
                     n_basis=n_basis)]


def apply_combine(x: np.ndarray, sub: SubLayer) -> np.ndarray:
    """NumPy reference of a ``combine`` layer on NCHW basis outputs."""
    w, idx = np.asarray(sub.weight), np.asarray(sub.index)
    out = w[None, :, 0, None, None] * x[:, idx[:, 0]] + w[None, :, 1, None, None] * x[:, idx[:, 1]]
    return out if sub.bias is None else out + np.asarray(sub.bias)[None, :, None, None]


def fold_basis(subs: Sequence[SubLayer]) -> SubLayer:
    """The single conv a basis chain computes (skip training folds back to it): float64 weight, the
    chain's bias and the basis conv's stride / padding / dilation."""
    first, last = subs
    b = np.asarray(first.weight, np.float64)
    mat = b.reshape(b.shape[0], -1)
    if last.kind == "combine":
        coef = _dense(np.asarray(last.weight, np.float64), np.asarray(last.index), b.shape[0])
    else:
        coef = np.asarray(last.weight, np.float64).reshape(last.weight.shape[0], -1)
    bias = None if last.bias is None else np.asarray(last.bias, np.float64).copy()
    return SubLayer("conv2d", (coef @ mat).reshape((coef.shape[0],) + b.shape[1:]), bias, first.stride,
                    first.padding, first.dilation, 1, "first")


def basis_skeleton(info: LayerInfo, ranks: Sequence[int], dtype=np.float32) -> List[SubLayer]:
    """Zero-weight chain for plan ranks ``(C',)`` (dense mix) or ``(C', n_pair)`` (combine variant).

    The combine layer's index marks the first ``n_pair`` outputs as pairs (channels 0 and 1) and the
    rest as copies, so that costs read from the skeleton count the pairs; loading weights replaces it.
    """
    dtype = np.float32 if dtype == "shape" else dtype
    c_b, o = int(ranks[0]), info.out_channels
    bias = np.zeros(o, dtype) if info.has_bias else None
    first = SubLayer("conv2d", np.zeros((c_b, info.in_channels) + info.kernel, dtype), None, info.stride,
                     info.padding, info.dilation, 1, "first")
    if len(ranks) == 1:
        return [first, SubLayer("conv2d", np.zeros((o, c_b, 1, 1), dtype), bias, position="last")]
    index = np.zeros((o, 2), np.int64)
    if c_b >= 2:
        index[:int(ranks[1]), 1] = 1
    return [first, SubLayer("combine", np.zeros((o, 2), dtype), bias, position="last", index=index, n_basis=c_b)]


def factorize_basis(info: LayerInfo, weight: np.ndarray, bias=None, ranks: Sequence[int] = (1,), init: str = "svd",
                    alpha: Optional[float] = None, beta: Optional[float] = None, n_iter: int = 10,
                    require_speedup: bool = False, **_) -> List[SubLayer]:
    """Basis chain of one layer: the combine variant when ``alpha`` and ``beta`` are given, else ``ranks[0]``
    basis filters with a dense mix."""
    geo = dict(stride=info.stride, padding=info.padding, dilation=info.dilation, groups=info.groups, name=info.name)
    if alpha is not None or beta is not None:
        return basis_combine(weight, alpha, beta, bias, n_iter=n_iter, require_speedup=require_speedup, **geo)
    return basis(weight, ranks[0], bias, init=init, **geo)


# ------------------------------------------------------------------------------------ plans
def pr_basis_rank(c_out: int, c_in: int, kh: int, kw: int, ratio: float) -> float:
    """C' reducing the parameters ``ratio`` times: ``C' (Cin kh kw + Cout) = Cout Cin kh kw / ratio``."""
    return c_out * c_in * kh * kw / (ratio * (c_in * kh * kw + c_out))


def select_basis_rank(info: LayerInfo, selection: str, weight=None, ratio: float = 2.0, energy: float = 0.95,
                      vbmf_weakening: float = 0.8, **_) -> Tuple[float]:
    """Raw basis count ``(C',)``: PR, or EVBMF / energy of the (Cout, Cin kh kw) unfolding (the basis is
    the truncated SVD of that matrix), clamped to Cout."""
    kh, kw = info.kernel
    c_out = info.out_channels
    if selection == "pr":
        return (min(pr_basis_rank(c_out, info.in_channels, kh, kw, ratio), float(c_out)),)
    mat = np.asarray(weight, np.float64).reshape(c_out, -1)
    if selection == "vbmf":
        from ..vbmf import evbmf_rank

        full = min(mat.shape)
        return (float(full - vbmf_weakening * (full - min(evbmf_rank(mat), full))),)
    if selection == "energy":
        from ..ranks import energy_rank

        return (float(energy_rank(mat, energy)),)
    raise KeyError(f"no basis rank selector {selection!r}; known: pr, vbmf, energy")


def combine_ranks(info: LayerInfo, alpha: float, beta: float, require_speedup: bool = False) -> Tuple[int, int]:
    """Plan ranks ``(C', n_pair)`` of the alpha/beta variant of ``info`` (validated as :func:`combine_counts`)."""
    return combine_counts(info.out_channels, alpha, beta, require_speedup, info.name)


def factorize_planned(info: LayerInfo, weight: np.ndarray, bias=None, ranks: Sequence[int] = (1,),
                      init: str = "svd", n_iter: int = 10) -> List[SubLayer]:
    """The chain of plan ranks ``(C',)`` (dense mix, ``init`` svd/qr) or ``(C', n_pair)`` (combine)."""
    if len(ranks) == 1:
        return basis(weight, int(ranks[0]), bias, info.stride, info.padding, info.dilation, init, groups=info.groups,
                     name=info.name)
    mat = _matrix(weight, info.groups, info.name)
    n_basis = _check_count(ranks[0], mat.shape[0], info.name)
    n_pair = int(ranks[1])
    if not 0 <= n_pair <= mat.shape[0] or (n_pair and n_basis < 2):
        raise RankError(f"basis pair count of {_where(info.name)} must be in [0, {mat.shape[0]}] and needs at "
                        f"least two basis filters, got {n_pair} pairs of {n_basis}")
    b, coef, index = combine_factors(mat, n_basis, n_pair, n_iter)
    w = np.asarray(weight)
    dtype = w.dtype if w.dtype.kind == "f" else np.float32
    bias_ = None if bias is None else np.asarray(bias, dtype).copy()
    return [_conv(b, w.shape, info.stride, info.padding, info.dilation, dtype),
            SubLayer("combine", coef.astype(dtype), bias_, position="last", index=index.astype(np.int64),
                     n_basis=n_basis)]
