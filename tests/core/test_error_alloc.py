"""Global rank allocation by output error (core) and sparse layer timing."""
import itertools

import numpy as np
import pytest

from lrd_core.allocate import rank_ladder
from lrd_core.config import PlanConfig
from lrd_core.cost import decomposed_cost
from lrd_core.error_alloc import allocate_plan, candidates, layer_table
from lrd_core.errors import ConfigError
from lrd_core.factorize.data_aware import error_curve
from lrd_core.latency import Timing
from lrd_core.layers import LayerInfo, Role
from lrd_core.planner import make_plan
from lrd_core.profile import Profiler
from lrd_core.sparse_timing import interpolate, ladder_times, sample_indices



class Stats:
    """The part of LayerStats the allocation reads."""

    def __init__(self, cov):
        self.cov = cov
        self.dim = len(cov)


def layers_and_data(seed=0):
    rng = np.random.default_rng(seed)
    infos = [LayerInfo("a", "conv2d", 16, 16, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(8, 8), role=Role(stage=1)),
             LayerInfo("b", "conv2d", 16, 32, (1, 1), input_hw=(8, 8), role=Role(stage=2)),
             LayerInfo("fc", "dense", 32, 10, has_bias=True, role=Role(is_final_dense=True))]
    weights = {i.name: rng.standard_normal(i.weight_shape).astype(np.float32) for i in infos}
    stats = {}
    for i in infos:
        d = i.in_channels * i.kernel[0] * i.kernel[1]
        mix = rng.standard_normal((d, d)) * np.exp(-np.arange(d) / (3.0 + 5 * (i.name == "a")))
        x = rng.standard_normal((4 * d, d)) @ mix.T
        stats[i.name] = Stats(x.T @ x / len(x))
    return infos, weights, stats


def total_error(plan, weights, stats):
    out = 0.0
    for lp in plan.decomposed():
        e = error_curve(lp.method, weights[lp.name], stats[lp.name].cov, [lp.ranks], floor=1e-3)[0]
        out += e ** 2
    return out


def test_allocation_meets_the_budget_below_the_uniform_error_and_matches_brute_force():
    infos, weights, stats = layers_and_data()
    cfg = PlanConfig(mode="all", rank_selection="error", budget=2.0, rank_multiple=4, final_dense_ratio=1.5)
    base = make_plan(infos, PlanConfig(mode="all", rank_multiple=4), weights=weights)
    methods = {"a": "tucker2", "b": "svd", "fc": "svd"}
    plan = allocate_plan(base, cfg, methods, weights, stats)
    t = plan.totals
    assert t["params_before"] / t["params_after"] >= 2.0
    assert plan.meta["error_allocation"]["reached"] >= 2.0 and plan.meta["error_allocation"]["error_kind"] == "output"
    fc = plan["fc"]
    assert fc.method == "none" or fc.params_before / fc.params_after <= 1.5          # final-dense ratio kept
    # brute force over the same options: the greedy choice is optimal here
    tables = {lp.name: layer_table(lp, methods[lp.name], weights[lp.name], stats[lp.name], 4, None,
                                   1.5 if lp.name == "fc" else None) for lp in base.layers}
    before = sum(lp.params_before for lp in base.layers)
    best = min(sum(o.error for o in combo) for combo in itertools.product(*tables.values())
               if before / sum(o.params for o in combo) >= 2.0)
    assert plan.meta["error_allocation"]["error"] == pytest.approx(best, abs=1e-6)   # rounded to 6 digits
    # uniform PR ratios reaching the same reduction lose more output energy
    for ratio in (2.2, 2.5, 3.0):
        uniform = make_plan(infos, PlanConfig(mode="all", ratio=ratio, rank_multiple=4, final_dense_ratio=1.5),
                            weights=weights)
        u = uniform.totals
        if u["params_before"] / u["params_after"] >= 2.0:
            assert total_error(uniform, weights, stats) > total_error(plan, weights, stats)
            break
    else:
        pytest.fail("no uniform ratio reached the budget")


def test_caps_latency_and_errors_without_data():
    infos, weights, stats = layers_and_data(1)
    base = make_plan(infos, PlanConfig(mode="all", rank_multiple=4), weights=weights)
    methods = {"a": "tucker2", "b": "svd", "fc": "svd"}
    caps = {"a": (8, 8), "b": (8,)}
    cfg = PlanConfig(mode="all", rank_selection="error", budget=1.3, rank_multiple=4)
    plan = allocate_plan(base, cfg, methods, weights, None, caps=caps)        # weight-space errors
    assert plan.meta["error_allocation"]["error_kind"] == "weight"
    assert [lp.name for lp in candidates(base, methods, caps)] == ["a", "b"]
    assert plan["fc"].method == base["fc"].method and plan["fc"].ranks == base["fc"].ranks   # not a candidate
    for name, cap in caps.items():
        if plan[name].decomposed:
            assert all(r <= c for r, c in zip(plan[name].ranks, cap))
    with pytest.raises(ConfigError, match="cannot be met"):
        allocate_plan(base, PlanConfig(mode="all", rank_selection="error", budget=50.0, rank_multiple=4),
                      methods, weights, stats)
    lat_cfg = PlanConfig(mode="all", rank_selection="error", budget=1.5, budget_kind="latency", rank_multiple=4)
    with pytest.raises(ConfigError, match="timing tables"):
        allocate_plan(base, lat_cfg, methods, weights, stats)

    def latency(info, method, ranks):        # time proportional to MACs
        return float(decomposed_cost(info, "none", None)[1]), [float(decomposed_cost(info, method, r)[1])
                                                               for r in ranks]
    plan = allocate_plan(base, lat_cfg, methods, weights, stats, latency=latency)
    chosen = sum(lp.macs_after for lp in plan.layers)
    assert sum(lp.macs_before for lp in plan.layers) / chosen >= 1.5 - 1e-9


def test_config_checks():
    with pytest.raises(ConfigError, match="needs a model-level budget"):
        PlanConfig(rank_selection="error")
    with pytest.raises(ConfigError, match="latency"):
        PlanConfig(budget=2.0, budget_kind="latency")
    with pytest.raises(ConfigError, match="sequential"):
        PlanConfig(sequential=True)
    with pytest.raises(ConfigError, match="floor"):
        PlanConfig(data_aware=True, floor=2.0)
    with pytest.raises(ConfigError, match="pareto_ratios"):
        PlanConfig(mode="pareto", budget=2.0, pareto_ratios=[0.5])
    with pytest.raises(ConfigError, match="calibration_memory"):
        PlanConfig(calibration_memory=0)
    with pytest.raises(ConfigError, match="adapter"):
        make_plan([LayerInfo("fc", "dense", 8, 4)], PlanConfig(mode="all", data_aware=True))


def test_sparse_timing_interpolates_linear_times_from_few_measurements():
    info = LayerInfo("c", "conv2d", 64, 64, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(8, 8))
    ladder = rank_ladder(info, "tucker2", 8)
    calls = []

    def timer(i, variants, phase):
        calls.append(len(variants) - 1)
        return [Timing(samples=[1.0 + (decomposed_cost(i, m, r)[1] if m != "none" else 5e6) * 1e-6] * 3)
                for m, r in variants]
    prof = Profiler(timer)
    base, times = ladder_times(prof, info, "tucker2", ladder, ["infer@1", "infer@8"], samples=4)
    assert calls == [4, 4]                                  # 4 of the 7 ranks timed, once per phase
    want = [2 * (1.0 + decomposed_cost(info, "tucker2", r)[1] * 1e-6) for r in ladder]
    np.testing.assert_allclose(times, want, rtol=1e-9)
    assert base == pytest.approx(2 * (1.0 + 5.0))
    assert sample_indices(10, 4) == [0, 3, 6, 9] and sample_indices(3, 4) == [0, 1, 2]
    np.testing.assert_allclose(interpolate([0, 10], [1, 3], [-5, 5, 20]), [1, 2, 3])
