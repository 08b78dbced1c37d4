"""``mode="pareto"``'s measured check against the fixed modes at the same budget.

The front's latencies are additive per-layer estimates: a layer timed alone is not the same layer
inside the network (caches, fused neighbours, framework overhead per op), so a point estimated faster
than mode3 can measure slower. Before a point is returned it is therefore raced, whole network against
whole network, with the fixed modes that meet the same size budget:

1. the fixed modes whose estimated size meets the budget (within :data:`SIZE_SLACK`) are the
   references; the original, the references and the candidate are timed interleaved in every phase
   of the objective, and each is scored by its objective time (the phases' ratios weighted by the
   original's milliseconds);
2. the candidate is accepted when it is not slower than the fastest reference;
3. otherwise the next candidate is the least-drop point under the budget, still estimated more accurate
   than every reference, whose *estimated* latency is below the rejected one's by at least the measured
   gap (rejected minus reference: the estimate is off by a constant). When no point is that much faster,
   the estimates are off in scale rather than by a constant (MindSpore on the digits model: a pick
   estimated 0.04 slower than mode1 measured 0.15 slower; its per-layer programs understate what a
   decomposition saves inside the network), so the front's latency axis is calibrated on the networks
   measured so far (references and candidates): ``measured = a + s * estimated + c * decomposed layers``
   by least squares (:func:`calibration`; the count term from four measurements on), and the next
   candidate is the least-drop point it predicts faster than the fastest reference. Failing both, the
   least-drop point estimated faster at all. Up to :data:`ATTEMPTS` candidates, never one twice; when
   none is accepted the first (least drop) point is kept and the plan says so.

Every attempt (estimated and measured) is recorded in ``meta.pareto.race``.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import pareto as P
from ..latency import parse_phase

ATTEMPTS = 4
SIZE_SLACK = 1.02
MIN_ESTIMATE_GAIN = 1e-6


def references(fixed: Dict[str, List[int]], tables, base_ms: float, base_size: float,
               budget: float) -> Dict[str, List[int]]:
    """The fixed modes meeting the size budget (estimated), one per distinct layer selection."""
    out, seen = {}, set()
    for mode, index in fixed.items():
        p = P.estimate(tables, index, base_ms, base_size)
        if 1.0 / p.params_ratio * SIZE_SLACK >= budget and tuple(index) not in seen:
            seen.add(tuple(index))
            out[mode] = index
    return out


def objective_time(ratios: Dict[str, float], base: Dict[str, float]) -> float:
    """The phases' ratios weighted by the original's milliseconds (1.0 = as fast as the original)."""
    total = sum(base.values())
    return sum(ratios[k] * base[k] for k in base) / total


def race_timer(backend, model, input_shape, device: str, phases: Sequence[str], threads=None, repeat: int = 5,
               num_classes: Optional[int] = None) -> Callable:
    """``time(plans) -> (base_ms {phase: ms}, [{phase: ratio} per plan])``: the original and every plan's
    network timed interleaved (random factor weights: only their speed matters)."""
    from .timing import measure_latency, with_plan

    def run(plans):
        variants = [with_plan(backend, model, plan) for plan in plans]
        base, out = {}, [dict() for _ in plans]
        for key in phases:
            phase, batch = parse_phase(key)
            shape = (batch,) + tuple(input_shape[1:])
            res = measure_latency(backend, [model] + variants, shape, device, phase, warmup=1, repeat=repeat,
                                  threads=threads, num_classes=num_classes if phase == "train" else None)
            base[key] = res[0].median_ms
            for d, r in zip(out, res[1:]):
                d[key] = float(r.ratio)
        return base, out
    return run


def decomposed_count(index: Sequence[int]) -> int:
    """Layers a subset decomposes (option 0 of every table is ``none``)."""
    return sum(1 for j in index if j != 0)


def calibration(records: Sequence[Tuple[float, int, float]]) -> Optional[Dict[str, float]]:
    """The front's latency axis fitted to measured networks: ``{"a", "s", "c"}`` of
    ``measured = a + s * estimated + c * decomposed layers`` by least squares over ``(estimated, decomposed
    layers, measured)`` records.

    The count term (a cost or saving the same for every decomposed layer inside the network: framework
    overhead per op, a slow original kernel) is fitted only from four records whose design has full
    rank; otherwise ``c = 0`` and a line is fitted through two or more different estimates. None when
    neither is possible or the slope is not positive (a point estimated slower must be predicted slower).
    """
    e = np.asarray([r[0] for r in records], dtype=np.float64)
    n = np.asarray([r[1] for r in records], dtype=np.float64)
    m = np.asarray([r[2] for r in records], dtype=np.float64)
    if len(records) < 2 or np.ptp(e) <= MIN_ESTIMATE_GAIN:
        return None
    full = np.column_stack([np.ones_like(e), e, n])
    if len(records) >= 4 and np.linalg.matrix_rank(full) == 3:
        (a, slope, c), *_ = np.linalg.lstsq(full, m, rcond=None)
        if slope > 0:
            return {"a": float(a), "s": float(slope), "c": float(c)}
    slope, a = np.polyfit(e, m, 1)
    return {"a": float(a), "s": float(slope), "c": 0.0} if slope > 0 else None


def predicted(fit: Dict[str, float], point: P.Point) -> float:
    """A point's objective time predicted by a :func:`calibration` fit."""
    return fit["a"] + fit["s"] * point.latency_ratio + fit["c"] * decomposed_count(point.index)


def race(front: Sequence[P.Point], first: P.Point, feasible: Callable[[P.Point], bool],
         refs: Dict[str, List[int]], to_plan: Callable, timer: Callable, log=None, max_drop: float = float("inf"),
         ref_estimates: Optional[Dict[str, float]] = None):
    """Race ``first`` (then estimated-faster points) against the reference modes; see the module docstring.

    ``max_drop``: the replacements must stay estimated more accurate than this (the references' least
    estimated drop: a point that gives up that advantage no longer beats them). ``ref_estimates``: the
    references' estimated latency ratios (their measurements join the calibration's records).
    Returns ``(point, ratios of the point, record)``.
    """
    say = log or (lambda line: None)
    ref_plans = {mode: to_plan(index) for mode, index in refs.items()}
    ref_estimates = ref_estimates or {}
    tried: List[dict] = []
    records: List[Tuple[float, int, float]] = []
    done = set()
    point, best_ref, ref_score = first, None, None
    chosen = (first, None)
    for attempt in range(ATTEMPTS):
        names = list(ref_plans) if best_ref is None else [best_ref]
        base, ratios = timer([ref_plans[m] for m in names] + [to_plan(point.index)])
        scores = {m: objective_time(r, base) for m, r in zip(names, ratios)}
        if best_ref is None:
            best_ref = min(scores, key=scores.get)
        ref_score = scores[best_ref]
        mine = objective_time(ratios[-1], base)
        records += [(ref_estimates[m], decomposed_count(refs[m]), scores[m]) for m in names if m in ref_estimates]
        records.append((point.latency_ratio, decomposed_count(point.index), mine))
        done.add(point.index)
        tried.append({"drop_estimated": round(point.drop, 6), "latency_estimated": round(point.latency_ratio, 5),
                      "layers": decomposed_count(point.index),
                      "size_ratio": round(point.params_ratio, 5), "measured": round(mine, 4),
                      "ratios": {k: round(v, 4) for k, v in ratios[-1].items()},
                      "reference": best_ref, "reference_measured": round(ref_score, 4),
                      "reference_ratios": {k: round(v, 4) for k, v in ratios[names.index(best_ref)].items()}})
        say(f"  pareto check {attempt + 1}/{ATTEMPTS}: estimated drop {point.drop:.4f}, latency "
            f"{point.latency_ratio:.3f}x (estimated) / {mine:.3f}x (measured) against {best_ref} {ref_score:.3f}x")
        if attempt == 0:
            chosen = (point, ratios[-1])
        if mine <= ref_score:
            return point, ratios[-1], {"accepted": attempt + 1, "attempts": tried}
        untried = [p for p in front if feasible(p) and p.drop < max_drop and p.index not in done]
        faster = [p for p in untried if p.latency_ratio < point.latency_ratio - MIN_ESTIMATE_GAIN]
        cap = point.latency_ratio - (mine - ref_score)       # the measured gap, moved onto the estimate
        pool, rule = [p for p in faster if p.latency_ratio < cap], "gap"
        fit = calibration(records) if not pool else None
        if fit is not None:
            pool, rule = [p for p in untried if predicted(fit, p) < ref_score - MIN_ESTIMATE_GAIN], "calibrated"
            tried[-1]["calibration"] = {k: round(v, 5) for k, v in fit.items()}
        if not pool:
            pool, rule = faster, "faster"
        if not pool:
            break
        tried[-1]["next_by"] = rule
        point = min(pool, key=lambda p: (p.drop, p.latency_ratio, p.params))
    say(f"  pareto: no point under the budget measured faster than {best_ref}; keeping the least-drop point")
    return chosen[0], chosen[1], {"accepted": None, "attempts": tried}
