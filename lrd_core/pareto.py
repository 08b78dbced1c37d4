"""Sensitivity-based layer-subset search (Alekseev et al., seed 003, generalised to ranks).

1. :func:`measure_sensitivity`: for every layer and candidate rank, the metric drop when *only*
   that layer is decomposed, from a user evaluation callback (a linear number of evaluations);
   candidates whose cheap output-error proxy is too large are not evaluated at all.
2. Every subset (one option per layer, ``none`` included) is estimated additively: accuracy drop
   = sum of the single-layer drops, latency = base + sum of the per-layer latency deltas, params =
   base + sum of the parameter deltas.
3. :func:`pareto_front`: the exact Pareto front of all those subsets over (drop, latency ratio,
   params), without enumerating them: a dynamic programme over the layers keeps only the
   non-dominated partial sums (a partial sum dominated by another stays dominated whatever the
   remaining layers add), pruned by a sort-and-sweep 3-D dominance filter.
4. :func:`pick` the best accuracy under a budget; :func:`search` does 3-4 and verifies the pick
   with a real evaluation, reporting estimated against measured numbers.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Choice:
    """One option of a layer: ``none`` or ``method`` at ``ranks`` with its single-layer effects.

    ``drop`` is the metric drop when only this layer is changed; ``latency`` and ``params`` are
    deltas against the original model (negative = faster / smaller).
    """

    method: str = "none"
    ranks: Tuple[int, ...] = ()
    drop: float = 0.0
    latency: float = 0.0
    params: float = 0.0
    proxy: Optional[float] = None

    def label(self) -> str:
        return "none" if self.method == "none" else f"{self.method}:{'x'.join(map(str, self.ranks))}"


@dataclass
class LayerTable:
    """A layer's options (``none`` first by convention)."""

    name: str
    options: List[Choice] = field(default_factory=list)


@dataclass(frozen=True)
class Point:
    """An estimated subset: one option index per layer (in table order)."""

    drop: float
    latency_ratio: float
    params: float
    params_ratio: float
    index: Tuple[int, ...]

    def selection(self, tables: Sequence[LayerTable]) -> Dict[str, Choice]:
        """The decomposed layers of this subset: name -> choice (``none`` left out)."""
        out = {}
        for t, j in zip(tables, self.index):
            if t.options[j].method != "none":
                out[t.name] = t.options[j]
        return out


def _check(tables: Sequence[LayerTable], base_latency: float, base_params: float):
    if not base_latency > 0 or not base_params > 0:
        raise ConfigError(f"base latency and params must be > 0, got {base_latency}, {base_params}")
    for t in tables:
        if not t.options:
            raise ConfigError(f"layer {t.name!r} has no options; give it at least the 'none' option")


def estimate(tables: Sequence[LayerTable], index: Sequence[int], base_latency: float, base_params: float) -> Point:
    """Additive estimate of one subset."""
    _check(tables, base_latency, base_params)
    ch = [t.options[j] for t, j in zip(tables, index)]
    lat = base_latency + sum(c.latency for c in ch)
    par = base_params + sum(c.params for c in ch)
    return Point(float(sum(c.drop for c in ch)), lat / base_latency, par, par / base_params,
                 tuple(int(j) for j in index))


def nondominated(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` (n x 3, all minimised); of equal rows one
    is kept. Sort lexicographically, then sweep keeping a staircase of (2nd, 3rd) objectives."""
    order = np.lexsort((points[:, 2], points[:, 1], points[:, 0]))
    keys: List[float] = []        # 2nd objective, ascending
    vals: List[float] = []        # 3rd objective, strictly descending along keys
    keep = []
    for i in order:
        b, c = float(points[i, 1]), float(points[i, 2])
        pos = bisect.bisect_right(keys, b)
        if pos and vals[pos - 1] <= c:
            continue
        keep.append(i)
        if pos and keys[pos - 1] == b:
            pos -= 1
        end = pos
        while end < len(keys) and vals[end] >= c:
            end += 1
        keys[pos:end] = [b]
        vals[pos:end] = [c]
    return np.asarray(sorted(keep), dtype=int)


def pareto_front(tables: Sequence[LayerTable], base_latency: float, base_params: float,
                 resolution: Optional[Sequence[float]] = None) -> List[Point]:
    """Pareto front over (accuracy drop, latency ratio, params) of all additive subsets.

    Exact by default. The front of many layers with continuous numbers can hold 10^5 points (50
    layers x 3 ranks: ~10^5 points, ~10 s); ``resolution=(drop, latency_ratio, params_ratio)``
    compares points on that grid instead, which bounds the front's size and keeps every exact
    front point within ``len(tables) * resolution`` of a returned one.
    """
    _check(tables, base_latency, base_params)
    grid = None
    if resolution is not None:
        grid = np.asarray(resolution, dtype=np.float64) * np.array([1.0, base_latency, base_params])
        if grid.shape != (3,) or not np.all(grid > 0):
            raise ConfigError(f"resolution must be three positive numbers (drop, latency ratio, params ratio), "
                              f"got {resolution}")
    sums = np.zeros((1, 3))
    back: List[Tuple[np.ndarray, np.ndarray]] = []
    for t in tables:
        opt = np.array([[c.drop, c.latency, c.params] for c in t.options], dtype=np.float64)
        cand = (sums[:, None, :] + opt[None, :, :]).reshape(-1, 3)
        keep = nondominated(cand if grid is None else np.floor(cand / grid))
        parent, choice = np.divmod(keep, len(t.options))
        back.append((parent, choice))
        sums = cand[keep]
    points = []
    for i in range(len(sums)):
        index, row = [], i
        for parent, choice in reversed(back):
            index.append(int(choice[row]))
            row = int(parent[row])
        d, lat, par = sums[i]
        points.append(Point(float(d), float((base_latency + lat) / base_latency), float(base_params + par),
                            float((base_params + par) / base_params), tuple(reversed(index))))
    return sorted(points, key=lambda p: (p.drop, p.latency_ratio, p.params))


PICKS: Dict[str, Tuple[Callable[[Point, float], bool], Callable[[Point], tuple], str]] = {
    "latency": (lambda p, b: p.latency_ratio <= b + 1e-12, lambda p: (p.drop, p.latency_ratio, p.params),
                "latency ratio (compressed / original) at most"),
    "params": (lambda p, b: 1.0 / p.params_ratio >= b - 1e-12, lambda p: (p.drop, p.params, p.latency_ratio),
               "parameter reduction (original / compressed) at least"),
    "drop": (lambda p, b: p.drop <= b + 1e-12, lambda p: (p.latency_ratio, p.params, p.drop),
             "accuracy drop at most"),
}


def pick(front: Sequence[Point], budget: float, kind: str = "latency") -> Point:
    """The best point under a budget.

    ``kind="latency"``: latency ratio <= ``budget``, least drop. ``kind="params"``: parameter
    reduction ``original / compressed >= budget``, least drop. ``kind="drop"``: drop <= ``budget``,
    least latency ratio. Ties go to the faster, then the smaller model.
    """
    if kind not in PICKS:
        raise ConfigError(f"budget kind must be one of {sorted(PICKS)}, got {kind!r}")
    ok, key, text = PICKS[kind]
    feasible = [p for p in front if ok(p, budget)]
    if not feasible:
        raise ConfigError(f"no subset meets a {text} {budget:g}; the front spans latency ratios "
                          f"{min(p.latency_ratio for p in front):.3g}-{max(p.latency_ratio for p in front):.3g} and "
                          f"parameter reductions up to {max(1 / p.params_ratio for p in front):.3g}x")
    return min(feasible, key=key)


Evaluate = Callable[[Dict[str, Choice]], Union[float, Mapping[str, float]]]


def _metric(value) -> Tuple[float, Dict[str, float]]:
    if isinstance(value, Mapping):
        return float(value["metric"]), {k: float(v) for k, v in value.items()}
    return float(value), {"metric": float(value)}


def measure_sensitivity(candidates: Mapping[str, Sequence[Choice]], evaluate: Evaluate,
                        baseline: Optional[float] = None, max_proxy: Optional[float] = None) -> List[LayerTable]:
    """Single-layer drops: ``evaluate({name: choice})`` returns the metric (higher is better, or a
    mapping with ``"metric"``) with only that layer decomposed; ``evaluate({})`` is the baseline.

    Candidates whose ``proxy`` (e.g. relative output error) exceeds ``max_proxy`` are dropped
    unevaluated. Returns one table per layer, ``none`` first, in the order given.
    """
    base = _metric(evaluate({}))[0] if baseline is None else float(baseline)
    tables = []
    for name, cands in candidates.items():
        options = [Choice()]
        for c in cands:
            if c.method == "none" or (max_proxy is not None and c.proxy is not None and c.proxy > max_proxy):
                continue
            metric, _ = _metric(evaluate({name: c}))
            options.append(Choice(c.method, tuple(c.ranks), base - metric, c.latency, c.params, c.proxy))
        tables.append(LayerTable(name, options))
    return tables


def search(tables: Sequence[LayerTable], base_latency: float, base_params: float, budget: float,
           kind: str = "latency", evaluate: Optional[Evaluate] = None, baseline: Optional[float] = None) -> dict:
    """Front, pick under the budget, and (with ``evaluate``) the measured result of the pick.

    Returns ``{"front": [Point], "point": Point, "selection": {name: label}, "estimated": {...},
    "measured": {...} or None}``; measured ``drop`` is ``baseline - metric`` and any other numbers
    the callback returns (e.g. ``latency_ratio``) are passed through.
    """
    front = pareto_front(tables, base_latency, base_params)
    point = pick(front, budget, kind)
    selection = point.selection(tables)
    measured = None
    if evaluate is not None:
        base = _metric(evaluate({}))[0] if baseline is None else float(baseline)
        metric, extra = _metric(evaluate(selection))
        measured = dict(extra, drop=base - metric)
    return {"front": front, "point": point, "selection": {k: c.label() for k, c in selection.items()},
            "estimated": {"drop": point.drop, "latency_ratio": point.latency_ratio, "params": point.params,
                          "params_ratio": point.params_ratio},
            "measured": measured}
