"""CP-3 / CP-4 (with CPD-EPC) and basis convolutions as registered factorizations of a plan.

Registers ``cp3``, ``cp4`` and ``basis`` in :data:`lrd_core.factorize.METHODS` (built from a plan's
ranks and options), their zero-weight chains in :data:`SKELETONS`, the full kernel of a chain in
:data:`FOLDS`, and their rank rules in :data:`lrd_core.ranks.METHOD_FULL_RANKS` /
:data:`lrd_core.ranks.METHOD_SELECTORS`.

A CP layer's plan entry carries the CPD's report (relative kernel error and sensitivity before and
after EPC), so the CPD runs when the plan is made; :func:`cp_layer` keeps the last results in a small
cache keyed by the kernel's bytes and the options, so compressing right after planning does not run
the same (deterministic) CPD twice.
"""
from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import ranks as R
from ..errors import RankError
from ..layers import LayerInfo, SubLayer
from .basis import basis_skeleton, factorize_planned, fold_basis, select_basis_rank
from .cp import CP_METHODS, cp_skeleton, factorize_cp, fold_cp, max_cp_rank, select_cp_rank

CONV_METHODS = ("tucker2", "cp3", "cp4", "basis")     #: what ``conv_method`` may name for KxK convs
CACHE_SIZE = 64

SKELETONS: Dict[str, Callable[..., List[SubLayer]]] = {
    "cp3": lambda info, ranks, dtype=np.float32: cp_skeleton(info, "cp3", int(ranks[0]), dtype),
    "cp4": lambda info, ranks, dtype=np.float32: cp_skeleton(info, "cp4", int(ranks[0]), dtype),
    "basis": lambda info, ranks, dtype=np.float32: basis_skeleton(info, ranks, dtype),
}

_CACHE: "OrderedDict[tuple, Tuple[List[SubLayer], dict]]" = OrderedDict()


def _digest(array) -> str:
    a = np.ascontiguousarray(array)
    return hashlib.sha1(a.view(np.uint8)).hexdigest() + str(a.dtype) + str(a.shape)


def cp_layer(info: LayerInfo, method: str, weight: np.ndarray, bias=None, rank: int = 1, epc: bool = False,
             cp_iters: int = 100, epc_iters: int = 50, seed: int = 0) -> Tuple[List[SubLayer], dict]:
    """``(subs, report)`` of the CP-3 / CP-4 chain of one layer (see :func:`lrd_core.factorize.cp.cp3`).

    Results are cached by kernel bytes, geometry and options (copies are returned; the bias is the
    one given here).
    """
    key = (method, int(rank), bool(epc), int(cp_iters), int(epc_iters), int(seed), info.name, info.kernel,
           info.stride, info.padding, info.dilation, info.groups, _digest(weight))
    if key not in _CACHE:
        subs, report = factorize_cp(info, method, weight, None, int(rank), epc=epc, n_iter=cp_iters,
                                    epc_iter=epc_iters, seed=seed)
        _CACHE[key] = (subs, report)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    subs, report = copy.deepcopy(_CACHE[key])
    if bias is not None:
        subs[-1].bias = np.asarray(bias, subs[-1].weight.dtype).copy()
    return subs, report


def _cp_method(method: str):
    def run(info: LayerInfo, weight, bias, ranks, epc: bool = False, cp_iters: int = 100, epc_iters: int = 50,
            seed: int = 0, **_):
        return cp_layer(info, method, weight, bias, ranks[0], epc, cp_iters, epc_iters, seed)[0]
    run.__name__ = f"_{method}_layer"
    return run


def _basis_method(info: LayerInfo, weight, bias, ranks, basis_init: str = "svd", **_):
    return factorize_planned(info, weight, bias, ranks, init=basis_init)


def fold(method: str, subs: Sequence[SubLayer]) -> np.ndarray:
    """The full kernel (float64, native layout) a chain of ``method`` computes."""
    if method in CP_METHODS:
        return fold_cp(subs)
    if method == "basis":
        return fold_basis(subs).weight
    from . import compose
    return compose(subs)


# ------------------------------------------------------------------------------------ ranks
def _cp_selector(method: str):
    def select(info: LayerInfo, selection: str, weight=None, **options):
        return select_cp_rank(info, method, selection, weight=weight, **options)
    return select


def manual_ranks(info: LayerInfo, method: str, spec) -> Optional[Tuple[int, ...]]:
    """A manual rank spec as the ranks of ``method`` (None: the method has no rule of its own)."""
    if method in CP_METHODS:
        if isinstance(spec, tuple):
            raise RankError(f"layer {info.name} is decomposed by {method} and takes one rank R, got {spec}")
        return (int(spec),)
    if method == "basis":
        return (int(spec),) if not isinstance(spec, tuple) else tuple(int(v) for v in spec)
    return None


def check_ranks(info: LayerInfo, method: str, ranks: Sequence[int]) -> None:
    """RankError for a rank of ``method`` outside what the layer allows (CP: [1, max]; basis: C' <= Cout,
    pairs <= Cout with two basis filters)."""
    if method in CP_METHODS:
        top = max_cp_rank(info, method)
        if not 1 <= ranks[0] <= top:
            raise RankError(f"layer {info.name}: {method} rank {ranks[0]} is outside [1, {top}] (at {top} the chain "
                            f"has as many parameters as the {info.in_channels}->{info.out_channels} layer); use at "
                            f"most {top}")
    elif method == "basis":
        c_out = info.out_channels
        if not 1 <= ranks[0] <= c_out:
            raise RankError(f"layer {info.name}: basis count {ranks[0]} is outside [1, {c_out}] (Cout); use at most "
                            f"{c_out} basis filters")
        if len(ranks) > 1 and (not 0 <= ranks[1] <= c_out or (ranks[1] and ranks[0] < 2)):
            raise RankError(f"layer {info.name}: {ranks[1]} basis pairs need 0 <= pairs <= {c_out} and at least two "
                            f"basis filters, got {ranks[0]}")


def register() -> None:
    """Put the methods, skeletons and rank rules into the registries of :mod:`lrd_core.factorize` and
    :mod:`lrd_core.ranks`."""
    from . import METHODS

    for method in CP_METHODS:
        METHODS[method] = _cp_method(method)
        R.METHOD_FULL_RANKS[method] = (lambda m: lambda info: (max_cp_rank(info, m),))(method)
        R.METHOD_SELECTORS[method] = _cp_selector(method)
    METHODS["basis"] = _basis_method
    R.METHOD_FULL_RANKS["basis"] = lambda info: (info.out_channels,)
    R.METHOD_SELECTORS["basis"] = lambda info, selection, weight=None, **o: select_basis_rank(info, selection,
                                                                                              weight, **o)


# ------------------------------------------------------------------------------------ plans
def attach_cp_report(lp, cfg, weight, explicit: bool = False):
    """Run the CPD of a planned CP layer and store its report as ``lp.cp`` (no-op for other methods or
    without the weight). A CPD that fails is the layer's skip reason, or an error when the layer was named
    explicitly (include / ranks)."""
    from ..errors import DecompositionError

    if lp.method not in CP_METHODS or weight is None:
        return lp
    try:
        lp.cp = cp_layer(lp.info, lp.method, weight, None, lp.ranks[0], cfg.epc, cfg.cp_iters, cfg.epc_iters)[1]
    except DecompositionError as exc:
        if explicit:
            raise
        lp.method, lp.ranks, lp.reason, lp.cp = "none", None, str(exc), None
        lp.params_after, lp.macs_after = lp.params_before, lp.macs_before
    return lp
