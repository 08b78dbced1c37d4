"""The hardware-aware search on synthetic latency tables with known answers (no framework, no timing)."""
import itertools
import zlib

import pytest

from lrd_core import Plan
from lrd_core.errors import ConfigError
from lrd_core.latency import Timing
from lrd_core.latency_cache import layer_signature
from lrd_core.layers import LayerInfo, Role
from lrd_core.profile import Profiler
from lrd_core.search import neighbourhood, pick_best, search_plan

PHASES = ("infer@1", "infer@8", "train@8")


def conv(name, cin, cout, k, hw, block):
    p = k // 2
    return LayerInfo(name, "conv2d", cin, cout, (k, k), (1, 1), (p, p, p, p), (1, 1), 1, False, (hw, hw),
                     Role(stage=block))


FAST = conv("layer3.0.conv2", 256, 256, 3, 14, 3)      # faster when decomposed
SLOW = conv("layer1.0.conv2", 64, 64, 3, 56, 1)        # slower at every rank
POINT = conv("layer3.0.conv1", 1024, 256, 1, 14, 3)    # 1x1, SVD
FC = LayerInfo("fc", "dense", 2048, 1000, has_bias=True, role=Role(is_final_dense=True))
STEM = LayerInfo("conv1", "conv2d", 3, 64, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, False, (224, 224),
                 Role(is_stem=True))


class Table:
    """A timer from a rule ``ms(layer, method, ranks, phase)``; counts what it was asked."""

    def __init__(self, rule):
        self.rule, self.calls = rule, []

    def __call__(self, info, variants, phase):
        self.calls.append((info.name, tuple(variants), phase))
        return [Timing(samples=[self.rule(info, m, r, phase)] * 3) for m, r in variants]


def base_rule(info, method, ranks, phase):
    """Original layers take 10 ms. FAST (3x3, 256 in): chains take 4 ms up to rank 96, then 9 ms (a step);
    SLOW: 13 ms; POINT: 6 ms; FC: 12 ms (slower)."""
    if method == "none":
        return 10.0
    if info.kernel == (3, 3) and info.in_channels == 256:
        return 4.0 if ranks[0] <= 96 else 9.0
    return {SLOW.name: 13.0, POINT.name: 6.0, "fc": 12.0}.get(info.name, 10.0)


def run(layers, rule=base_rule, **cfg):
    options = dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2, verify=False)
    options.update(cfg)
    timer = Table(rule)
    plan = search_plan(layers, options, Profiler(timer))
    return plan, timer


def test_only_faster_layers_are_decomposed_with_reasons():
    plan, _ = run([STEM, SLOW, FAST, POINT, FC])
    assert {lp.name for lp in plan.decomposed()} == {FAST.name, POINT.name}
    assert plan[SLOW.name].method == "none" and "not faster" in plan[SLOW.name].reason
    assert "1.30x" in plan[SLOW.name].reason
    assert plan["fc"].method == "none" and "not faster" in plan["fc"].reason
    assert plan["conv1"].reason == "not selected by mode auto"
    assert plan[FAST.name].reason is None and plan[FAST.name].note.startswith("auto:")
    Plan.from_dict(plan.to_dict())   # JSON round trip of an auto plan


def test_larger_rank_among_equal_times():
    # FAST estimate at ratio 3 is rank 128 (PR 3x of 256x256x3x3 -> 122); neighbourhood 64..192.
    assert neighbourhood(FAST, "tucker2", (96, 96), 32, 2) == [(32, 32), (64, 64), (96, 96), (128, 128),
                                                                (160, 160)]
    plan, _ = run([FAST])
    assert plan[FAST.name].ranks == (96, 96)           # 64 and 96 both take 4 ms: keep the larger

    def bumpy(info, method, ranks, phase):             # 64 is clearly fastest, 96 only 2% slower
        return 10.0 if method == "none" else {64: 4.0, 96: 4.08, 128: 9.0, 160: 9.5, 192: 9.8}[ranks[0]]
    assert run([FAST], bumpy)[0][FAST.name].ranks == (96, 96)
    assert run([FAST], bumpy, tie_tolerance=0.0)[0][FAST.name].ranks == (64, 64)


def test_margin_on_average_and_no_phase_much_slower():
    def close(info, method, ranks, phase):
        return 10.0 if method == "none" else 9.8
    assert not run([FAST], close)[0].decomposed()                      # 0.98x < 5% margin
    assert run([FAST], close, margin=0.0)[0].decomposed()

    def train_slower(info, method, ranks, phase):
        if method == "none":
            return 10.0
        return 12.0 if phase.startswith("train") else 5.0
    assert not run([FAST], train_slower)[0].decomposed()              # 0.5x, 0.5x, 1.2x: training suffers
    plan, timer = run([FAST], train_slower, objective="infer")
    assert plan.decomposed() and {c[2] for c in timer.calls} == {"infer@1", "infer@8"}

    def train_even(info, method, ranks, phase):
        if method == "none":
            return 10.0
        return 10.3 if phase.startswith("train") else 8.0
    assert run([FAST], train_even)[0].decomposed()                    # 0.8x, 0.8x, 1.03x: faster overall
    assert not run([FAST], train_even, margin=0.02)[0].decomposed()   # 1.03x is beyond a 2% margin


def _sizes(plan):
    t = plan.totals
    return t["params_before"], t["params_after"]


def _slowdown(plan, rule):
    out = {}
    for p in PHASES:
        out[p] = sum(rule(lp.info, lp.method, lp.ranks, p) - rule(lp.info, "none", None, p)
                     for lp in plan.layers if lp.selected and not lp.info.role.is_stem)
    return out


def test_budget_spends_where_time_costs_least_and_is_never_slower():
    a = conv("layer3.1.conv2", 256, 256, 3, 14, 3)
    b = conv("layer4.1.conv2", 512, 512, 3, 7, 4)
    c = conv("layer4.0.conv3", 512, 2048, 1, 7, 4)

    def rule(info, method, ranks, phase):
        if method == "none":
            return 10.0
        if info.name == a.name:
            return 5.0                   # fast: chosen without a budget
        if info.name == b.name:          # slightly slower, most parameters
            return 10.5
        return 14.0                      # much slower
    fast_only, _ = run([a, b, c], rule)
    assert [lp.name for lp in fast_only.decomposed()] == [a.name]
    before, after = _sizes(fast_only)
    need = before / after * 1.5          # more than the fast layers give
    plan, _ = run([a, b, c], rule, budget=need)
    auto = plan.meta["auto"]
    assert auto["budget_met"] is True
    before, after = _sizes(plan)
    assert before / after >= need
    assert plan[b.name].decomposed and not plan[c.name].decomposed
    assert "taken for the budget" in plan[b.name].note
    assert all(v <= 0 for v in _slowdown(plan, rule).values())


def test_budget_out_of_reach_stays_no_slower():
    def rule(info, method, ranks, phase):
        return 10.0 if method == "none" else (9.0 if info is FAST else 30.0)
    plan, _ = run([FAST, POINT, SLOW], rule, budget=50.0)
    assert plan.meta["auto"]["budget_met"] is False
    assert all(v <= 0 for v in _slowdown(plan, rule).values())
    assert plan[FAST.name].decomposed


def test_never_slower_than_original_for_any_budget():
    layers = [conv(f"layer{b}.{i}.conv2", c, c, 3, hw, b)
              for b, (c, hw) in enumerate([(64, 56), (128, 28), (256, 14), (512, 7)], 1) for i in range(2)]

    def rule(info, method, ranks, phase):     # deterministic mix of faster and slower chains
        if method == "none":
            return 10.0
        return 5.0 + zlib.crc32(repr((info.in_channels, ranks, phase)).encode()) % 100 / 12.0
    for budget in (None, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0):
        plan, _ = run(layers, rule, budget=budget)
        assert all(v <= 1e-9 for v in _slowdown(plan, rule).values()), budget
        if budget and plan.meta["auto"]["budget_met"]:
            before, after = _sizes(plan)
            assert before / after >= budget


def test_layers_of_one_shape_are_timed_once_and_cached():
    twins = [conv(f"layer3.{i}.conv2", 256, 256, 3, 14, 3) for i in range(4)]
    timer = Table(base_rule)
    prof = Profiler(timer)
    plan = search_plan(twins, dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2, verify=False), prof)
    assert len(timer.calls) == 3                        # one call per phase for the four twins
    assert prof.cache.misses == 3 * 6 and prof.cache.hits == 0
    assert {lp.ranks for lp in plan.decomposed()} == {(96, 96)}
    search_plan(twins, dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2, verify=False), prof)
    assert len(timer.calls) == 3 and prof.cache.hits == 3 * 6      # second search: all from cache
    search_plan(twins, dict(mode="auto", ratio=2.0, rank_multiple=32, search_radius=2, verify=False), prof)
    new = [c for c in timer.calls[3:]]
    assert len(new) == 3 and all(v[0] == ("none", None) for _, v, _ in new)
    assert all(len(v) == 1 + 1 for _, v, _ in new)     # only the one unseen rank (192) plus the original


def test_verify_undoes_decompositions_until_not_slower():
    layers = [FAST, POINT, conv("layer3.1.conv2", 256, 256, 3, 14, 3), conv("layer3.2.conv2", 256, 256, 3, 14, 3)]
    seen = []

    def verify(plan):
        seen.append(len(plan.decomposed()))
        return {p: (1.08 if len(plan.decomposed()) > 2 else 0.9) for p in PHASES}
    timer = Table(base_rule)
    plan = search_plan(layers, dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2), Profiler(timer), verify=verify)
    assert seen[0] == 4 and seen[-1] <= 2 and len(plan.decomposed()) == seen[-1]
    checks = plan.meta["auto"]["verify"]
    assert checks[0]["ratios"]["train@8"] == 1.08 and checks[-1]["ratios"]["train@8"] == 0.9
    undone = [lp for lp in plan.layers if lp.reason and "undone" in lp.reason]
    assert len(undone) == 4 - seen[-1]


def test_verify_gives_up_to_the_original():
    plan = search_plan([FAST, POINT], dict(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2, verify_rounds=2),
                       Profiler(Table(base_rule)), verify=lambda plan: {"infer@1": 1.2})
    assert not plan.decomposed()


def test_neighbourhood_grid_and_clamps():
    assert neighbourhood(POINT, "svd", (64,), 32, 1) == [(32,), (64,), (96,)]
    assert neighbourhood(POINT, "svd", (30,), 32, 1) == [(32,), (64,)]            # snapped, clamped at q
    wide = conv("layer2.0.conv1", 64, 128, 3, 56, 2)
    assert neighbourhood(wide, "tucker2", (64, 32), 32, 1) == [(32, 32), (64, 32)]  # wide mode moves by 2q
    assert neighbourhood(POINT, "svd", (40,), 1, 1) == [(32,), (40,), (48,)]       # q=1 searches in steps of 8
    assert all(r[0] % 32 == 0 for r in neighbourhood(FAST, "tucker2", (96, 96), 32, 4))


def test_config_validation():
    with pytest.raises(ConfigError, match="budget"):
        run([FAST], budget=0.5)
    with pytest.raises(ConfigError, match="device"):
        run([FAST], device="TPU")
    with pytest.raises(ConfigError, match="objective"):
        run([FAST], objective="fast")
    with pytest.raises(ConfigError, match="auto"):
        search_plan([FAST], dict(mode="vanilla"), Profiler(Table(base_rule)))


def test_pick_best_mode():
    rows = [{"mode": "original", "params_reduction": 1.0, "infer_ratio": 1.0, "train_ratio": 1.0},
            {"mode": "vanilla", "params_reduction": 2.0, "infer_ratio": 0.7, "train_ratio": 0.8},
            {"mode": "mode3", "params_reduction": 1.5, "infer_ratio": 0.6, "train_ratio": 0.6},
            {"mode": "auto", "params_reduction": 2.1, "infer_ratio": 0.65, "train_ratio": 0.7}]
    assert pick_best(rows)["mode"] == "mode3"
    assert pick_best(rows, budget=2.0)["mode"] == "auto"
    assert pick_best(rows, budget=3.0) is None


def test_signature_ignores_names():
    a = conv("x", 256, 256, 3, 14, 3)
    b = conv("y", 256, 256, 3, 14, 1)
    assert layer_signature(a) == layer_signature(b) != layer_signature(conv("x", 256, 256, 3, 7, 3))


@pytest.mark.parametrize("budget", [1.5, 2.5])
def test_budget_greedy_close_to_exhaustive_optimum(budget):
    """On a small instance the greedy's summed time is within 10% of the best feasible assignment."""
    layers = [FAST, POINT, conv("layer4.0.conv2", 512, 512, 3, 7, 4), conv("layer2.1.conv2", 128, 128, 3, 28, 2)]

    def rule(info, method, ranks, phase):
        if method == "none":
            return 10.0
        return {256: 4.0, 1024: 7.0, 512: 9.0, 128: 11.0}[info.in_channels] + ranks[0] / 256.0
    plan, _ = run(layers, rule, budget=budget)
    from lrd_core.config import PlanConfig
    from lrd_core.search import candidates
    _, cands = candidates(layers, PlanConfig(mode="auto", ratio=3.0, rank_multiple=32, search_radius=2))
    before = sum(c.options[0].params for c in cands)
    best = None
    for combo in itertools.product(*[range(len(c.options)) for c in cands]):
        opts = [c.options[k] for c, k in zip(cands, combo)]
        if before / sum(o.params for o in opts) < budget:
            continue
        t = sum(rule(c.plan.info, o.method, o.ranks, "infer@1") for c, o in zip(cands, opts))
        if t <= 10.0 * len(cands) and (best is None or t < best):
            best = t
    got = sum(rule(lp.info, lp.method, lp.ranks, "infer@1") for lp in plan.layers)
    assert best is not None and plan.meta["auto"]["budget_met"]
    assert got <= best * 1.10


def test_budget_beyond_the_neighbourhood_times_lower_ranks():
    def rule(info, method, ranks, phase):
        return 10.0 if method == "none" else 3.0 + ranks[0] / 64.0
    plan, timer = run([FAST], rule, search_radius=0)
    assert plan[FAST.name].ranks == (128, 128) and len(timer.calls) == 3
    before = plan.totals["params_before"]
    target = before / decomposed_params(FAST, (64, 64))          # needs rank 64: two steps below 128
    plan, timer = run([FAST], rule, search_radius=0, budget=target)
    assert plan.meta["auto"]["budget_met"] and plan[FAST.name].ranks == (64, 64)
    asked = [v for _, vs, _ in timer.calls for v in vs if v[0] != "none"]
    assert ("tucker2", (96, 96)) in asked and ("tucker2", (64, 64)) in asked and ("tucker2", (32, 32)) not in asked


def test_spare_budget_never_adds_layers_that_missed_the_margin():
    slightly = conv("layer3.1.conv2", 256, 256, 3, 7, 3)            # another shape: 0.98x when decomposed

    def rule(info, method, ranks, phase):
        if method == "none":
            return 10.0
        return 9.8 if info.name == slightly.name else base_rule(info, method, ranks, phase)
    plan, _ = run([FAST, slightly], rule, budget=1.2)
    assert plan.meta["auto"]["budget_met"]
    assert plan[FAST.name].decomposed and not plan[slightly.name].decomposed
    assert "not faster" in plan[slightly.name].reason


def decomposed_params(info, ranks):
    from lrd_core.cost import decomposed_cost
    return decomposed_cost(info, "tucker2", ranks)[0]


def test_budget_does_not_overshoot_for_speed():
    layers = [conv(f"layer3.{i}.conv2", 256, 256, 3, 14, 3) for i in range(2)] + [POINT]

    def linear(info, method, ranks, phase):            # CPU-like: time grows with rank, always faster
        return 10.0 if method == "none" else 1.0 + ranks[0] / 32.0
    fast, _ = run(layers, linear, search_radius=0)
    before, after = _sizes(fast)
    plan, _ = run(layers, linear, search_radius=0, budget=before / after * 1.05)
    reached = before / plan.totals["params_after"]
    assert plan.meta["auto"]["budget_met"] and reached < before / after * 1.6   # a few cuts, not every free one
    assert any(lp.ranks[0] == 128 or lp.ranks == (128,) for lp in plan.decomposed())
