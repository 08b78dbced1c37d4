"""CP decompositions of a KxK conv kernel into chains of native layers (Lebedev et al. 2015; MUSCO).

``cp3``: the kernel as a (Cout, Cin, kh*kw) tensor, ``W ~= [[A, B, C]]`` of rank R, becomes
1x1 conv Cin -> R (``B^T``, position ``first``), depthwise KxK conv with ``groups=R`` (``C``, original
stride / padding / dilation, position ``core``), 1x1 conv R -> Cout (``A``, bias, position ``last``).

``cp4``: a 4-way CPD ``W ~= [[A, B, H, V]]`` splits the spatial part further into a depthwise Kx1 conv
(stride (sh, 1), padding (top, bottom, 0, 0), dilation (dh, 1)) and a depthwise 1xK conv (stride (1, sw),
padding (0, 0, left, right), dilation (1, dw)). Both depthwise layers have position ``core``, so
sequential freezing cycles first -> both spatial factors -> last, as for Tucker-2.

The CPD is tensorly's ``parafac`` (ALS with line search, SVD initialisation, fixed ``random_state``).
The weights of every rank-one term are folded into the factors with equal column norms. A CPD that
fails (singular ALS system, NaN/Inf) or degenerates raises :class:`DecompositionError` naming the
layer. Degenerate means diverging, cancelling components: a rank-one term more than ``max_intensity``
(default 100) times the kernel's norm, or two terms whose triple cosine (product over the modes of the
cosines between their columns) is below ``min_congruence`` (default -0.9999). Plain CPDs of random and
decaying-spectrum kernels were measured at intensities up to ~23 and triple cosines down to -0.99
(mildly degenerate, the case CPD-EPC addresses); ALS on a tensor without a best rank-R approximation
drifts past any such limit as it iterates. The check runs on the final factors, after CPD-EPC when
``epc=True``.

Ranks: manual, parameter reduction (``R = floor(Cin Cout kh kw / (ratio (Cin + kh kw + Cout)))`` for
CP-3, ``kh + kw`` in place of ``kh kw`` for CP-4), EVBMF or energy. The last two work per channel
dimension as MUSCO's Bayesian rule does (mode-0 Cout and mode-1 Cin unfoldings, weakened
``F - w (F - R_evbmf)``); a rank-R CPD has every mode-n rank at most R, so the CP rank is the larger
of the two. Later MUSCO stages re-decompose a chain through :func:`cp_redecompose`.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorly as tl
from scipy.linalg import qr
from tensorly.decomposition import parafac

from ..errors import BadWeightsError, DecompositionError, RankError, UnsupportedLayerError
from ..layers import LayerInfo, SubLayer
from ..vbmf import evbmf_rank
from .epc import epc as run_epc
from .epc import reconstruct, residual_norm, sensitivity

CP_METHODS = ("cp3", "cp4")


# ------------------------------------------------------------------------------------ ranks
def pr_cp3_rank(c_out: int, c_in: int, kh: int, kw: int, ratio: float) -> int:
    """CP-3 rank reducing the parameters ``ratio`` times: floor(Cin Cout kh kw / (ratio (Cin + kh kw + Cout)))."""
    return max(1, math.floor(c_in * c_out * kh * kw / (ratio * (c_in + kh * kw + c_out))))


def pr_cp4_rank(c_out: int, c_in: int, kh: int, kw: int, ratio: float) -> int:
    """CP-4 rank reducing the parameters ``ratio`` times: floor(Cin Cout kh kw / (ratio (Cin + kh + kw + Cout)))."""
    return max(1, math.floor(c_in * c_out * kh * kw / (ratio * (c_in + kh + kw + c_out))))


PR_RANKS = {"cp3": pr_cp3_rank, "cp4": pr_cp4_rank}


def max_cp_rank(info: LayerInfo, method: str) -> int:
    """Largest sensible rank: the chain must not have more parameters than the layer (PR at ratio 1)."""
    kh, kw = info.kernel
    return PR_RANKS[_method(method)](info.out_channels, info.in_channels, kh, kw, 1.0)


def cp_vbmf_rank(weight: np.ndarray, vbmf_weakening: float = 0.8, current: Optional[int] = None) -> float:
    """Weakened EVBMF rank ``max_n (F_n - w (F_n - R_n))`` over the Cout and Cin unfoldings.

    ``F_n`` is the unfolding's size, or ``current`` (a chain's rank, for later MUSCO stages).
    """
    w = np.asarray(weight, np.float64)
    out = 0.0
    for mode in (0, 1):
        mat = np.moveaxis(w, mode, 0).reshape(w.shape[mode], -1)
        full = w.shape[mode] if current is None else current
        est = min(evbmf_rank(mat), full)
        out = max(out, full - vbmf_weakening * (full - est))
    return out


def cp_energy_rank(weight: np.ndarray, energy: float = 0.95) -> float:
    """Larger of the two channel unfoldings' energy ranks (``energy`` of the squared norm kept)."""
    from ..ranks import energy_rank

    w = np.asarray(weight, np.float64)
    return float(max(energy_rank(np.moveaxis(w, m, 0).reshape(w.shape[m], -1), energy) for m in (0, 1)))


CP_SELECTORS: Dict[str, Callable[..., float]] = {
    "pr": lambda info, method, weight=None, ratio=2.0, **_: float(
        PR_RANKS[method](info.out_channels, info.in_channels, *info.kernel, ratio)),
    "vbmf": lambda info, method, weight=None, vbmf_weakening=0.8, **_: cp_vbmf_rank(weight, vbmf_weakening),
    "energy": lambda info, method, weight=None, energy=0.95, **_: cp_energy_rank(weight, energy),
}


def select_cp_rank(info: LayerInfo, method: str, selection: str, weight=None, **options) -> Tuple[float]:
    """Raw CP rank ``(R,)`` of one layer from the named selector (quantize it like other ranks)."""
    if selection not in CP_SELECTORS:
        raise KeyError(f"no CP rank selector {selection!r}; known: {sorted(CP_SELECTORS)}")
    return (min(CP_SELECTORS[selection](info, _method(method), weight=weight, **options),
                float(max_cp_rank(info, method))),)


# ------------------------------------------------------------------------------------ factors
def _method(method: str) -> str:
    if method not in CP_METHODS:
        raise KeyError(f"no CP method {method!r}; known: {CP_METHODS}")
    return method


def _where(name: Optional[str]) -> str:
    return f"layer {name}" if name else "the kernel"


def _tensor(weight: np.ndarray, method: str) -> np.ndarray:
    w = np.asarray(weight, np.float64)
    return w.reshape(w.shape[0], w.shape[1], -1) if method == "cp3" else w


def balance(factors: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Rescale every rank-one term so its factor columns share one norm (the term is unchanged)."""
    mats = [np.array(f, np.float64) for f in factors]
    norms = np.stack([np.linalg.norm(f, axis=0) for f in mats])
    alive = np.all(norms > 0, axis=0)
    target = np.prod(np.where(alive, norms, 1.0), axis=0) ** (1.0 / len(mats))
    for f, n in zip(mats, norms):
        f *= np.where(alive, target / np.where(alive, n, 1.0), 0.0)[None, :]
    return mats


def _cpd(t: np.ndarray, rank: int, method: str, seed: int, n_iter: int, tol: float, name) -> List[np.ndarray]:
    """Balanced float64 factors of a rank-``rank`` CPD of the tensor ``t`` (tensorly ``parafac``)."""
    if not np.any(t):
        return [np.zeros((n, int(rank))) for n in t.shape]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            (weights, mats), _ = parafac(tl.tensor(t), int(rank), n_iter_max=int(n_iter), init="svd", tol=tol,
                                         random_state=int(seed), normalize_factors=False, linesearch=True,
                                         return_errors=True)
    except np.linalg.LinAlgError as exc:
        raise DecompositionError(f"{method.upper()} of {_where(name)} at rank {rank} failed ({exc}: the ALS "
                                 f"system became singular); use a lower rank or conv_method='tucker2'") from exc
    mats = [np.asarray(m, np.float64) for m in mats]
    mats[0] = mats[0] * np.asarray(weights, np.float64)[None, :]
    if not all(np.all(np.isfinite(m)) for m in mats):
        raise DecompositionError(f"{method.upper()} of {_where(name)} at rank {rank} produced NaN/Inf factors; "
                                 f"use a lower rank or conv_method='tucker2'")
    return balance(mats)


def cp_factors(weight: np.ndarray, rank: int, method: str = "cp3", seed: int = 0, n_iter: int = 300,
               tol: float = 1e-8, name: Optional[str] = None) -> List[np.ndarray]:
    """Float64 factors of a rank-``rank`` CPD of an OIHW kernel (``[A, B, C]`` or ``[A, B, H, V]``).

    Weights are folded in and balanced. Raises :class:`DecompositionError` when ALS fails.
    """
    return _cpd(_tensor(weight, _method(method)), rank, method, seed, n_iter, tol, name)


def cp3_factors(weight: np.ndarray, rank: int, **options) -> List[np.ndarray]:
    """``[A (Cout, R), B (Cin, R), C (kh*kw, R)]`` of the kernel as a (Cout, Cin, kh*kw) tensor."""
    return cp_factors(weight, rank, "cp3", **options)


def cp4_factors(weight: np.ndarray, rank: int, **options) -> List[np.ndarray]:
    """``[A (Cout, R), B (Cin, R), H (kh, R), V (kw, R)]`` of the 4-way kernel."""
    return cp_factors(weight, rank, "cp4", **options)


def cp_diagnostics(tensor: np.ndarray, factors: Sequence[np.ndarray]) -> Dict[str, float]:
    """``intensity``: largest rank-one term norm / ``||tensor||``; ``congruence``: smallest triple cosine
    (product over modes of the cosines between two components; near -1 = a cancelling pair)."""
    norms = [np.linalg.norm(f, axis=0) for f in factors]
    scale = float(np.linalg.norm(tensor)) or 1.0
    intensity = float(np.prod(norms, axis=0).max()) / scale
    units = [f / np.where(n > 0, n, 1.0)[None, :] for f, n in zip(factors, norms)]
    cos = np.prod([u.T @ u for u in units], axis=0)
    np.fill_diagonal(cos, 1.0)
    return {"intensity": intensity, "congruence": float(cos.min())}


def _check(tensor, factors, method, rank, name, max_intensity, min_congruence):
    if not all(np.all(np.isfinite(f)) for f in factors):
        raise DecompositionError(f"{method.upper()} of {_where(name)} at rank {rank} produced NaN/Inf factors")
    diag = cp_diagnostics(tensor, factors)
    if diag["intensity"] > max_intensity or diag["congruence"] < min_congruence:
        raise DecompositionError(
            f"{method.upper()} of {_where(name)} at rank {rank} is degenerate (largest component "
            f"{diag['intensity']:.3g}x the kernel norm, limit {max_intensity:g}; smallest triple cosine "
            f"{diag['congruence']:.3f}, limit {min_congruence:g}): use epc=True, a lower rank or "
            f"conv_method='tucker2'")


# ------------------------------------------------------------------------------------ chains
def cp_chain(factors: Sequence[np.ndarray], kernel: Tuple[int, int], bias=None, stride=(1, 1),
             padding=(0, 0, 0, 0), dilation=(1, 1), dtype=np.float32) -> List[SubLayer]:
    """SubLayers of a CP-3 (three factors) or CP-4 (four factors) chain."""
    a, b = factors[0], factors[1]
    r = a.shape[1]
    kh, kw = kernel
    (sh, sw), (top, bottom, left, right), (dh, dw) = tuple(stride), tuple(padding), tuple(dilation)
    b_ = None if bias is None else np.asarray(bias, dtype).copy()
    subs = [SubLayer("conv2d", b.T.reshape(r, -1, 1, 1).astype(dtype), None, (1, 1), (0, 0, 0, 0), (1, 1), 1,
                     "first")]
    if len(factors) == 3:
        subs.append(SubLayer("conv2d", factors[2].T.reshape(r, 1, kh, kw).astype(dtype), None, (sh, sw),
                             (top, bottom, left, right), (dh, dw), r, "core"))
    else:
        subs += [SubLayer("conv2d", factors[2].T.reshape(r, 1, kh, 1).astype(dtype), None, (sh, 1),
                          (top, bottom, 0, 0), (dh, 1), r, "core"),
                 SubLayer("conv2d", factors[3].T.reshape(r, 1, 1, kw).astype(dtype), None, (1, sw),
                          (0, 0, left, right), (1, dw), r, "core")]
    subs.append(SubLayer("conv2d", a.reshape(-1, r, 1, 1).astype(dtype), b_, (1, 1), (0, 0, 0, 0), (1, 1), 1,
                         "last"))
    return subs


def cp_skeleton(info: LayerInfo, method: str, rank: int, dtype=np.float32) -> List[SubLayer]:
    """The chain ``method`` gives ``info`` at ``rank``, with zero weights (rebuild from a plan)."""
    dtype = np.float32 if dtype == "shape" else dtype
    kh, kw = info.kernel
    sizes = (info.out_channels, info.in_channels) + ((kh * kw,) if _method(method) == "cp3" else (kh, kw))
    bias = np.zeros(info.out_channels, dtype) if info.has_bias else None
    return cp_chain([np.zeros((n, int(rank))) for n in sizes], info.kernel, bias, info.stride, info.padding,
                    info.dilation, dtype)


def cp_chain_factors(subs: Sequence[SubLayer]) -> List[np.ndarray]:
    """Float64 factors ``[A, B, C]`` (3 layers) or ``[A, B, H, V]`` (4 layers) read back from a CP chain."""
    w = [np.asarray(s.weight, np.float64) for s in subs]
    a, b = w[-1][:, :, 0, 0], w[0][:, :, 0, 0].T
    if len(subs) == 3:
        return [a, b, w[1].reshape(w[1].shape[0], -1).T]
    return [a, b, w[1][:, 0, :, 0].T, w[2][:, 0, 0, :].T]


def fold_cp(subs: Sequence[SubLayer]) -> np.ndarray:
    """The full OIHW kernel (float64) a CP-3 or CP-4 chain computes."""
    factors = cp_chain_factors(subs)
    full = reconstruct(factors)
    if len(subs) == 3:
        full = full.reshape(full.shape[:2] + tuple(subs[1].kernel))
    return full


# ------------------------------------------------------------------------------------ decompose
def _finish(t, factors, method, rank, name, epc, epc_iter, max_intensity, min_congruence):
    """(factors, report) after optional EPC and the degeneracy check."""
    norm = float(np.linalg.norm(t)) or 1.0
    err0 = residual_norm(t, factors)
    ss0 = sensitivity(factors)
    if epc and err0 > 0:
        factors = run_epc(t, factors, err0, n_iter=epc_iter)
    _check(t, factors, method, rank, name, max_intensity, min_congruence)
    report = {"error": [err0 / norm, residual_norm(t, factors) / norm], "sensitivity": [ss0, sensitivity(factors)]}
    return factors, report


def _decompose(method, weight, rank, bias, stride, padding, dilation, groups, epc, seed, n_iter, tol, epc_iter,
               max_intensity, min_congruence, name):
    w = np.asarray(weight)
    if w.ndim != 4:
        raise UnsupportedLayerError(f"{method} of {_where(name)} needs an OIHW conv kernel, got shape {w.shape}; "
                                    f"dense layers use svd")
    if groups != 1:
        raise UnsupportedLayerError(f"{method} of {_where(name)}: grouped convolution (groups={groups}) cannot be "
                                    f"CP-decomposed; exclude the layer or leave it undecomposed")
    if not np.all(np.isfinite(w)):
        raise BadWeightsError(f"{_where(name)} has NaN/Inf weights; fix the checkpoint before decomposing")
    o, i, kh, kw = w.shape
    top = PR_RANKS[method](o, i, kh, kw, 1.0)
    if isinstance(rank, bool) or int(rank) != rank or not 1 <= rank <= top:
        raise RankError(f"{method} rank of {_where(name)} must be an integer in [1, {top}] (above {top} the chain "
                        f"is larger than the layer), got {rank!r}")
    rank = int(rank)
    t = _tensor(w, method)
    factors = cp_factors(w, rank, method, seed=seed, n_iter=n_iter, tol=tol, name=name)
    factors, report = _finish(t, factors, method, rank, name, epc, epc_iter, max_intensity, min_congruence)
    dtype = w.dtype if w.dtype.kind == "f" else np.float32
    return cp_chain(factors, (kh, kw), bias, stride, padding, dilation, dtype), report


def cp3(weight: np.ndarray, rank: int, bias: Optional[np.ndarray] = None, stride=(1, 1), padding=(0, 0, 0, 0),
        dilation=(1, 1), epc: bool = False, seed: int = 0, *, groups: int = 1, n_iter: int = 300, tol: float = 1e-8,
        epc_iter: int = 100, max_intensity: float = 100.0, min_congruence: float = -0.9999,
        name: Optional[str] = None):
    """CP-3 of an OIHW kernel: ``(subs, report)``, subs = [1x1 Cin->R, depthwise KxK, 1x1 R->Cout (+bias)].

    Parameters
    ----------
    weight : ndarray (Cout, Cin, kh, kw)
    rank : int
        1 <= rank <= :func:`max_cp_rank`.
    bias, stride, padding, dilation
        The original layer's; ``padding`` is (top, bottom, left, right).
    epc : bool
        Run CPD-EPC (:func:`lrd_core.factorize.epc.epc`) at the CPD's own error.
    seed, n_iter, tol
        ``parafac`` random state, maximum ALS iterations and tolerance.
    groups : int
        The layer's groups; anything but 1 raises :class:`UnsupportedLayerError`.
    epc_iter : int
        Maximum EPC sweeps.
    max_intensity, min_congruence : float
        Degeneracy limits (see the module docstring).
    name : str, optional
        Layer name used in error messages.

    Returns
    -------
    subs : list of SubLayer
    report : dict
        ``{"error": [before, after], "sensitivity": [before, after]}``: relative Frobenius error of the
        kernel and sensitivity before / after EPC (equal when ``epc=False``).
    """
    return _decompose("cp3", weight, rank, bias, stride, padding, dilation, groups, epc, seed, n_iter, tol,
                      epc_iter, max_intensity, min_congruence, name)


def cp4(weight: np.ndarray, rank: int, bias: Optional[np.ndarray] = None, stride=(1, 1), padding=(0, 0, 0, 0),
        dilation=(1, 1), epc: bool = False, seed: int = 0, *, groups: int = 1, n_iter: int = 300, tol: float = 1e-8,
        epc_iter: int = 100, max_intensity: float = 100.0, min_congruence: float = -0.9999,
        name: Optional[str] = None):
    """CP-4 of an OIHW kernel: ``(subs, report)``, subs = [1x1, depthwise Kx1, depthwise 1xK, 1x1 (+bias)].

    Parameters and report as :func:`cp3`.
    """
    return _decompose("cp4", weight, rank, bias, stride, padding, dilation, groups, epc, seed, n_iter, tol,
                      epc_iter, max_intensity, min_congruence, name)


def factorize_cp(info: LayerInfo, method: str, weight: np.ndarray, bias=None, rank: int = 1, **options):
    """``cp3`` / ``cp4`` of one layer with its geometry and name: ``(subs, report)``."""
    fn = {"cp3": cp3, "cp4": cp4}[_method(method)]
    return fn(weight, rank, bias, info.stride, info.padding, info.dilation, groups=info.groups, name=info.name,
              **options)


# ------------------------------------------------------------------------------------ later MUSCO stages
def cp_core(subs: Sequence[SubLayer]) -> Tuple[List[np.ndarray], np.ndarray]:
    """``(bases, core)``: orthonormal bases ``Q_n`` of the chain's factors and the small tensor with
    ``kernel = core x_1 Q_1 x_2 Q_2 ...`` (CP-3: (Cout, Cin, kh*kw) layout)."""
    bases, small = [], []
    for f in cp_chain_factors(subs):
        q, r = qr(f, mode="economic")
        bases.append(q)
        small.append(r)
    return bases, reconstruct(small)


def cp_redecompose(subs: Sequence[SubLayer], new_rank: int, epc: bool = False, seed: int = 0,
                   n_iter: int = 300, tol: float = 1e-8, epc_iter: int = 100, max_intensity: float = 100.0,
                   min_congruence: float = -0.9999, name: Optional[str] = None):
    """The chain at ``new_rank`` (same layers and geometry): ``(subs, report)``.

    The CPD runs on the small core of :func:`cp_core` and is mapped back through the bases (the best
    approximation lies in their span); EPC, when asked, runs on the full kernel since the sensitivity
    weighs the full mode sizes. The report's errors are relative to the chain's current kernel.
    """
    method = "cp3" if len(subs) == 3 else "cp4"
    rank = int(subs[0].weight.shape[0])
    if not 1 <= int(new_rank) <= rank:
        raise RankError(f"{method} rank of {_where(name)} can only shrink in a later stage: got {new_rank}, "
                        f"the chain has rank {rank}")
    bases, core = cp_core(subs)
    small = _cpd(core, int(new_rank), method, seed, n_iter, tol, name)
    factors = balance([q @ f for q, f in zip(bases, small)])
    full = _tensor(fold_cp(subs), method)
    factors, report = _finish(full, factors, method, int(new_rank), name, epc, epc_iter, max_intensity,
                              min_congruence)
    last, dw = subs[-1], subs[1]
    kernel = dw.kernel if method == "cp3" else (dw.kernel[0], subs[2].kernel[1])
    stride = (dw.stride[0], subs[-2].stride[1])
    padding = dw.padding[:2] + subs[-2].padding[2:]
    dilation = (dw.dilation[0], subs[-2].dilation[1])
    return cp_chain(factors, kernel, last.bias, stride, padding, dilation, np.asarray(subs[0].weight).dtype), report
