"""mode='auto' with CP chains timed beside Tucker-2 (auto_conv_methods), on synthetic latency tables."""
import numpy as np

from lrd_core import Plan
from lrd_core.cost import decomposed_cost
from lrd_core.factorize.cp import pr_cp3_rank
from lrd_core.latency import Timing
from lrd_core.layers import LayerInfo, Role
from lrd_core.profile import Profiler
from lrd_core.ranks import quantize
from lrd_core.search import search_plan

A = LayerInfo("layer3.0.conv2", "conv2d", 32, 32, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(8, 8), role=Role(stage=3))
B = LayerInfo("layer4.0.conv2", "conv2d", 48, 48, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(4, 4), role=Role(stage=4))


def timer(rule, calls):
    def run(info, variants, phase):
        calls.extend((info.name, m, r) for m, r in variants)
        return [Timing(samples=[rule(info, m, r)] * 3) for m, r in variants]
    return run


def rule(info, method, ranks):
    """Originals 10 ms; on A CP-3 takes 3 ms and Tucker-2 8 ms; on B depthwise convs are slow (12 ms)."""
    if method == "none":
        return 10.0
    if method == "cp3":
        return 3.0 if info is A or info.name == A.name else 12.0
    return 8.0


def test_cp_chains_are_candidates_and_win_only_where_faster():
    rng = np.random.default_rng(0)
    weights = {l.name: rng.standard_normal(l.weight_shape).astype(np.float32) for l in (A, B)}
    calls = []
    options = dict(mode="auto", ratio=2.0, rank_multiple=8, search_radius=1, verify=False,
                   auto_conv_methods=["cp3"], epc=True, cp_iters=10, epc_iters=5)
    plan = search_plan([A, B], options, Profiler(timer(rule, calls)), weights=weights)
    est = quantize((pr_cp3_rank(32, 32, 3, 3, 2.0),), (pr_cp3_rank(32, 32, 3, 3, 1.0),), 8)     # 72
    cp_timed = sorted({r for n, m, r in calls if n == A.name and m == "cp3"})
    assert cp_timed == [(est[0] - 8,), est, (est[0] + 8,)]
    assert {m for n, m, r in calls if n == B.name} == {"none", "tucker2", "cp3"}
    a, b = plan[A.name], plan[B.name]
    assert a.method == "cp3" and a.ranks == (est[0] + 8,)       # all CP ranks equally fast: the largest
    assert (a.params_after, a.macs_after) == decomposed_cost(A, "cp3", a.ranks)
    assert a.cp is not None and a.cp["sensitivity"][1] < a.cp["sensitivity"][0]
    assert b.method == "tucker2" and b.cp is None               # CP slower there: Tucker-2 kept
    again = Plan.from_dict(plan.to_dict())
    assert again[A.name].cp == a.cp


def test_without_auto_conv_methods_only_the_plan_method_is_timed():
    calls = []
    search_plan([A], dict(mode="auto", ratio=2.0, rank_multiple=8, verify=False), Profiler(timer(rule, calls)))
    assert {m for _, m, _ in calls} == {"none", "tucker2"}
