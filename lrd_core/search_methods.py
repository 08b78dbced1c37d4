"""More than one chain per layer in the hardware-aware search: CP-3 / CP-4 / basis beside Tucker-2.

``PlanConfig.auto_conv_methods`` names KxK factorizations timed beside ``conv_method``: each gets its own
rank estimate (the plan's rank selection; PR for manual ranks), quantized to q, and the ranks around it
(:func:`lrd_core.search.neighbourhood`); the search then keeps the fastest option of any method.
Depthwise convs (CP) are fast on some backends and slow on others, so they are measured, not assumed.
"""
from __future__ import annotations

from typing import List, Mapping, Optional

import numpy as np

from . import ranks as R
from .cost import decomposed_cost
from .factorize.cp_basis import attach_cp_report


def extra_options(lp, cfg, weights: Optional[Mapping[str, np.ndarray]] = None) -> List:
    """Options (:class:`lrd_core.search.Option`) of the methods in ``cfg.auto_conv_methods`` for one
    candidate (KxK convs only; the plan's own method is left out)."""
    from .search import Option, neighbourhood

    info = lp.info
    if info.kind != "conv2d" or info.is_pointwise:
        return []
    weight = None if weights is None else weights.get(info.name)
    selection = cfg.rank_selection if cfg.rank_selection != "manual" else "pr"
    if selection in ("vbmf", "energy") and weight is None:
        selection = "pr"
    out = []
    for method in cfg.auto_conv_methods:
        if method == lp.method:
            continue
        raw = R.select(info, method, selection, weight=weight, ratio=cfg.ratio, energy=cfg.energy,
                       vbmf_weakening=cfg.vbmf_weakening)
        full = R.full_ranks(info, method)
        estimate = R.quantize(raw, full, cfg.rank_multiple, cfg.rank_rounding)
        for ranks in neighbourhood(info, method, estimate, cfg.rank_multiple, cfg.search_radius,
                                   cfg.skip_unreduced):
            params, macs = decomposed_cost(info, method, ranks)
            out.append(Option(method, ranks, params, macs))
    return out


def refresh_reports(plan, cfg, weights: Optional[Mapping[str, np.ndarray]] = None):
    """CP reports for the CP layers the search chose (at the ranks chosen); none on other layers."""
    for lp in plan.layers:
        lp.cp = None
        if lp.decomposed and weights is not None:
            attach_cp_report(lp, cfg, weights.get(lp.name))
    return plan
