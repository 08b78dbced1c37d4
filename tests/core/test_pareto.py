"""Sensitivity-based subset search: the DP Pareto front against brute-force enumeration."""
import itertools

import numpy as np
import pytest

from lrd_core.errors import ConfigError
from lrd_core.pareto import (Choice, LayerTable, estimate, measure_sensitivity, nondominated, pareto_front, pick,
                             search)

BASE_LAT, BASE_PARAMS = 100.0, 1e6


def random_tables(seed, n_layers, integer=False, max_opts=3):
    rng = np.random.default_rng(seed)
    tables = []
    for li in range(n_layers):
        opts = [Choice()]
        for j in range(int(rng.integers(1, max_opts + 1))):
            if integer:
                drop, lat, par = rng.integers(0, 5), -rng.integers(-1, 6), -rng.integers(0, 6) * 1000
            else:
                drop, lat, par = abs(rng.normal(0.3 * (j + 1), 0.3)), rng.normal(-2.0 * (j + 1), 1.5), \
                    -rng.uniform(1e4, 5e4) * (j + 1)
            opts.append(Choice("svd", (64 >> j,), float(drop), float(lat), float(par)))
        tables.append(LayerTable(f"layer{li}", opts))
    return tables


def brute_front(tables):
    pts = np.array([[p.drop, p.latency_ratio, p.params] for p in
                    (estimate(tables, idx, BASE_LAT, BASE_PARAMS)
                     for idx in itertools.product(*(range(len(t.options)) for t in tables)))])
    keep = [i for i in range(len(pts))
            if not np.any(np.all(pts <= pts[i], axis=1) & np.any(pts < pts[i], axis=1))]
    return np.unique(pts[keep], axis=0), pts


def test_nondominated_matches_quadratic_check_with_ties():
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 6, size=(400, 3)).astype(float)                  # many ties and duplicates
    keep = nondominated(pts)
    dominated = [np.any(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1)) for p in pts]
    want = {tuple(p) for p, d in zip(pts, dominated) if not d}
    assert {tuple(pts[i]) for i in keep} == want and len(keep) == len(want)  # one of each duplicate


@pytest.mark.parametrize("seed,integer", [(0, True), (1, True), (2, False), (3, False)])
def test_dp_front_equals_brute_force(seed, integer):
    tables = random_tables(seed, 6, integer)
    front = pareto_front(tables, BASE_LAT, BASE_PARAMS)
    want, _ = brute_front(tables)
    got = np.unique(np.array([[p.drop, p.latency_ratio, p.params] for p in front]), axis=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    for p in front:                                                         # each point's subset reproduces it
        q = estimate(tables, p.index, BASE_LAT, BASE_PARAMS)
        assert q.drop == pytest.approx(p.drop) and q.latency_ratio == pytest.approx(p.latency_ratio)
        assert q.params == pytest.approx(p.params) and p.params_ratio == pytest.approx(p.params / BASE_PARAMS)


def test_pick_is_the_best_subset_under_each_budget():
    tables = random_tables(5, 6)
    front = pareto_front(tables, BASE_LAT, BASE_PARAMS)
    _, pts = brute_front(tables)
    for b in (0.85, 0.9, 0.95, 1.0):
        p = pick(front, b, "latency")
        assert p.latency_ratio <= b and p.drop == pytest.approx(pts[pts[:, 1] <= b + 1e-12, 0].min())
    for b in (1.05, 1.1, 1.2):
        p = pick(front, b, "params")
        ok = BASE_PARAMS / pts[:, 2] >= b - 1e-12
        assert BASE_PARAMS / p.params >= b - 1e-12 and p.drop == pytest.approx(pts[ok, 0].min())
    for b in (0.5, 1.0, 2.0):
        p = pick(front, b, "drop")
        assert p.drop <= b and p.latency_ratio == pytest.approx(pts[pts[:, 0] <= b + 1e-12, 1].min())
    with pytest.raises(ConfigError, match="no subset meets"):
        pick(front, 0.01, "latency")
    with pytest.raises(ConfigError, match="budget kind"):
        pick(front, 1.0, "energy")


def test_sixty_layers_without_enumeration():
    tables = random_tables(7, 60, integer=True)
    front = pareto_front(tables, BASE_LAT, BASE_PARAMS)
    pts = np.array([[p.drop, p.latency_ratio, p.params] for p in front])
    assert len(nondominated(pts)) == len(pts)                              # mutually non-dominated
    rng = np.random.default_rng(0)
    for _ in range(300):                                                    # random subsets are covered
        idx = [int(rng.integers(len(t.options))) for t in tables]
        q = estimate(tables, idx, BASE_LAT, BASE_PARAMS)
        assert np.any(np.all(pts <= np.array([q.drop, q.latency_ratio, q.params]) + 1e-9, axis=1))
    coarse = pareto_front(tables, BASE_LAT, BASE_PARAMS, resolution=(1.0, 0.02, 0.01))
    assert len(coarse) <= len(front)
    tol = 60 * np.array([1.0, 0.02, 0.01 * BASE_PARAMS])
    cpts = np.array([[p.drop, p.latency_ratio, p.params] for p in coarse])
    assert all(np.any(np.all(cpts <= p + tol, axis=1)) for p in pts)


def test_sensitivity_search_estimates_and_verifies():
    true_drop = {"a": {(32,): 0.1, (16,): 0.9}, "b": {(32,): 0.05, (16,): 0.2}, "c": {(32,): 2.0, (16,): 5.0}}
    calls = []

    def evaluate(selection):
        calls.append(dict(selection))
        acc = 90.0 - sum(true_drop[n][c.ranks] for n, c in selection.items())
        return {"metric": acc, "latency_ratio": 1.0 - 0.1 * len(selection)}

    cands = {n: [Choice("svd", (32,), latency=-5.0, params=-1e5, proxy=0.1),
                 Choice("svd", (16,), latency=-8.0, params=-2e5, proxy=0.3 if n != "c" else 0.9)]
             for n in true_drop}
    tables = measure_sensitivity(cands, evaluate, max_proxy=0.5)
    assert len(calls) == 1 + 5                                              # baseline + 5 unfiltered candidates
    assert [len(t.options) for t in tables] == [3, 3, 2]
    assert tables[0].options[2].drop == pytest.approx(0.9) and tables[2].options[1].drop == pytest.approx(2.0)
    rep = search(tables, BASE_LAT, BASE_PARAMS, budget=0.87, kind="latency", evaluate=evaluate, baseline=90.0)
    assert rep["selection"] == {"a": "svd:32", "b": "svd:16"}              # a:16 + b:32 is as fast, drops 0.95
    assert rep["estimated"]["latency_ratio"] == pytest.approx(0.87)
    assert rep["measured"]["drop"] == pytest.approx(rep["estimated"]["drop"]) == pytest.approx(0.3)
    assert rep["measured"]["latency_ratio"] == pytest.approx(0.8)
