"""``mode="pareto"``: sensitivity-based search for the layers and ranks to decompose (seed 003,
generalised to ranks), for any backend. The numerics are :mod:`lrd_core.pareto`.

1. Candidates: the layers ``mode="pareto"`` selects (auto's set, with include/exclude), each at the
   PR ranks of ``pareto_ratios`` (quantized like any plan).
2. A cheap proxy, the layer's relative output error on the calibration data (weight-space error
   without calibration), drops candidates above ``pareto_max_error`` before any evaluation.
3. Sensitivity: ``evaluate(model) -> metric`` (higher is better) with only that layer replaced by its
   chain (data-aware with ``data_aware=True``), swapped in and out of the model in place.
4. Latency and size gains: per-layer times from the auto search's profiler (disk cache, each layer
   shape timed once, ranks sampled sparsely and interpolated), the whole model timed once per phase.
5. The additive Pareto front over (accuracy drop, latency ratio, size), the pick under ``budget``
   (``budget_kind`` params / macs: reduction at least; latency: speed-up at least), verified with a
   real evaluation and a whole-network timing; estimated vs measured numbers go to ``meta.pareto``
   with the front and the fixed modes' additive estimates (for the plot).
6. With a params / MACs budget the pick is raced, whole network against whole network, with the fixed
   modes meeting the same budget, and replaced by an estimated-faster point when it measures slower
   (:mod:`.pareto_race`; ``verify=False`` skips it); the attempts go to ``meta.pareto.race``.
"""
from __future__ import annotations

import time
from typing import Dict, List, Tuple

import numpy as np

from .. import pareto as P
from ..aware_config import pareto_ratios
from ..config import PlanConfig
from ..cost import decomposed_cost, layer_params
from ..errors import ConfigError
from ..factorize import factorize_layer
from ..factorize.data_aware import error_curve
from ..factorize.threads import blas_threads
from ..latency import objective_phases
from ..modes import FIXED_MODES, MODES
from ..plan import LayerPlan, Plan
from ..planner import make_plan, select_layers
from ..sparse_timing import ladder_times
from . import calibration as K
from .model import layer_infos
from .state import count_params

FRONT_RESOLUTION = (1e-4, 1e-3, 1e-3)
MAX_FRONT_POINTS = 400


def _candidates(infos, cfg: PlanConfig, weights) -> Dict[str, List[Tuple[str, Tuple[int, ...]]]]:
    """``{layer: [(method, ranks) per pareto ratio]}`` (PR ranks, quantized, de-duplicated)."""
    chosen = select_layers(infos, cfg)
    eligible = sorted(i.name for i in infos if chosen[i.name] and not i.is_grouped and not i.unsupported)
    if not eligible:
        raise ConfigError("mode 'pareto' found no layer to decompose (check include/exclude)")
    out: Dict[str, List[Tuple[str, Tuple[int, ...]]]] = {}
    for ratio in pareto_ratios(cfg):
        d = cfg.to_dict()
        d.update(mode=None, include=eligible, exclude=[], rank_selection="pr", ratio=ratio, budget=None,
                 budget_kind="params", data_aware=False, sequential=False)
        for lp in make_plan(infos, PlanConfig.from_dict(d), weights=weights).decomposed():
            if lp.method in ("svd", "tucker2") and (lp.method, lp.ranks) not in out.setdefault(lp.name, []):
                out[lp.name].append((lp.method, tuple(lp.ranks)))
    return {k: v for k, v in out.items() if v}


class _Chains:
    """Factor chains of candidate options (data-aware from statistics, else weight-space), memoised."""

    def __init__(self, infos, cfg: PlanConfig, weights, biases, stats):
        self.by_name = {i.name: i for i in infos}
        self.cfg, self.weights, self.biases, self.stats, self.memo = cfg, weights, biases, stats, {}

    def __call__(self, name: str, method: str, ranks):
        return self.with_report(name, method, ranks)[0]

    def with_report(self, name: str, method: str, ranks):
        """``(chain, report)``; the report (data-aware only, else None) as :func:`factorize_data_aware` gives it."""
        key = (name, method, tuple(ranks))
        if key not in self.memo:
            info, w, b = self.by_name[name], self.weights[name], self.biases[name]
            stats = self.stats.get(name)
            with blas_threads(stats.dim if stats is not None else info.in_channels):
                base = factorize_layer(info, method, ranks, w, b, tucker_iters=self.cfg.tucker_iters)
                if self.cfg.data_aware:
                    from ..factorize.aware import factorize_data_aware
                    self.memo[key] = factorize_data_aware(info, method, ranks, w, b, stats, floor=self.cfg.floor,
                                                          weight_space=base, tucker_iters=self.cfg.tucker_iters)
                else:
                    self.memo[key] = (base, None)
        return self.memo[key]


def _swapper(backend, model, chains: _Chains, evaluate):
    """``fn({name: Choice}) -> metric``: the choices' chains swapped in, evaluated, swapped back."""
    layers = dict(backend.named_layers(model))

    def run(selection):
        swapped = []
        try:
            for name, c in selection.items():
                backend.replace(model, name, backend.build(chains(name, c.method, c.ranks), like=layers[name]))
                swapped.append(name)
            return evaluate(model)
        finally:
            for name in swapped:
                backend.replace(model, name, layers[name])
    return run


def _proxy(info, method, ranks, weight, stats) -> float:
    cov = stats.cov if stats is not None else np.eye(info.in_channels)
    with blas_threads(len(cov)):
        return float(error_curve(method, weight, cov, [ranks], floor=0.0 if stats is None else None,
                                 name=info.name)[0])


def _model_ms(backend, model, input_shape, cfg: PlanConfig, phases, threads) -> float:
    from .timing import measure_latency
    from ..latency import parse_phase

    total = 0.0
    for phase_key in phases:
        phase, batch = parse_phase(phase_key)
        shape = (batch,) + tuple(input_shape[1:])
        total += measure_latency(backend, model, shape, cfg.device, mode=phase, repeat=5, threads=threads).median_ms
    return total


def _budget(cfg: PlanConfig) -> Tuple[str, float]:
    """The pick's kind and bound: a latency budget is a speed-up, a params / MACs budget a reduction."""
    if cfg.budget_kind == "latency":
        return "latency", 1.0 / cfg.budget
    return "params", cfg.budget


def _race(backend, model, input_shape, cfg: PlanConfig, infos, tables, front, point, base_ms, base_size, phases,
          options):
    """The pick raced against the fixed modes at the same size budget (:mod:`.pareto_race`)."""
    from . import pareto_race as R

    refs = R.references(fixed_indices(infos, tables, cfg), tables, base_ms, base_size, cfg.budget)
    if not refs:
        return point, None, None
    finals = [i for i in infos if i.role.is_final_dense]
    timer = R.race_timer(backend, model, input_shape, cfg.device, phases, options.get("threads"),
                         num_classes=finals[0].out_channels if finals else None)
    kind, bound = _budget(cfg)
    ok = P.PICKS[kind][0]

    def to_plan(index):
        chosen = {t.name: t.options[j] for t, j in zip(tables, index) if t.options[j].method != "none"}
        return _plan(infos, cfg, chosen, tables, input_shape, backend.name)
    estimates = {mode: P.estimate(tables, index, base_ms, base_size) for mode, index in refs.items()}
    max_drop = min(e.drop for e in estimates.values())
    return R.race(front, point, lambda p: ok(p, bound), refs, to_plan, timer, options.get("log"), max_drop=max_drop,
                  ref_estimates={mode: e.latency_ratio for mode, e in estimates.items()})


def pareto_plan(backend, model, input_shape, cfg: PlanConfig, calibration, evaluate, progress, options) -> Plan:
    """The ``mode="pareto"`` plan (see the module docstring); ``options`` carries the timing keywords."""
    if evaluate is None or not callable(evaluate):
        raise ConfigError("mode 'pareto' measures each layer's sensitivity with evaluate=callable(model) -> metric "
                          "(higher is better, e.g. accuracy on held-out data); CLI: --evaluation ...")
    t0 = time.perf_counter()
    infos = layer_infos(backend, model, tuple(input_shape))
    layers = dict(backend.named_layers(model))
    weights = {n: backend.weight(l) for n, l in layers.items()}
    biases = {n: backend.bias(l) for n, l in layers.items()}
    cands = _candidates(infos, cfg, weights)
    by_name = {i.name: i for i in infos}
    cal = None
    if calibration is not None:
        batches = K.to_batches(backend, calibration, input_shape, cfg.calibration_batches)
        cal = K.statistics(backend, model, [by_name[n] for n in cands], batches, cfg.calibration_memory, progress,
                           options.get("calibration_cache", True))
    stats = cal.stats if cal is not None else {}
    # latency tables (sparse ranks, interpolated) and the whole model once per phase
    from .timing import profiler
    prof = profiler(backend, cfg.device, options.get("threads"), options.get("cache_path"),
                    options.get("use_cache", True), options.get("log"))
    phases = objective_phases(cfg.objective, cfg.profile_batch)
    size_kind = "macs" if cfg.budget_kind == "macs" else "params"
    try:
        choices: Dict[str, List[P.Choice]] = {}
        for name, opts in cands.items():
            info = by_name[name]
            base_ms, ms = ladder_times(prof, info, opts[0][0], [r for _, r in opts], phases)
            before = layer_params(info) if size_kind == "params" else decomposed_cost(info, "none", None)[1]
            choices[name] = []
            for (method, ranks), t in zip(opts, ms):
                p, m = decomposed_cost(info, method, ranks)
                size = p if size_kind == "params" else m
                choices[name].append(P.Choice(method, ranks, 0.0, t - base_ms, size - before,
                                              _proxy(info, method, ranks, weights[name], stats.get(name))))
    finally:
        prof.cache.save()
    base_ms = _model_ms(backend, model, input_shape, cfg, phases, options.get("threads"))
    base_size = (count_params(backend, model) if size_kind == "params"
                 else sum(decomposed_cost(i, "none", None)[1] for i in infos))
    chains = _Chains(infos, cfg, weights, biases, stats)
    run = _swapper(backend, model, chains, evaluate)
    baseline = P._metric(evaluate(model))[0]
    tables = P.measure_sensitivity(choices, run, baseline=baseline, max_proxy=cfg.pareto_max_error)
    evaluations = sum(len(t.options) - 1 for t in tables)
    front = P.pareto_front(tables, base_ms, base_size, resolution=FRONT_RESOLUTION)
    kind, bound = _budget(cfg)
    point = P.pick(front, bound, kind)
    ratios, race = None, None
    if cfg.verify and cfg.budget_kind != "latency":     # measured against the fixed modes at the same size
        point, ratios, race = _race(backend, model, input_shape, cfg, infos, tables, front, point, base_ms,
                                    base_size, phases, options)
    selection = point.selection(tables)
    plan = _plan(infos, cfg, selection, tables, input_shape, backend.name)
    measured = _verify(backend, model, plan, run, selection, baseline, input_shape, cfg, phases, options, ratios)
    plan.meta["pareto"] = {
        "baseline": baseline, "budget": cfg.budget, "budget_kind": cfg.budget_kind, "size": size_kind,
        "phases": phases, "base_latency_ms": round(base_ms, 4), "base_size": base_size, "evaluations": evaluations,
        "estimated": {"drop": point.drop, "latency_ratio": point.latency_ratio, "size_ratio": point.params_ratio},
        "measured": measured, "front": _front_rows(front),
        "fixed_modes": _fixed_modes(infos, tables, cfg, base_ms, base_size),
        "tables": {t.name: [{"option": c.label(), "drop": round(c.drop, 6), "latency_ms": round(c.latency, 4),
                             "size": c.params, "proxy": None if c.proxy is None else round(c.proxy, 5)}
                            for c in t.options[1:]] for t in tables},
        "race": race,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if cal is not None:
        plan.meta["calibration"] = dict(cal.meta, weights=cal.weights, layers=sorted(cal.stats))
        if cfg.data_aware:
            _attach_chains(plan, cal, chains, cfg)
    return plan


def _plan(infos, cfg: PlanConfig, selection: Dict[str, P.Choice], tables, input_shape, framework) -> Plan:
    chosen = select_layers(infos, cfg)
    drops = {t.name: t for t in tables}
    layers = []
    for info in infos:
        lp = LayerPlan(info=info, selected=bool(chosen[info.name]), params_before=layer_params(info),
                       macs_before=decomposed_cost(info, "none", None)[1])
        lp.params_after, lp.macs_after = lp.params_before, lp.macs_before
        c = selection.get(info.name)
        if c is not None:
            lp.method, lp.ranks = c.method, tuple(c.ranks)
            lp.params_after, lp.macs_after = decomposed_cost(info, c.method, c.ranks)
            lp.note = f"pareto: metric drop {c.drop:+.4f} alone, latency {c.latency:+.3f} ms"
        elif info.name in drops:
            lp.reason = "pareto: not on the chosen point of the front"
        else:
            lp.reason = "not selected by mode pareto" if not chosen[info.name] else "pareto: no candidate rank"
        layers.append(lp)
    return Plan(config=cfg, layers=layers, meta={"framework": framework, "input_shape": list(input_shape)})


def _verify(backend, model, plan: Plan, run, selection, baseline, input_shape, cfg, phases, options,
            ratios=None) -> dict:
    """The chosen plan evaluated for real and the whole network timed against the original (unless the
    race against the fixed modes has timed it already: ``ratios``)."""
    from .timing import model_verifier

    metric = P._metric(run(selection))[0]
    if ratios is not None:
        return {"metric": metric, "drop": baseline - metric,
                "latency_ratios": {k: round(float(v), 4) for k, v in ratios.items()}}
    ratios = {}
    if plan.decomposed():
        verify = model_verifier(backend, model, input_shape, cfg.device, phases, options.get("threads"))
        ratios = {k: round(float(v), 4) for k, v in verify(plan).items()}
    return {"metric": metric, "drop": baseline - metric, "latency_ratios": ratios}


def _front_rows(front) -> List[List[float]]:
    step = max(1, len(front) // MAX_FRONT_POINTS)
    return [[round(p.drop, 6), round(p.latency_ratio, 5), round(p.params_ratio, 5)] for p in front[::step]]


def _fixed_modes(infos, tables, cfg: PlanConfig, base_ms, base_size) -> Dict[str, dict]:
    """Additive estimates of the fixed modes at ``cfg.ratio`` (the layers a mode selects, at the PR rank of
    ``ratio`` where that is one of their candidates)."""
    out = {}
    for mode, index in fixed_indices(infos, tables, cfg).items():
        p = P.estimate(tables, index, base_ms, base_size)
        out[mode] = {"drop": p.drop, "latency_ratio": p.latency_ratio, "size_ratio": p.params_ratio,
                     "layers": sum(1 for j in index if j)}
    return out


def fixed_indices(infos, tables, cfg: PlanConfig) -> Dict[str, List[int]]:
    """``{mode: option index per table}`` of every fixed mode that decomposes a candidate layer."""
    by_name = {i.name: i for i in infos}
    target = {}
    d = cfg.to_dict()
    d.update(mode=None, include=[t.name for t in tables], exclude=[], rank_selection="pr", budget=None,
             budget_kind="params", data_aware=False, sequential=False)
    for lp in make_plan(infos, PlanConfig.from_dict(d), weights=None).decomposed():
        target[lp.name] = (lp.method, tuple(lp.ranks))
    out = {}
    for mode in FIXED_MODES:
        index = []
        for t in tables:
            want = target.get(t.name) if MODES[mode](by_name[t.name]) else None
            j = next((k for k, c in enumerate(t.options) if want and (c.method, tuple(c.ranks)) == want), 0)
            index.append(j)
        if any(index):
            out[mode] = index
    return out


def _attach_chains(plan: Plan, cal, chains: _Chains, cfg) -> None:
    """Mark the chosen layers data-aware with their reports; keep their chains for ``compress``."""
    from .aware import _mark, _signature

    reports = {}
    for lp in plan.decomposed():
        subs, reports[lp.name] = chains.with_report(lp.name, lp.method, lp.ranks)
        cal.chains[lp.name] = (_signature(lp, cfg)[1:], subs)
    _mark(plan, cal, reports)
    plan.calibration = cal
