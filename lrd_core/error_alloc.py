"""``rank_selection="error"``: ranks allocated across layers by the least output error under a
model-level budget (framework-free; the adapters supply statistics and, for a latency budget, timings).

Every candidate layer (chosen by the mode, SVD or Tucker-2) offers its ``none`` option and the ranks
of :func:`lrd_core.allocate.rank_ladder` on the grid of ``rank_multiple`` (8 when quantization is off);
each option's normalised error is its squared relative output error on the calibration data
(:func:`lrd_core.factorize.data_aware.error_curve`; without calibration data the weight-space error,
i.e. the identity covariance). :func:`lrd_core.allocate.allocate` then spends the budget greedily
where it costs the least error. The final dense layer is never compressed beyond
``final_dense_ratio``; under ``mode="auto"`` only layers measured faster are candidates, at ranks no
larger than the fastest ones measured.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .allocate import Option, allocate, layer_options, rank_ladder
from .cost import decomposed_cost
from .errors import ConfigError
from .factorize.data_aware import error_curve
from .factorize.threads import blas_threads
from .layers import LayerInfo
from .plan import LayerPlan, Plan

ERROR_METHODS = ("svd", "tucker2")
DEFAULT_STEP = 8
#: ``latency(info, method, [ranks]) -> (original_ms, [ms])`` for a latency budget
Latency = Callable[[LayerInfo, str, Sequence[Tuple[int, ...]]], Tuple[float, List[float]]]


def candidates(plan: Plan, methods: Mapping[str, str], caps: Optional[Mapping[str, Tuple[int, ...]]] = None
               ) -> List[LayerPlan]:
    """Layers the allocation may change: selected, eligible, SVD/Tucker-2 (``methods[name]``) and, with
    ``caps`` (mode auto), decomposed by the base plan."""
    out = []
    for lp in plan.layers:
        if not lp.selected or lp.info.is_grouped or lp.info.unsupported or methods.get(lp.name) not in ERROR_METHODS:
            continue
        if caps is not None and lp.name not in caps:
            continue
        out.append(lp)
    return out


def ladder(info: LayerInfo, method: str, q: int, cap: Optional[Tuple[int, ...]] = None) -> List[Tuple[int, ...]]:
    """Rank options of a layer, largest first, on the grid ``q`` (at most ``cap`` elementwise)."""
    ranks = rank_ladder(info, method, q if q > 1 else DEFAULT_STEP)
    if cap is not None:
        ranks = [r for r in ranks if all(a <= b for a, b in zip(r, cap))]
    return ranks


def _cov(info: LayerInfo, method: str, stats) -> np.ndarray:
    if stats is not None:
        return stats.cov
    return np.eye(info.in_channels)              # weight-space: every input direction counts alike


def layer_table(lp: LayerPlan, method: str, weight: np.ndarray, stats, q: int, floor: Optional[float],
                max_ratio: Optional[float], cap=None, latency: Optional[Latency] = None) -> List[Option]:
    """The ``none`` option then ``method`` at every ladder rank that shrinks the layer, with errors."""
    ranks = ladder(lp.info, method, q, cap)
    if not ranks:
        return [Option("none", (), 0.0, lp.params_before, lp.macs_before)]
    cov = _cov(lp.info, method, stats)
    with blas_threads(len(cov)):
        errors = error_curve(method, weight, cov, ranks, floor=floor if stats is not None else 0.0, name=lp.name)
    lat = base = None
    if latency is not None:
        base, lat = latency(lp.info, method, ranks)
    return layer_options(lp.info, method, ranks, errors, lat, base, max_ratio)


def allocate_plan(plan: Plan, cfg, methods: Mapping[str, str], weights: Mapping[str, np.ndarray],
                  stats: Optional[Mapping] = None, fixed: float = 0.0, caps=None,
                  latency: Optional[Latency] = None) -> Plan:
    """The plan with ranks of the candidate layers allocated under ``cfg.budget`` / ``cfg.budget_kind``.

    ``fixed``: parameters (or MACs) outside the conv/dense layers. Non-candidate layers keep their
    decisions in ``plan`` (their cost counts as fixed). A latency budget counts the candidate layers'
    summed time only.

    Raises
    ------
    ConfigError
        No candidate, or a budget the smallest ranks cannot reach.
    """
    kind = cfg.budget_kind
    if kind == "latency" and latency is None:
        raise ConfigError("a latency budget needs the layer timing tables: plan through an adapter on a device")
    cands = candidates(plan, methods, caps)
    if not cands:
        raise ConfigError("rank_selection='error' found no SVD/Tucker-2 layer to allocate ranks to "
                          "(check mode, include/exclude and, with mode auto, that some layer is faster)")
    names = {lp.name for lp in cands}
    tables: Dict[str, List[Option]] = {}
    for lp in cands:
        final = lp.info.role.is_final_dense and cfg.final_dense_ratio is not None
        tables[lp.name] = layer_table(lp, methods[lp.name], weights[lp.name], (stats or {}).get(lp.name),
                                      cfg.rank_multiple, cfg.floor, cfg.final_dense_ratio if final else None,
                                      (caps or {}).get(lp.name), latency)
    others = [lp for lp in plan.layers if lp.name not in names]
    if kind == "latency":
        outside, original = 0.0, None
    else:
        key = "params" if kind == "params" else "macs"
        outside = fixed + sum(getattr(lp, f"{key}_after") for lp in others)
        original = fixed + sum(getattr(lp, f"{key}_before") for lp in plan.layers)
    alloc = allocate(tables, cfg.budget, kind, fixed=outside, original=original)
    layers = [_apply(lp, alloc.choice[lp.name], stats is not None) if lp.name in names else lp for lp in plan.layers]
    out = Plan(config=cfg, layers=layers, meta=dict(plan.meta))
    out.meta["error_allocation"] = {"budget": cfg.budget, "budget_kind": kind, "reached": round(alloc.ratio, 4),
                                    "error": round(alloc.error, 6), "candidates": len(cands), "moves": len(alloc.trace),
                                    "error_kind": "output" if stats is not None else "weight"}
    return out


def _apply(lp: LayerPlan, option: Option, data: bool) -> LayerPlan:
    what = "output" if data else "weight-space"
    if option.method == "none":
        return replace(lp, method="none", ranks=None, params_after=lp.params_before, macs_after=lp.macs_before,
                       reason="error allocation: kept whole (the budget is met at less error elsewhere)", note=None)
    params, macs = decomposed_cost(lp.info, option.method, option.ranks)
    return replace(lp, method=option.method, ranks=tuple(option.ranks), params_after=params, macs_after=macs,
                   reason=None, note=f"error allocation: relative {what} error {np.sqrt(option.error):.3f}")
