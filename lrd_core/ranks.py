"""Rank selection (PR, EVBMF, energy, manual) and rank quantization.

Every selector returns *raw* ranks (floats allowed) for one layer; :func:`quantize` turns them
into the integers the factorization uses. Ranks are a tuple: ``(r,)`` for SVD, ``(r_out, r_in)``
for Tucker-2, ``(R,)`` for CP-3 / CP-4, ``(C',)`` or ``(C', n_pair)`` for basis convolutions (their
selectors live with the factorizations: :data:`METHOD_SELECTORS`).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .layers import LayerInfo
from .vbmf import evbmf_rank  # noqa: F401  (public: lrd_core.ranks.evbmf_rank)

Selector = Callable[..., Tuple[float, ...]]
SELECTORS: Dict[str, Selector] = {}
#: ``{method: fn(info) -> full ranks}`` and ``{method: fn(info, selection, weight=None, **options) -> raw
#: ranks}`` of the factorizations with their own rank rules (CP, basis; filled by lrd_core.factorize)
METHOD_FULL_RANKS: Dict[str, Callable[[LayerInfo], Tuple[int, ...]]] = {}
METHOD_SELECTORS: Dict[str, Selector] = {}


def register_selector(name: str):
    def wrap(fn):
        SELECTORS[name] = fn
        return fn
    return wrap


def method_for(info: LayerInfo) -> str:
    """Default factorization of a layer: SVD for dense and 1x1 conv, Tucker-2 for KxK conv."""
    return "svd" if info.is_pointwise else "tucker2"


def full_ranks(info: LayerInfo, method: str) -> Tuple[int, ...]:
    """Largest useful ranks: min(out, in) for SVD; (Cout, Cin) for Tucker-2; for CP the rank at which the
    chain has as many parameters as the layer; Cout basis filters."""
    if method in METHOD_FULL_RANKS:
        return METHOD_FULL_RANKS[method](info)
    if method == "svd":
        return (min(info.out_channels, info.in_channels),)
    return (info.out_channels, info.in_channels)


def weight_matrix(weight: np.ndarray) -> np.ndarray:
    """A dense or 1x1 conv weight as an (out, in) matrix."""
    return weight.reshape(weight.shape[0], -1)


def unfoldings(weight: np.ndarray):
    """Mode-0 (Cout x Cin*kh*kw) and mode-1 (Cin x Cout*kh*kw) unfoldings of an OIHW kernel."""
    o, i = weight.shape[:2]
    return weight.reshape(o, -1), np.moveaxis(weight, 1, 0).reshape(i, -1)


# ---------------------------------------------------------------- parameter reduction
def pr_svd_rank(n_out: int, n_in: int, ratio: float) -> float:
    """Rank r with r*(out+in) = out*in/ratio."""
    return n_out * n_in / (ratio * (n_out + n_in))


def pr_tucker2_ranks(c_out: int, c_in: int, kh: int, kw: int, ratio: float) -> Tuple[float, float]:
    """(r_out, r_in) with c_in*r_in + kh*kw*r_in*r_out + r_out*c_out = c_out*c_in*kh*kw/ratio and
    r_out/r_in = c_out/c_in (the rank ratio follows the channel ratio)."""
    beta = c_out / c_in
    a = kh * kw * beta
    b = c_in + beta * c_out
    c = -c_out * c_in * kh * kw / ratio
    r_in = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return beta * r_in, r_in


@register_selector("pr")
def select_pr(info: LayerInfo, method: str, weight=None, ratio: float = 2.0, **_) -> Tuple[float, ...]:
    if method == "svd":
        return (pr_svd_rank(info.out_channels, info.in_channels, ratio),)
    kh, kw = info.kernel
    return pr_tucker2_ranks(info.out_channels, info.in_channels, kh, kw, ratio)


@register_selector("vbmf")
def select_vbmf(info: LayerInfo, method: str, weight=None, vbmf_weakening: float = 0.8, **_):
    full = full_ranks(info, method)
    mats = (weight_matrix(weight),) if method == "svd" else unfoldings(weight)
    est = tuple(evbmf_rank(m) for m in mats)
    return tuple(f - vbmf_weakening * (f - e) for f, e in zip(full, est))


def energy_rank(matrix: np.ndarray, energy: float) -> int:
    """Smallest r whose leading singular values keep ``energy`` of the squared Frobenius norm."""
    from scipy.linalg import svdvals

    s2 = svdvals(np.asarray(matrix, dtype=np.float64)) ** 2
    total = s2.sum()
    if total == 0:
        return 0
    return int(np.searchsorted(np.cumsum(s2) / total, energy - 1e-12) + 1)


@register_selector("energy")
def select_energy(info: LayerInfo, method: str, weight=None, energy: float = 0.95, **_):
    mats = (weight_matrix(weight),) if method == "svd" else unfoldings(weight)
    return tuple(float(energy_rank(m, energy)) for m in mats)


# ---------------------------------------------------------------- quantization
def quantize_rank(r: float, q: int, full: int, rounding: str = "nearest") -> int:
    """Round ``r`` to a multiple of ``q`` (nearest / up / down), clamped to [q, full].

    A layer thinner than q keeps its full rank (and is then left undecomposed by the planner).
    """
    if q <= 1:
        value = {"nearest": round(r), "up": math.ceil(r), "down": math.floor(r)}[rounding]
        return int(min(max(value, 1), full))
    steps = r / q
    k = {"nearest": math.floor(steps + 0.5), "up": math.ceil(steps - 1e-9), "down": math.floor(steps + 1e-9)}[rounding]
    return int(min(max(k * q, q), full))


def quantize(raw: Tuple[float, ...], full: Tuple[int, ...], q: int, rounding: str = "nearest") -> Tuple[int, ...]:
    return tuple(quantize_rank(r, q, f, rounding) for r, f in zip(raw, full))


def select(info: LayerInfo, method: str, selection: str, weight: Optional[np.ndarray] = None,
           **options) -> Tuple[float, ...]:
    """Raw ranks from the named selector (``options`` are the PlanConfig fields it reads)."""
    if method in METHOD_SELECTORS:
        return METHOD_SELECTORS[method](info, selection, weight=weight, **options)
    if selection not in SELECTORS:
        raise KeyError(f"no rank selector {selection!r}; known: {sorted(SELECTORS)}")
    return SELECTORS[selection](info, method, weight=weight, **options)
