"""Meeting a model-level parameter (or MAC) budget at the least measured time.

Works on the :class:`~lrd_core.search.Candidate` objects of a search: each layer has options
(original first) with params, MACs and per-phase times. The time cost of an option is its time
summed over the phases, each phase normalised by the candidates' total original time in it, so a
1% slower training step weighs as much as a 1% slower inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence


def phase_weights(cands, phases: Sequence[str]) -> Dict[str, float]:
    """1 / (sum of the original layers' times) per phase."""
    out = {}
    for p in phases:
        total = sum(c.options[0].ms[p] for c in cands)
        out[p] = 1.0 / total if total > 0 else 0.0
    return out


def cost(option, weights: Dict[str, float]) -> float:
    return sum(option.ms[p] * w for p, w in weights.items())


def size(option, kind: str) -> int:
    return option.params if kind == "params" else option.macs


@dataclass
class Totals:
    """Model totals before compression (conv/dense layers plus everything else)."""

    params: int
    macs: int
    fixed_params: int = 0
    fixed_macs: int = 0

    @classmethod
    def of(cls, base_plan, fixed_params: int = 0, fixed_macs: int = 0) -> "Totals":
        t = base_plan.totals
        return cls(t["params_before"] + fixed_params, t["macs_before"] + fixed_macs, fixed_params, fixed_macs)

    def before(self, kind: str) -> int:
        return self.params if kind == "params" else self.macs


def _rest(cands, totals: Totals, kind: str) -> int:
    """Size of everything that is not a candidate (never changes during the search)."""
    return totals.before(kind) - sum(size(c.options[0], kind) for c in cands)


def current(cands, totals: Totals, kind: str) -> int:
    return _rest(cands, totals, kind) + sum(size(c.chosen, kind) for c in cands)


def _slowdown(cands, phases) -> Dict[str, float]:
    """Summed (chosen - original) time per phase; <= 0 means not slower than the original layers."""
    return {p: sum(c.chosen.ms[p] - c.options[0].ms[p] for c in cands) for p in phases}


def _feasible(cands, phases, c, k) -> bool:
    """Would switching candidate ``c`` to option ``k`` keep every phase no slower than the original?"""
    delta = _slowdown(cands, phases)
    return all(delta[p] + c.options[k].ms[p] - c.chosen.ms[p] <= 0 for p in phases)


def meet_budget(cands, phases: Sequence[str], totals: Totals, budget: float, kind: str = "params",
                tie: float = 0.03) -> bool:
    """Adjust ``c.choice`` of the candidates in place so that the model is ``budget`` times smaller.

    Greedy on time cost per saved parameter, never slower than the original in any phase; then
    cheaper choices that keep the budget; then larger ranks where they cost (almost) nothing.
    Returns whether the budget is met.
    """
    w = phase_weights(cands, phases)
    target = totals.before(kind) / budget
    while current(cands, totals, kind) > target:
        best = None
        for c in cands:
            here, cost_here = size(c.chosen, kind), cost(c.chosen, w)
            for k, o in enumerate(c.options):
                saved = here - size(o, kind)
                if saved <= 0 or not _feasible(cands, phases, c, k):
                    continue
                rate = (cost(o, w) - cost_here) / saved
                if best is None or rate < best[0]:
                    best = (rate, c, k)
        if best is None:
            break
        _, c, k = best
        c.choice = k
        c.why = _why_budget(c, phases)
    met = current(cands, totals, kind) <= target
    if met:
        _refine(cands, phases, totals, target, kind, w, tie)
    return met


def _refine(cands, phases, totals, target, kind, w, tie) -> None:
    """Take back what the budget leaves room for: first strictly cheaper choices that are not
    smaller (repeated until none is left, the total cost falls each time), then one pass of larger
    ranks that cost at most ``tie`` of the original layer's time more."""
    improved = True
    while improved:
        improved = False
        for c in cands:
            if c.choice == 0:        # kept layers stay kept: only budget-driven choices are revised
                continue
            now = current(cands, totals, kind)
            for k in sorted(range(len(c.options)), key=lambda k: cost(c.options[k], w)):
                o = c.options[k]
                if cost(o, w) >= cost(c.chosen, w) - 1e-12:
                    break
                if size(o, kind) < size(c.chosen, kind):    # no speed bought past the budget with lower ranks
                    continue
                if now + size(o, kind) - size(c.chosen, kind) <= target and _feasible(cands, phases, c, k):
                    c.choice, improved = k, True
                    c.why = _why_budget(c, phases)
                    break
    for c in cands:
        now = current(cands, totals, kind)
        limit = cost(c.chosen, w) + tie * cost(c.options[0], w)
        bigger = [k for k, o in enumerate(c.options) if size(o, kind) > size(c.chosen, kind)
                  and cost(o, w) <= limit and now + size(o, kind) - size(c.chosen, kind) <= target
                  and _feasible(cands, phases, c, k)]
        if bigger:
            c.choice = max(bigger, key=lambda k: size(c.options[k], kind))
            c.why = _why_budget(c, phases)


def _why_budget(c, phases) -> str:
    o = c.chosen
    if o.method == "none":
        return c.first_why or "auto: kept to stay within the time of the original"
    ratios = ", ".join(f"{p} {o.ratio[p]:.2f}x" for p in phases)
    slower = any(o.ratio[p] > 1 for p in phases)
    return f"auto (budget): {o.key} {ratios}" + (" — slower than the original layer, taken for the budget"
                                                   if slower else "")


def summary(cands, totals: Totals, phases: Sequence[str], kind: str) -> dict:
    """Sizes, reduction and summed layer-time ratios of the current choices."""
    after = current(cands, totals, kind)
    out = {"decomposed": sum(1 for c in cands if c.choice), kind + "_after": int(after),
           kind + "_before": int(totals.before(kind)),
           "reduction": totals.before(kind) / after if after else float("inf")}
    for p in phases:
        orig = sum(c.options[0].ms[p] for c in cands)
        out["layers_" + p] = sum(c.chosen.ms[p] for c in cands) / orig if orig else 1.0
    return out
