"""Hardware-aware plan (``mode="auto"``): choose layers and ranks from measured latencies.

Pure logic fed by a layer timer (see :mod:`lrd_core.profile`); no framework is imported here.

1. Candidates are the layers the ``auto`` mode (vanilla's set) plus include/exclude select; the
   usual rank selector (PR / EVBMF / energy / manual) gives each an estimate, quantized to q.
2. Each candidate's original and its chain at ranks ``estimate + j*q`` (``|j| <= radius``) are timed
   side by side in every phase of the objective (inference at batch 1 and B, training step at B).
3. A layer is decomposed only if some rank is faster than the original by ``margin`` (on average
   over the phases, and in no phase slower by more than ``margin``); among the fastest ranks
   (within ``tie_tolerance``) the largest is kept, since latency is step-like in rank. Otherwise
   the layer stays and the plan records the measured ratios.
4. With a ``budget`` (model-level parameter or MAC reduction), further rank cuts and slower layers
   are bought where they cost the least time per saved parameter, never letting any phase's summed
   layer time exceed the original's; spare budget then goes back to larger ranks. Ranks further
   below the estimates are timed only when those around them cannot reach the budget.
5. An optional ``verify(plan)`` callback times the whole network; while it is slower than the
   original in any phase, the decompositions with the least measured gain are undone.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from hashlib import sha1
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import budget as B
from .config import PlanConfig
from .cost import decomposed_cost
from .errors import ConfigError
from .latency import objective_phases
from .latency_cache import layer_signature, variant_key
from .layers import LayerInfo
from .plan import LayerPlan, Plan
from .planner import exclusion_reason, make_plan, select_layers
from .profile import Profiler
from .ranks import full_ranks
from .reports import weight_error
from .search_methods import extra_options, refresh_reports

Verify = Callable[[Plan], Mapping[str, float]]
SEARCH_STEP = 8     # rank step of the search when rank quantization is off (q = 1)
WEIGHT_SELECTIONS = ("vbmf", "energy")     # rank selections that read the weights
MAX_EXTRA_STEPS = 6  # rank steps below the search radius tried to reach a budget


@dataclass
class Option:
    """One way to realise a layer: the original (``method == 'none'``) or a chain at ``ranks``."""

    method: str
    ranks: Optional[Tuple[int, ...]]
    params: int
    macs: int
    ms: Dict[str, float] = field(default_factory=dict)
    ratio: Dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return variant_key(self.method, self.ranks)


@dataclass
class Candidate:
    """A layer the search may decompose: its options (``options[0]`` is the original)."""

    plan: LayerPlan
    options: List[Option]
    choice: int = 0
    why: str = ""
    first_why: str = ""

    @property
    def chosen(self) -> Option:
        return self.options[self.choice]


def neighbourhood(info: LayerInfo, method: str, ranks: Sequence[int], q: int, radius: int,
                  reduce_only: bool = True) -> List[Tuple[int, ...]]:
    """Ranks ``estimate + j*step`` for ``|j| <= radius`` in ascending size.

    Ranks are multiples of ``q`` (8 when rank quantization is off) in [q, full]; the estimate is
    snapped to that grid first. Tucker-2 ranks move together, the wider mode in proportionally
    larger steps. With ``reduce_only`` ranks that would not shrink the layer are left out.
    """
    full = full_ranks(info, method)
    q = int(q) if q > 1 else SEARCH_STEP
    narrow = min(full)
    steps = [q * max(1, round(f / narrow)) for f in full]
    snapped = [min(max(q, round(r / q) * q), f) for r, f in zip(ranks, full)]
    original = decomposed_cost(info, "none", None)[0]
    out = []
    for j in range(-radius, radius + 1):
        r = tuple(int(min(max(b + j * s, min(q, f)), f)) for b, s, f in zip(snapped, steps, full))
        if r in out:
            continue
        if reduce_only and decomposed_cost(info, method, r)[0] >= original:
            continue
        out.append(r)
    return sorted(out, key=lambda r: (decomposed_cost(info, method, r)[0], r))


def _base_config(cfg: PlanConfig, chosen: Sequence[str]) -> PlanConfig:
    d = cfg.to_dict()
    d.update(mode=None, include=sorted(chosen), exclude=[])
    return PlanConfig.from_dict(d)


def candidates(layers: Sequence[LayerInfo], cfg: PlanConfig, weights=None) -> Tuple[Plan, List[Candidate]]:
    """The rank estimates (a plan as fixed modes would make it) and the options to time."""
    chosen = select_layers(layers, cfg)
    eligible = [l.name for l in layers if chosen[l.name] and not l.is_grouped]
    needs = weights if cfg.rank_selection in WEIGHT_SELECTIONS else None     # PR needs shapes only
    base = make_plan(layers, _base_config(cfg, eligible), weights=needs)
    for lp in base.layers:
        if not chosen[lp.name]:
            lp.selected, lp.reason = False, (exclusion_reason(lp.name, cfg, [l.name for l in layers])
                                             or "not selected by mode auto")
        elif lp.info.is_grouped:
            lp.selected, lp.reason = True, f"grouped/depthwise conv (groups={lp.info.groups}): SVD/Tucker-2 do not apply"
    out = []
    for lp in base.layers:
        if not lp.decomposed:
            continue
        original = Option("none", None, lp.params_before, lp.macs_before)
        opts = [original]
        for r in neighbourhood(lp.info, lp.method, lp.ranks, cfg.rank_multiple, cfg.search_radius,
                               cfg.skip_unreduced):
            p, m = decomposed_cost(lp.info, lp.method, r)
            opts.append(Option(lp.method, r, p, m))
        opts += extra_options(lp, cfg, weights)
        out.append(Candidate(lp, opts))
    return base, out


def profile(cands: Sequence[Candidate], profiler: Profiler, phases: Sequence[str]) -> None:
    """Fill every option's ``ms`` and ``ratio`` (layers of one shape are timed once)."""
    from .progress import bar

    groups: Dict[str, List[Candidate]] = {}
    for c in cands:
        groups.setdefault(layer_signature(c.plan.info), []).append(c)
    with bar(len(groups) * len(phases), "auto: timing layers", unit="layer") as pbar:
        for k, group in enumerate(groups.values(), 1):
            variants, seen = [], set()
            for c in group:
                for o in c.options[1:]:
                    if o.key not in seen:
                        seen.add(o.key)
                        variants.append((o.method, o.ranks))
            same = f" (+{len(group) - 1} of this shape)" if len(group) > 1 else ""
            profiler.label = f"[{k}/{len(groups)}] {group[0].plan.name}{same}"
            for phase in phases:
                pbar.set_postfix_str(f"{group[0].plan.name} {phase}", refresh=False)
                got = profiler.measure(group[0].plan.info, variants, phase)
                pbar.update(1)
                for c in group:
                    for o in c.options:
                        o.ms[phase], o.ratio[phase] = got[o.key]
    profiler.label = None


def extend_down(cands: Sequence[Candidate], cfg: PlanConfig, radius: int) -> int:
    """Add each candidate's ranks down to ``radius`` steps below its estimate; returns how many."""
    added = 0
    for c in cands:
        lp, have = c.plan, {o.ranks for o in c.options}
        lowest = min(o.params for o in c.options)
        for r in neighbourhood(lp.info, lp.method, lp.ranks, cfg.rank_multiple, radius, cfg.skip_unreduced):
            p, m = decomposed_cost(lp.info, lp.method, r)
            if r not in have and p < lowest:
                c.options.append(Option(lp.method, r, p, m))
                added += 1
    return added


def _meet_budget(cands, cfg: PlanConfig, phases, totals, profiler: Profiler, say) -> bool:
    """Meet the budget; when the ranks around the estimates cannot, time lower ranks (one step more
    per round, at most ``MAX_EXTRA_STEPS``) and try again."""
    met = B.meet_budget(cands, phases, totals, cfg.budget, cfg.budget_kind, cfg.tie_tolerance)
    for extra in range(1, MAX_EXTRA_STEPS + 1):
        if met:
            break
        if not extend_down(cands, cfg, cfg.search_radius + extra):
            break
        say(f"auto: budget {cfg.budget}x not reached; timing ranks {cfg.search_radius + extra} steps below the "
            f"estimates")
        profile(cands, profiler, phases)
        met = B.meet_budget(cands, phases, totals, cfg.budget, cfg.budget_kind, cfg.tie_tolerance)
    return met


def _fmt(o: Option, phases: Sequence[str]) -> str:
    return ", ".join(f"{p} {o.ratio[p]:.2f}x" for p in phases)


def faster(o: Option, phases: Sequence[str], margin: float) -> bool:
    """Faster than the original by ``margin`` on average over the phases, and slower in none of
    them by more than ``margin`` (a 1.03x training step beside 0.8x inference counts as faster)."""
    ratios = [o.ratio[p] for p in phases]
    return sum(ratios) / len(ratios) <= 1 - margin and max(ratios) <= 1 + margin


def choose_ranks(cands: Sequence[Candidate], phases: Sequence[str], margin: float, tie: float,
                 device: str) -> None:
    """Per layer: among the options :func:`faster` than the original, the fastest, and of the ranks
    within ``tie`` of it the largest; else keep the original and say why."""
    weights = B.phase_weights(cands, phases)
    for c in cands:
        cost = [B.cost(o, weights) for o in c.options]
        ok = [k for k, o in enumerate(c.options[1:], 1) if faster(o, phases, margin)]
        if not ok:
            best = min(range(1, len(c.options)), key=cost.__getitem__) if len(c.options) > 1 else None
            detail = f" (best {c.options[best].key}: {_fmt(c.options[best], phases)})" if best else ""
            c.choice, c.why = 0, f"auto: not faster on {device} by {margin:.0%}{detail}"
            c.first_why = c.why
            continue
        best = min(ok, key=cost.__getitem__)
        ties = [k for k in ok if cost[k] <= cost[best] + tie * cost[0]]
        c.choice = max(ties, key=lambda k: (c.options[k].params, k))
        c.why = f"auto: {c.chosen.key} {_fmt(c.chosen, phases)} of {len(c.options) - 1} ranks timed"
        c.first_why = c.why


def _layer_plan(c: Candidate) -> LayerPlan:
    o = c.chosen
    lp = replace(c.plan)
    if o.method == "none":
        lp.method, lp.ranks, lp.reason, lp.note = "none", None, c.why, None
        lp.params_after, lp.macs_after = lp.params_before, lp.macs_before
    else:
        lp.method, lp.ranks, lp.reason, lp.note = o.method, o.ranks, None, c.why
        lp.params_after, lp.macs_after = o.params, o.macs
    return lp


def assemble(base: Plan, cands: Sequence[Candidate], cfg: PlanConfig, meta: dict) -> Plan:
    """The final plan: candidates as chosen, every other layer as the base plan left it."""
    by_name = {c.plan.name: c for c in cands}
    layers = []
    for lp in base.layers:
        if lp.name in by_name:
            layers.append(_layer_plan(by_name[lp.name]))
        else:
            layers.append(replace(lp, method="none", ranks=None, params_after=lp.params_before,
                                  macs_after=lp.macs_before, reason=lp.reason or "auto: no rank to try"))
    return Plan(config=cfg, layers=layers, meta=dict(meta))


def search_plan(layers: Sequence[LayerInfo], config, profiler: Profiler, weights=None, meta=None,
                fixed_params: int = 0, fixed_macs: int = 0, verify: Optional[Verify] = None,
                log: Optional[Callable[[str], None]] = None) -> Plan:
    """Make the hardware-aware plan.

    Parameters
    ----------
    layers : list of LayerInfo
    config : PlanConfig or dict
        ``mode`` must be ``'auto'``; reads device, objective, profile_batch, margin, tie_tolerance,
        search_radius, budget, budget_kind besides the usual rank options.
    profiler : Profiler
        Cached layer timer of the target device.
    fixed_params, fixed_macs : int
        Parameters/MACs outside conv/dense layers (BatchNorm...), counted in the budget.
    verify : callable, optional
        ``verify(plan) -> {phase: model time ratio}`` measured on the whole network.
    """
    cfg = PlanConfig.from_dict(config) if isinstance(config, dict) else config
    if cfg.mode != "auto":
        raise ConfigError(f"search_plan makes mode 'auto' plans, got mode {cfg.mode!r}")
    phases = objective_phases(cfg.objective, cfg.profile_batch)
    say = log or (lambda _msg: None)
    base, cands = candidates(layers, cfg, weights)
    say(f"auto: timing {len(cands)} candidate layers x {len(phases)} phases on {cfg.device}")
    profile(cands, profiler, phases)
    choose_ranks(cands, phases, cfg.margin, cfg.tie_tolerance, cfg.device)
    totals = B.Totals.of(base, fixed_params, fixed_macs)
    report = {"device": cfg.device, "phases": phases, "budget": cfg.budget, "budget_kind": cfg.budget_kind,
              "rank_step": int(cfg.rank_multiple) if cfg.rank_multiple > 1 else SEARCH_STEP,
              "fast_only": B.summary(cands, totals, phases, cfg.budget_kind)}
    if cfg.budget is not None:
        report["budget_met"] = _meet_budget(cands, cfg, phases, totals, profiler, say)
    plan = assemble(base, cands, cfg, {**(meta or {}), "auto": report})
    if verify is not None:
        plan = _verified(plan, base, cands, cfg, verify, phases, say, profiler.cache)
    report["chosen"] = B.summary(cands, totals, phases, cfg.budget_kind)
    if cfg.budget is not None:
        report["budget_met"] = report["chosen"]["reduction"] >= cfg.budget * (1 - 1e-9)
    report["profile"] = profiler.stats()
    report["table"] = {c.plan.name: {o.key: {p: round(o.ratio[p], 4) for p in phases} for o in c.options[1:]}
                       for c in cands}
    if cfg.budget is not None and not report.get("budget_met"):
        say(f"auto: budget {cfg.budget}x {cfg.budget_kind} not met without slowing the network on "
            f"{cfg.device}; reached {report['chosen']['reduction']:.2f}x")
    return refresh_reports(_weight_errors(plan, base, cfg, weights), cfg, weights)


def _weight_errors(plan: Plan, base: Plan, cfg: PlanConfig, weights) -> Plan:
    """Each decomposed layer's weight error at the ranks chosen (computed once, for the chosen layers only)."""
    estimates = {lp.name: lp for lp in base.layers}
    for lp in plan.layers:
        if not lp.decomposed:
            lp.weight_error = None
            continue
        est = estimates.get(lp.name)
        if est is None or est.weight_error is None or (est.method, est.ranks) != (lp.method, lp.ranks):
            w = None if weights is None else weights.get(lp.name)
            lp.weight_error = weight_error(lp.method, lp.ranks, w, cfg.tucker_iters)
    return plan


def _verify_key(plan: Plan, phases: Sequence[str]) -> str:
    items = [(lp.name, layer_signature(lp.info), lp.method, list(lp.ranks or ())) for lp in plan.layers]
    digest = sha1(json.dumps([items, list(phases), plan.meta.get("input_shape")]).encode()).hexdigest()[:20]
    return f"network|{digest}"


def _cached_verify(plan: Plan, verify: Verify, cache, phases: Sequence[str]) -> Dict[str, float]:
    """Whole-network ratios, remembered in the latency cache (a repeated search skips the timing)."""
    key = _verify_key(plan, phases)
    entry = cache.get(key) if cache is not None else None
    if entry is not None and set(entry.get("ratios", {})) == set(phases):
        return dict(entry["ratios"])
    measured = {k: float(v) for k, v in verify(plan).items()}
    if cache is not None:
        cache.put(key, 0.0, None, ratios=measured)
    return measured


def _verified(plan: Plan, base: Plan, cands: Sequence[Candidate], cfg: PlanConfig, verify: Verify,
              phases: Sequence[str], say, cache=None) -> Plan:
    """Undo the least useful decompositions while the whole network measures slower than the original."""
    report = plan.meta["auto"]
    report["verify"] = []
    for round_ in range(cfg.verify_rounds + 1):
        if not any(c.choice for c in cands):
            break
        measured = _cached_verify(plan, verify, cache, phases)
        report["verify"].append({"decomposed": sum(bool(c.choice) for c in cands), "ratios": measured})
        say("auto: whole-network check " + ", ".join(f"{k} {v:.3f}x" for k, v in measured.items()))
        if all(v <= 1.0 for v in measured.values()):
            return plan
        active = sorted((c for c in cands if c.choice), key=lambda c: -max(c.chosen.ratio[p] for p in phases))
        drop = active if round_ == cfg.verify_rounds - 1 else active[:max(1, math.ceil(len(active) / 4))]
        for c in drop:
            c.choice, c.why = 0, "auto: undone, the whole network measured slower with it"
        plan = assemble(base, cands, cfg, plan.meta)
    return plan


def pick_best(rows: Sequence[Mapping], budget: Optional[float] = None, budget_key: str = "params_reduction",
              keys: Sequence[str] = ("infer_ratio", "train_ratio")) -> Optional[Mapping]:
    """Mode search: the row with the lowest mean time ratio among those reaching ``budget``."""
    ok = [r for r in rows if budget is None or r.get(budget_key, 0) >= budget - 1e-9]
    scored = [r for r in ok if all(r.get(k) is not None for k in keys)]
    if not scored:
        return None
    return min(scored, key=lambda r: sum(r[k] for k in keys) / len(keys))
