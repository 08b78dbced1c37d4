"""Checks of the accuracy-aware plan options (calibration, data-aware factorization, global rank
allocation by output error, Pareto search), called from :meth:`lrd_core.PlanConfig.validate`.

Fields (all in :class:`~lrd_core.PlanConfig`):

``data_aware``
    Factorize SVD / Tucker-2 layers data-aware (:mod:`lrd_core.factorize.aware`): needs calibration.
``calibration_batches``
    Use only the first N calibration batches (None: all given).
``calibration_memory``
    Cap (MiB) of the kept float64 statistics; the largest patch statistics fall back to channel ones.
``floor``
    Covariance floor relative to the largest eigenvalue (None: :data:`~lrd_core.factorize.data_aware.DEFAULT_FLOOR`).
``sequential``
    Take each layer's statistics with the earlier layers already compressed.
``rank_selection="error"``
    Allocate ranks across layers by the least output error under ``budget`` / ``budget_kind``
    (``params``, ``macs`` or ``latency`` from the timing tables).
``mode="pareto"``
    Sensitivity-based layer/rank subset search; candidate ranks are the PR ranks at ``pareto_ratios``
    (empty: ``ratio`` x (0.75, 1, 1.5)); candidates whose output error exceeds ``pareto_max_error``
    are not evaluated.
"""
from __future__ import annotations

import math

from .errors import ConfigError
from .validate import integer, number

ERROR_BUDGET_KINDS = ("params", "macs", "latency")
DEFAULT_PARETO_SCALES = (0.75, 1.0, 1.5)


def _bool(cfg, name: str) -> None:
    if not isinstance(getattr(cfg, name), bool):
        raise ConfigError(f"{name} must be true or false, got {getattr(cfg, name)!r}")


def validate(cfg) -> None:
    """Check and normalise the accuracy-aware fields of ``cfg`` in place.

    Raises
    ------
    ConfigError
        A value out of range, or an option combination that cannot work.
    """
    for name in ("data_aware", "sequential"):
        _bool(cfg, name)
    if cfg.calibration_batches is not None:
        cfg.calibration_batches = integer(cfg.calibration_batches, "calibration_batches", low=1)
    memory = number(cfg.calibration_memory, "calibration_memory")
    if not memory > 0:
        raise ConfigError(f"calibration_memory is a cap in MiB and must be > 0, got {cfg.calibration_memory!r}")
    if cfg.floor is not None:
        floor = number(cfg.floor, "floor")
        if not 0.0 <= floor <= 1.0:
            raise ConfigError(f"floor is relative to the largest covariance eigenvalue and must be in [0, 1], "
                              f"got {cfg.floor!r}")
    if cfg.sequential and not cfg.data_aware:
        raise ConfigError("sequential calibration takes each layer's statistics after the earlier layers are "
                          "compressed data-aware: set data_aware=True (CLI: --data-aware)")
    ratios = [number(r, "pareto_ratios entry") for r in (cfg.pareto_ratios or [])]
    if any(not (math.isfinite(r) and r > 1) for r in ratios):
        raise ConfigError(f"pareto_ratios are per-layer parameter reductions and must all be > 1, got {ratios}")
    cfg.pareto_ratios = ratios
    if not 0 < number(cfg.pareto_max_error, "pareto_max_error") <= 1:
        raise ConfigError(f"pareto_max_error is a relative output error in (0, 1], got {cfg.pareto_max_error!r}")
    error = cfg.rank_selection == "error"
    if (error or cfg.mode == "pareto") and cfg.budget is None:
        what = "rank_selection='error'" if error else "mode='pareto'"
        raise ConfigError(f"{what} needs a model-level budget: budget=X (original / compressed > 1) with "
                          f"budget_kind {', '.join(ERROR_BUDGET_KINDS)} (CLI: --budget X --budget-kind ...)")
    if cfg.budget_kind == "latency" and not (error or cfg.mode == "pareto"):
        raise ConfigError("budget_kind='latency' is read from the timing tables by rank_selection='error' or "
                          "mode='pareto'; mode 'auto' budgets are params or macs")
    if cfg.mode == "pareto" and error:
        raise ConfigError("mode='pareto' chooses layers and ranks itself; use rank_selection pr with it")
    if cfg.mode == "pareto" and cfg.sequential:
        raise ConfigError("mode='pareto' measures each layer alone on the original network; sequential calibration "
                          "does not apply to it")


def pareto_ratios(cfg) -> list:
    """The per-layer PR ratios whose ranks are the Pareto search's candidates."""
    return list(cfg.pareto_ratios) or [round(cfg.ratio * s, 6) for s in DEFAULT_PARETO_SCALES
                                       if cfg.ratio * s > 1]
