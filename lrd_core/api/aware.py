"""Accuracy-aware plans for any backend: data-aware factorization, ``rank_selection="error"`` and
``mode="pareto"`` (:func:`aware_plan`), and the statistics ``compress`` needs for a data-aware plan
(:func:`plan_statistics`).

A data-aware plan is planned *and* factorized here: every data-aware layer's chain is computed to
report its output error and floor in the plan (``lp.calibration``), and kept on the in-memory plan
(``plan.calibration``) so that ``compress`` in the same process reuses it. A plan read back from JSON
finds its statistics in the disk cache (``meta.calibration.key``) or from ``compress(...,
calibration=data)``.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple

from .. import calibrate as C
from ..config import PlanConfig
from ..conv_methods import method_for
from ..cost import layer_params
from ..errors import CalibrationError, ConfigError, MismatchError
from ..factorize import factorize_layer
from ..factorize.aware import DATA_AWARE, factorize_data_aware
from ..factorize.threads import blas_threads
from ..layers import LayerInfo, SubLayer
from ..plan import LayerPlan, Plan
from ..planner import make_plan
from . import calibration as K
from .model import layer_infos
from .state import count_params

#: keywords of ``plan`` that are not PlanConfig fields
RUNTIME = ("calibration_cache", "cache_path", "use_cache", "threads", "log", "seed")
AWARE_FIELDS = ("data_aware", "sequential", "calibration_batches", "calibration_memory", "floor")


def needs_aware(options: dict, calibration=None, evaluate=None) -> bool:
    """Whether ``plan`` keywords ask for the accuracy-aware planner."""
    return (calibration is not None or evaluate is not None or bool(options.get("data_aware"))
            or options.get("rank_selection") == "error" or options.get("mode") == "pareto")


def _base_options(options: dict, **changes) -> dict:
    out = {k: v for k, v in options.items() if k not in RUNTIME}
    out.update(data_aware=False, sequential=False, **changes)
    return out


def _signature(lp: LayerPlan, cfg: PlanConfig) -> tuple:
    return (lp.name, lp.method, tuple(int(r) for r in lp.ranks), cfg.floor, cfg.tucker_iters)


def factorize_aware(lp: LayerPlan, cfg: PlanConfig, weight, bias, stats) -> Tuple[tuple, List[SubLayer], dict]:
    """``(signature, chain, report)`` of one data-aware layer (report with the weight-space error)."""
    with blas_threads(stats.dim if stats is not None else 0):
        base = factorize_layer(lp.info, lp.method, lp.ranks, weight, bias, tucker_iters=cfg.tucker_iters)
        subs, report = factorize_data_aware(lp.info, lp.method, lp.ranks, weight, bias, stats, floor=cfg.floor,
                                            weight_space=base, tucker_iters=cfg.tucker_iters)
    return _signature(lp, cfg)[1:], subs, report


def _aware_layers(plan: Plan) -> List[LayerPlan]:
    return [lp for lp in plan.decomposed() if lp.method in DATA_AWARE and not lp.info.is_grouped]


def _mark(plan: Plan, cal: K.Calibration, reports: Dict[str, dict]) -> None:
    for lp in plan.layers:
        if lp.name not in reports:
            continue
        rep = reports[lp.name]
        lp.data_aware, lp.calibration = True, rep
        ws = rep.get("weight_space_error")
        lp.note = (f"data-aware ({rep['stats']} statistics): output error {rep['output_error']:.3f}"
                   + ("" if ws is None else f" (weight-space {ws:.3f})"))
    for lp in plan.decomposed():
        if lp.name not in reports and plan.config.data_aware:
            lp.note = f"{lp.method} has no data-aware variant: weight-space factors"


def _calibrate(backend, model, plan: Plan, infos: Sequence[LayerInfo], batches, cfg: PlanConfig, weights, biases,
               progress, cache, existing: Optional[K.Calibration] = None) -> Tuple[K.Calibration, Dict[str, dict]]:
    """Statistics of ``infos`` (``existing`` when it holds them all) and, with ``cfg.data_aware``, the
    data-aware chains of the plan."""
    todo = {lp.name: lp for lp in _aware_layers(plan)} if cfg.data_aware else {}
    if cfg.sequential and todo:
        reports: Dict[str, dict] = {}

        def chain(name, stats):
            sig, subs, rep = factorize_aware(todo[name], cfg, weights[name], biases[name], stats)
            reports[name] = rep
            return sig, subs
        extra = {"plan": [list(map(str, _signature(lp, cfg))) for lp in todo.values()]}
        by_name = {i.name: i for i in infos}
        cal = K.statistics(backend, model, [by_name[n] for n in todo], batches, cfg.calibration_memory, progress,
                           cache, sequential=chain, extra_key=extra)
        if cal.meta.get("cache") == "hit":          # chains not computed on a hit: factorize now
            for name in todo:
                sig, subs = chain(name, cal.stats[name])
                cal.chains[name] = (sig, subs)
        return cal, reports
    if existing is not None and {i.name for i in infos} <= set(existing.stats):
        cal = existing
    else:
        cal = K.statistics(backend, model, infos, batches, cfg.calibration_memory, progress, cache,
                           ranks={n: max(int(r) for r in lp.ranks) for n, lp in todo.items()})
    reports = {}
    for name, lp in todo.items():
        sig, subs, reports[name] = factorize_aware(lp, cfg, weights[name], biases[name], cal.stats[name])
        cal.chains[name] = (sig, subs)
    return cal, reports


def aware_plan(backend, model, input_shape, calibration=None, evaluate=None, progress: Optional[bool] = None,
               **options) -> Plan:
    """Plan with calibration data: ``data_aware``, ``rank_selection="error"``, ``mode="pareto"``.

    Keywords: the :class:`~lrd_core.PlanConfig` fields plus ``calibration_cache`` (False: no disk
    cache; a directory), ``evaluate`` (``mode="pareto"``: ``evaluate(model) -> metric``, higher is
    better) and the timing keywords of ``mode="auto"`` (``cache_path``, ``use_cache``, ``threads``,
    ``log``).
    """
    cfg = PlanConfig.from_kwargs(**{k: v for k, v in options.items() if k not in RUNTIME})
    cache = options.get("calibration_cache", True)
    uses = cfg.data_aware or cfg.rank_selection == "error" or cfg.mode == "pareto"
    if calibration is not None and not uses:
        raise ConfigError("calibration data is used by data_aware=True, rank_selection='error' or mode='pareto'; "
                          "set one of them (CLI: --data-aware, --rank-selection error, --mode pareto)")
    if cfg.data_aware and calibration is None:
        raise CalibrationError("data_aware=True minimises each layer's output error on calibration data: pass "
                               "calibration=<batches (N, C, H, W) float32 or a dataset> (CLI: --calibration ...)")
    if cfg.mode == "pareto":
        from .pareto import pareto_plan
        return pareto_plan(backend, model, input_shape, cfg, calibration, evaluate, progress, options)
    if evaluate is not None:
        raise ConfigError("evaluate= is the sensitivity callback of mode='pareto'")
    infos = layer_infos(backend, model, tuple(input_shape))
    layers = dict(backend.named_layers(model))
    weights = {n: backend.weight(l) for n, l in layers.items()}
    biases = {n: backend.bias(l) for n, l in layers.items()}
    batches = None if calibration is None else K.to_batches(backend, calibration, input_shape,
                                                            cfg.calibration_batches)
    caps = None
    if cfg.mode == "auto":
        from .timing import auto_plan
        runtime = {k: options[k] for k in ("cache_path", "use_cache", "threads", "log") if k in options}
        error = cfg.rank_selection == "error"
        base = auto_plan(backend, model, input_shape, **runtime, **_base_options(
            options, rank_selection="pr" if error else cfg.rank_selection, budget=None if error else cfg.budget,
            budget_kind="params" if error else cfg.budget_kind))
        if error:
            caps = {lp.name: lp.ranks for lp in base.decomposed()}
    else:
        base = make_plan(infos, PlanConfig.from_kwargs(**_base_options(
            options, rank_selection="pr" if cfg.rank_selection == "error" else cfg.rank_selection)),
            weights=weights, meta={"framework": backend.name, "input_shape": list(input_shape)})
    plan = Plan(config=cfg, layers=base.layers, meta=dict(base.meta))
    methods = {i.name: method_for(i, cfg) for i in infos}
    need = []
    if cfg.rank_selection == "error" and batches is not None:
        from ..error_alloc import candidates
        need = [lp.name for lp in candidates(plan, methods, caps)]
    by_name = {i.name: i for i in plan_infos(plan)}
    cal, stats = None, None
    if need:
        cal = K.statistics(backend, model, [by_name[n] for n in need], batches, cfg.calibration_memory, progress,
                           cache, save=False)
        stats = cal.stats
    if cfg.rank_selection == "error":
        plan = _allocate(backend, model, plan, cfg, methods, weights, stats, caps, options)
    if cfg.data_aware:
        wanted = sorted({lp.name for lp in _aware_layers(plan)} | set(need))
        if not wanted:
            raise ConfigError("data_aware=True but the plan decomposes no SVD/Tucker-2 layer")
        t0, before = time.perf_counter(), cal
        cal, reports = _calibrate(backend, model, plan, [by_name[n] for n in wanted], batches, cfg, weights, biases,
                                  progress, cache, cal)
        spent = time.perf_counter() - t0 - (cal.meta.get("seconds", 0.0) if cal is not before else 0.0)
        cal.meta["seconds_factorize"] = round(spent, 3)
        _mark(plan, cal, reports)
    if cal is not None:
        K.save_calibration(cal, cache)
        plan.meta["calibration"] = dict(cal.meta, weights=cal.weights, layers=sorted(cal.stats),
                                        floor=_floor_of(cfg))
        plan.calibration = cal
    return plan


def _floor_of(cfg: PlanConfig) -> float:
    from ..factorize.data_aware import DEFAULT_FLOOR
    return DEFAULT_FLOOR if cfg.floor is None else float(cfg.floor)


def plan_infos(plan: Plan) -> List[LayerInfo]:
    return [lp.info for lp in plan.layers]


def _allocate(backend, model, plan: Plan, cfg: PlanConfig, methods, weights, stats, caps, options) -> Plan:
    from ..error_alloc import allocate_plan

    fixed = count_params(backend, model) - sum(layer_params(lp.info) for lp in plan.layers)
    latency = None
    if cfg.budget_kind == "latency":
        latency = _ladder_timer(backend, cfg, options)
    return allocate_plan(plan, cfg, methods, weights, stats, fixed=fixed if cfg.budget_kind == "params" else 0,
                         caps=caps, latency=latency)


def _ladder_timer(backend, cfg: PlanConfig, options):
    from ..latency import objective_phases
    from ..sparse_timing import ladder_times
    from .timing import profiler

    prof = profiler(backend, cfg.device, options.get("threads"), options.get("cache_path"),
                    options.get("use_cache", True), options.get("log"))
    phases = objective_phases(cfg.objective, cfg.profile_batch)

    def timer(info, method, ranks):
        try:
            return ladder_times(prof, info, method, ranks, phases)
        finally:
            prof.cache.save()
    return timer


# ---------------------------------------------------------------------------- statistics for compress
def plan_statistics(backend, model, plan: Plan, calibration=None, progress: Optional[bool] = None,
                    cache=True) -> K.Calibration:
    """The calibration a data-aware ``plan`` was made with, for ``model``: the plan's in-memory one when
    it was taken on these weights, else recomputed from ``calibration`` data (cache first), else the
    disk cache entry named in the plan.

    Raises
    ------
    CalibrationError
        No statistics can be found (pass the calibration data).
    MismatchError
        The model's weights differ from the ones the plan was calibrated on.
    """
    meta = plan.meta.get("calibration") or {}
    digest = K.weights_digest(backend, model)
    cal = plan.calibration
    if isinstance(cal, K.Calibration) and cal.weights == digest:
        return cal
    cfg = plan.config
    if calibration is not None:
        names = meta.get("layers") or [lp.name for lp in _aware_layers(plan) if lp.data_aware]
        by_name = {lp.name: lp.info for lp in plan.layers}
        batches = K.to_batches(backend, calibration, plan.meta.get("input_shape") or _shape_of(plan),
                               cfg.calibration_batches)
        if cfg.sequential:
            todo = {lp.name: lp for lp in plan.decomposed() if lp.data_aware}
            layers = dict(backend.named_layers(model))

            def chain(name, stats):
                lp = todo[name]
                sig, subs, _ = factorize_aware(lp, cfg, backend.weight(layers[name]), backend.bias(layers[name]), stats)
                return sig, subs
            extra = {"plan": [list(map(str, _signature(lp, cfg))) for lp in todo.values()]}
            return K.statistics(backend, model, [by_name[n] for n in todo], batches, cfg.calibration_memory,
                                progress, cache, sequential=chain, extra_key=extra)
        ranks = {lp.name: max(int(r) for r in lp.ranks) for lp in plan.decomposed() if lp.data_aware}
        return K.statistics(backend, model, [by_name[n] for n in names], batches, cfg.calibration_memory,
                            progress, cache, ranks=ranks)
    if meta.get("weights") and meta["weights"] != digest:
        raise MismatchError("the model's weights differ from the ones this data-aware plan was calibrated on; load "
                            "the same checkpoint, or pass calibration=... to recalibrate (CLI: --calibration)")
    hit = C.load_cached(meta["key"], cache if isinstance(cache, str) else None) if meta.get("key") else None
    if hit is None:
        raise CalibrationError("this plan has data-aware layers and their calibration statistics are not cached "
                               "here: pass the calibration data again (compress(..., calibration=data); CLI: "
                               "--calibration ...)")
    return K.Calibration(hit, meta["key"], digest, dict(meta, cache="hit"))


def _shape_of(plan: Plan):
    raise CalibrationError("the plan has no meta.input_shape; re-plan it with lrd plan")


def plan_chains(backend, model, plan: Plan, calibration=None):
    """``(stats, chains)`` for :func:`lrd_core.planner.decompose` of a data-aware plan on ``model``."""
    cal = plan_statistics(backend, model, plan, calibration)
    done = {}
    for lp in plan.decomposed():
        if lp.data_aware:
            got = cal.chain(_signature(lp, plan.config))
            if got is not None:
                done[lp.name] = got
    return cal.stats, done
