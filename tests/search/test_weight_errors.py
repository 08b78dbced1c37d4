"""The auto plan's weight errors: at the ranks the search chose, computed for the chosen layers only."""
import numpy as np
import pytest

from lrd_core import reports, search
from lrd_core.plan import Plan
from lrd_core.profile import Profiler
from lrd_core.search import search_plan

from .test_search import FAST, FC, POINT, SLOW, Table, base_rule


def weights_of(layers, seed=0):
    rng = np.random.default_rng(seed)
    return {l.name: rng.standard_normal(l.weight_shape).astype(np.float32) for l in layers}


@pytest.mark.parametrize("selection", ["pr", "energy"])
def test_weight_errors_are_those_of_the_chosen_ranks(monkeypatch, selection):
    layers = [SLOW, FAST, POINT, FC]
    weights = weights_of(layers)
    calls = []

    def counting(method, ranks, weight, tucker_iters=4):
        calls.append((method, tuple(ranks) if ranks else None))
        return reports.weight_error(method, ranks, weight, tucker_iters)
    monkeypatch.setattr(search, "weight_error", counting)
    options = dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2, verify=False, rank_selection=selection,
                   energy=0.6)
    plan = search_plan(layers, options, Profiler(Table(base_rule)), weights=weights)
    chosen = {lp.name: lp for lp in plan.decomposed()}
    assert set(chosen) == {FAST.name, POINT.name}
    for name, lp in chosen.items():
        assert lp.weight_error == reports.weight_error(lp.method, lp.ranks, weights[name], plan.config.tucker_iters)
        assert 0 < lp.weight_error < 1
    for name in (SLOW.name, "fc"):
        assert plan[name].weight_error is None and "weight_error" not in plan[name].to_dict()
    if selection == "pr":          # PR ranks need shapes only: no factorization of layers the search drops
        assert sorted(calls) == sorted((lp.method, lp.ranks) for lp in chosen.values())
    assert Plan.from_dict(plan.to_dict())[FAST.name].weight_error == chosen[FAST.name].weight_error


def test_fast_chosen_below_its_estimate_reports_the_lower_ranks_error():
    weights = weights_of([FAST])
    options = dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2, verify=False)
    plan = search_plan([FAST], options, Profiler(Table(base_rule)), weights=weights)
    lp = plan[FAST.name]
    assert lp.ranks == (96, 96)                               # the estimate is (128, 128)
    at_estimate = reports.weight_error("tucker2", (128, 128), weights[FAST.name])
    assert lp.weight_error == reports.weight_error("tucker2", (96, 96), weights[FAST.name]) > at_estimate
