"""Factorizations: a layer's weight -> a list of :class:`~lrd_core.layers.SubLayer` in native layout.

``METHODS`` maps a method name to ``fn(info, weight, bias, ranks, **options) -> [SubLayer]``
(``svd``, ``tucker2``, and from :mod:`.cp_basis` ``cp3``, ``cp4``, ``basis``);
``skeleton`` gives the same chain with zero weights (to rebuild a compressed net from its plan).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

from ..layers import LayerInfo, SubLayer
from .svd import svd, svd_factors
from .tucker2 import tucker2, tucker2_factors

__all__ = ["svd", "tucker2", "svd_factors", "tucker2_factors", "METHODS", "factorize_layer",
           "skeleton", "compose", "register_method", "fold"]

METHODS: Dict[str, Callable[..., List[SubLayer]]] = {}


def register_method(name: str):
    def wrap(fn):
        METHODS[name] = fn
        return fn
    return wrap


@register_method("svd")
def _svd_layer(info: LayerInfo, weight, bias, ranks, **_):
    return svd(weight, ranks[0], bias=bias, stride=info.stride, padding=info.padding, dilation=info.dilation)


@register_method("tucker2")
def _tucker2_layer(info: LayerInfo, weight, bias, ranks, tucker_iters: int = 4, **_):
    return tucker2(weight, ranks, bias=bias, stride=info.stride, padding=info.padding,
                   dilation=info.dilation, n_iter=tucker_iters)


def factorize_layer(info: LayerInfo, method: str, ranks: Sequence[int], weight: np.ndarray,
                    bias=None, **options) -> List[SubLayer]:
    """Decompose one layer's live weight by the named method."""
    if method not in METHODS:
        raise KeyError(f"no factorization {method!r}; known: {sorted(METHODS)}")
    return METHODS[method](info, weight, bias, tuple(ranks), **options)


def skeleton(info: LayerInfo, method: str, ranks: Sequence[int], dtype=np.float32) -> List[SubLayer]:
    """The sublayers ``method`` would produce for ``info`` at ``ranks``, with zero weights."""
    if dtype == "shape":
        dtype = np.float32
    if method in SKELETONS:
        return SKELETONS[method](info, ranks, dtype)
    kind = info.kind
    bias = np.zeros(info.out_channels, dtype) if info.has_bias else None
    o, i = info.out_channels, info.in_channels
    if method == "svd":
        r = int(ranks[0])
        shp = (lambda a, b: (a, b, 1, 1)) if kind == "conv2d" else (lambda a, b: (a, b))
        return [SubLayer(kind, np.zeros(shp(r, i), dtype), None, info.stride, info.padding, info.dilation, 1, "first"),
                SubLayer(kind, np.zeros(shp(o, r), dtype), bias, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last")]
    if method == "tucker2":
        r_out, r_in = int(ranks[0]), int(ranks[1])
        kh, kw = info.kernel
        return [SubLayer("conv2d", np.zeros((r_in, i, 1, 1), dtype), None, (1, 1), (0, 0, 0, 0), (1, 1), 1, "first"),
                SubLayer("conv2d", np.zeros((r_out, r_in, kh, kw), dtype), None, info.stride, info.padding,
                         info.dilation, 1, "core"),
                SubLayer("conv2d", np.zeros((o, r_out, 1, 1), dtype), bias, (1, 1), (0, 0, 0, 0), (1, 1), 1, "last")]
    raise KeyError(f"no factorization {method!r}; known: {sorted(METHODS)}")


def compose(subs: Sequence[SubLayer]) -> np.ndarray:
    """Multiply a chain of linear sublayers back into one weight (at most one spatial kernel).

    Used to check reconstructions and to re-decompose an already factorized layer.
    """
    out = None
    for sub in subs:
        w = np.asarray(sub.weight, dtype=np.float64)
        if out is None:
            out = w
        elif w.ndim == 2 or w.shape[2:] == (1, 1):        # channel mixing after: W' = w @ out
            out = np.tensordot(w.reshape(w.shape[0], w.shape[1]), out, axes=([1], [0]))
        elif out.ndim == 4 and out.shape[2:] == (1, 1):    # spatial kernel after a pointwise chain
            out = np.tensordot(w, out[:, :, 0, 0], axes=([1], [0])).transpose(0, 3, 1, 2)
        else:
            raise ValueError("compose handles chains with a single spatial kernel")
    return out


from .cp_basis import SKELETONS, fold, register as _register_cp_basis  # noqa: E402

_register_cp_basis()
