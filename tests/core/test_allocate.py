"""Greedy global rank allocation against brute force and the uniform allocation."""
import itertools

import numpy as np
import pytest

from lrd_core.allocate import Option, allocate, layer_options, rank_ladder, uniform
from lrd_core.cost import decomposed_cost, layer_params
from lrd_core.errors import ConfigError
from lrd_core.layers import LayerInfo


def convex_layers(seed, n_layers=4, n_opts=5):
    """Errors convex in the parameters saved (marginal error per saved parameter increasing)."""
    rng = np.random.default_rng(seed)
    layers = {}
    for li in range(n_layers):
        full = int(rng.integers(2000, 9000))
        savings = rng.integers(100, 900, size=n_opts - 1)
        slopes = np.sort(rng.uniform(0.1, 5.0, size=n_opts - 1)) * rng.uniform(0.2, 3.0)
        params = full - np.concatenate([[0], np.cumsum(savings)])
        errors = np.concatenate([[0.0], np.cumsum(slopes * savings)]) * 1e-3
        layers[f"layer{li}"] = [Option("none" if j == 0 else "svd", () if j == 0 else (64 - 8 * j,), float(e),
                                       int(p), int(p) * 10) for j, (e, p) in enumerate(zip(errors, params))]
    return layers


def brute_force(layers, kind="params"):
    """(cost, error) of every combination."""
    names = list(layers)
    for combo in itertools.product(*(range(len(layers[n])) for n in names)):
        opts = [layers[n][j] for n, j in zip(names, combo)]
        yield sum(getattr(o, kind) for o in opts), sum(o.error for o in opts), combo


def total(layers, index, kind="params"):
    return sum(getattr(layers[n][j], kind) for n, j in index.items())


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_optimal_for_its_cost_on_convex_curves(seed):
    layers = convex_layers(seed)
    original = sum(opts[0].params for opts in layers.values()) + 1000
    combos = list(brute_force(layers))
    reachable = original / (sum(opts[-1].params for opts in layers.values()) + 1000)
    for target in 1 + (reachable - 1) * np.array([0.2, 0.5, 0.8, 1.0]):
        alloc = allocate(layers, target, "params", fixed=1000)
        cost = total(layers, alloc.index) + 1000
        assert original / cost >= target and alloc.ratio == pytest.approx(original / cost)
        # no combination of at most the greedy's size has a smaller total error
        best_same_cost = min(e for c, e, _ in combos if c + 1000 <= cost)
        assert alloc.error <= best_same_cost + 1e-12
        # and it is close to the optimum at the target itself (greedy overshoots by at most one move)
        best_at_target = min(e for c, e, _ in combos if original / (c + 1000) >= target)
        assert best_at_target <= alloc.error
        start = sum(o[0].params for o in layers.values()) + 1000
        assert sum(s.saved for s in alloc.trace) == pytest.approx(start - cost)


def test_greedy_beats_uniform_allocation_when_sensitivities_differ():
    # four identical layers in size, one 10x more sensitive: uniform cuts it as much as the others
    base = [(0.0, 4096), (0.01, 3072), (0.03, 2048), (0.07, 1024), (0.15, 512)]
    layers = {}
    for li, scale in enumerate((1.0, 1.0, 1.0, 10.0)):
        layers[f"l{li}"] = [Option("none" if j == 0 else "svd", (j,), e * scale, p, p) for j, (e, p) in enumerate(base)]
    original = 4 * 4096
    for j in range(1, 4):
        idx = uniform(layers, j)
        ratio = original / total(layers, idx)
        alloc = allocate(layers, ratio, "params")
        uniform_error = sum(layers[n][k].error for n, k in idx.items())
        assert alloc.ratio >= ratio and alloc.error < uniform_error, (j, alloc.error, uniform_error)
        assert alloc.index["l3"] < j                                          # the sensitive layer is spared


def test_allocation_is_monotone_in_the_budget_and_keeps_fixed_layers():
    layers = convex_layers(11, n_layers=5, n_opts=6)
    layers["stem"] = [Option("none", (), 0.0, 3000, 30000)]
    previous = None
    reachable = sum(o[0].macs for o in layers.values()) / sum(o[-1].macs for o in layers.values())
    for target in np.linspace(1.02, reachable, 14):
        alloc = allocate(layers, float(target), "macs")
        assert alloc.index["stem"] == 0
        if previous is not None:
            assert all(alloc.index[n] >= previous.index[n] for n in layers)
            assert alloc.error >= previous.error - 1e-15
            assert alloc.trace[:len(previous.trace)] == previous.trace           # one path, different stops
        previous = alloc


def test_moves_jump_over_non_convex_steps_and_latency_budgets():
    # layer a: the first cut is expensive, the second almost free per saved unit
    a = [Option("none", (), 0.0, 100, 0, 10.0), Option("svd", (8,), 0.5, 90, 0, 9.0),
         Option("svd", (4,), 0.55, 40, 0, 4.0)]
    b = [Option("none", (), 0.0, 100, 0, 10.0), Option("svd", (8,), 0.3, 70, 0, 7.0)]
    alloc = allocate({"a": a, "b": b}, 1.3, "latency")
    assert alloc.index == {"a": 2, "b": 0} and alloc.trace[0].src == 0 and alloc.trace[0].dst == 2
    assert alloc.ratio == pytest.approx(20 / 14)


def test_bad_budgets_raise():
    layers = convex_layers(0)
    with pytest.raises(ConfigError, match="> 1"):
        allocate(layers, 1.0)
    with pytest.raises(ConfigError, match="cannot be met"):
        allocate(layers, 50.0)
    with pytest.raises(ConfigError, match="latency for every option"):
        allocate(layers, 1.2, "latency")
    with pytest.raises(ConfigError, match="one of"):
        allocate(layers, 1.2, "flops")
    with pytest.raises(ConfigError, match="no options"):
        allocate({"x": []}, 1.2)


def test_layer_options_and_rank_ladder():
    conv = LayerInfo("layer3.0.conv2", "conv2d", 64, 128, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(14, 14))
    ladder = rank_ladder(conv, "tucker2", q=16)
    assert ladder[0] == (96, 48) and ladder[-1] == (32, 16) and len(ladder) == 3
    opts = layer_options(conv, "tucker2", ladder + [(128, 64)], [0.1, 0.2, 0.3, 0.0], latencies=[1, 2, 3, 4],
                         original_latency=5.0)
    assert [o.ranks for o in opts] == [(), (96, 48), (64, 32), (32, 16)]       # full rank does not shrink
    assert opts[0].params == layer_params(conv) and opts[1].error == pytest.approx(0.01)
    assert (opts[2].params, opts[2].macs) == decomposed_cost(conv, "tucker2", (64, 32))
    assert opts[0].latency == 5.0 and opts[3].latency == 3.0
    fc = LayerInfo("fc", "dense", 512, 10, has_bias=True)
    assert rank_ladder(fc, "svd", q=4) == [(8,), (4,)]
    mild = layer_options(fc, "svd", [(8,), (4,)], [0.1, 0.2], max_ratio=1.3)
    assert [o.ranks for o in mild] == [(), (8,)]                               # 5130 / 4186 <= 1.3 < 5130 / 2094
