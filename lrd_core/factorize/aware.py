"""Data-aware variants of the plan's factorizations, by method name.

A plan layer with ``data_aware`` set keeps its method name (``svd`` / ``tucker2``) and its factor
chain (the same :func:`~lrd_core.factorize.skeleton`), so rebuilding, export, freezing and
multi-stage compression treat it like any other; only the factor weights come from
:mod:`lrd_core.factorize.data_aware` and the layer's calibration statistics
(:class:`lrd_core.calibrate.LayerStats`).

``DATA_AWARE`` maps a method to ``fn(info, weight, bias, ranks, stats, floor=..., tucker_iters=...)
-> (subs, report)``.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..calibrate import LayerStats, check_samples
from ..errors import CalibrationError, UnsupportedLayerError
from ..layers import LayerInfo, SubLayer
from .data_aware import data_aware_tucker2, output_error, whitened_svd
from .threads import SMALL, blas_threads

DATA_AWARE: Dict[str, Callable[..., Tuple[List[SubLayer], dict]]] = {}
#: ALS sweeps of data-aware Tucker-2 (at most; ``tucker_iters`` lower caps it): on the trained digits
#: ResNet-18 the first two sweeps lower the relative output error by 1.0-1.4% and four more by 0.6%.
DATA_AWARE_ITERS = 2
REPORT_KEYS = ("stats", "rows", "floor", "floor_kind", "floored", "output_error", "weight_space_error")


def register_data_aware(name: str):
    def wrap(fn):
        DATA_AWARE[name] = fn
        return fn
    return wrap


def _geometry(info: LayerInfo) -> dict:
    return dict(stride=info.stride, padding=info.padding, dilation=info.dilation)


@register_data_aware("svd")
def _svd(info: LayerInfo, weight, bias, ranks, stats: LayerStats, floor=None, **_):
    return whitened_svd(weight, int(ranks[0]), stats.cov, bias=bias, floor=floor, name=info.name, **_geometry(info))


@register_data_aware("tucker2")
def _tucker2(info: LayerInfo, weight, bias, ranks, stats: LayerStats, floor=None, tucker_iters: int = 3, **_):
    return data_aware_tucker2(weight, tuple(int(r) for r in ranks), stats.cov, bias=bias, floor=floor,
                              n_iter=min(int(tucker_iters), DATA_AWARE_ITERS), name=info.name, **_geometry(info))


def factorize_data_aware(info: LayerInfo, method: str, ranks: Sequence[int], weight: np.ndarray, bias,
                         stats: Optional[LayerStats], floor: Optional[float] = None,
                         weight_space: Optional[List[SubLayer]] = None, small_blas: bool = False,
                         **options) -> Tuple[List[SubLayer], dict]:
    """Decompose one layer minimising its output error under ``stats``; returns the chain and the
    report the plan keeps (``REPORT_KEYS``; ``weight_space_error`` when ``weight_space`` — the
    weight-space chain at the same ranks — is given). ``small_blas``: one BLAS thread for a layer of
    fewer than 1024 input dimensions (:mod:`lrd_core.factorize.threads`).

    Raises
    ------
    CalibrationError
        No statistics for the layer, or fewer calibration vectors than the largest rank.
    """
    if method not in DATA_AWARE:
        raise UnsupportedLayerError(f"layer {info.name}: method {method!r} has no data-aware variant; "
                                    f"data-aware methods: {sorted(DATA_AWARE)}")
    if stats is None:
        raise CalibrationError(f"layer {info.name} is planned data-aware but has no calibration statistics; "
                               f"pass calibration=... (CLI: --calibration)")
    check_samples(stats, max(int(r) for r in ranks))
    with blas_threads(stats.dim if small_blas else SMALL):
        subs, raw = DATA_AWARE[method](info, weight, bias, ranks, stats, floor=floor, **options)
    report = {"stats": stats.kind, "rows": int(stats.rows), "floor": raw["floor"], "floor_kind": raw["floor_kind"],
              "floored": raw["floored"], "output_error": round(float(raw["output_error"]), 6)}
    if weight_space is not None:
        from . import compose
        report["weight_space_error"] = round(output_error(weight, compose(weight_space), stats.cov), 6)
    return subs, report
