"""rank_selection="error" (alone and with mode="auto") and mode="pareto" through both adapters."""
import numpy as np
import pytest

from lrd_core.errors import ConfigError
from lrd_core.factorize.data_aware import error_curve

from .test_calibration import SHAPE, images, reference_arrays, tiny


@pytest.fixture(autouse=True)
def one_torch_thread():
    """torch's intra-op threads only wait for each other on a loaded 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LRD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def energy_lost(plan, stats, model, fw):
    """Summed squared relative output error of the plan's layers on the calibration statistics."""
    layers = dict(fw.BACKEND.named_layers(model))
    return sum(error_curve(lp.method, fw.BACKEND.weight(layers[lp.name]), stats[lp.name].cov, [lp.ranks])[0] ** 2
               for lp in plan.decomposed())


def test_error_allocation_reaches_the_budget_with_less_error_than_uniform(fw, cache_dir):
    model = tiny(fw, reference_arrays())
    x = images(64)
    plan = fw.plan(model, input_shape=SHAPE, mode="vanilla", rank_selection="error", budget=2.0, rank_multiple=4,
                   calibration=x)
    t = plan.totals
    alloc = plan.meta["error_allocation"]
    assert alloc["error_kind"] == "output" and alloc["reached"] >= 2.0
    assert t["params_before"] / t["params_after"] >= 1.9     # conv/dense only; BatchNorm counts as fixed
    assert not any(lp.data_aware for lp in plan.layers)      # weight-space factors, ranks by output error
    stats = plan.calibration.stats
    for ratio in (2.0, 2.5, 3.0):                             # the first uniform PR plan at least as small
        uniform = fw.plan(model, input_shape=SHAPE, mode="vanilla", ratio=ratio, rank_multiple=4)
        if uniform.totals["params_after"] <= t["params_after"]:
            assert energy_lost(uniform, stats, model, fw) > energy_lost(plan, stats, model, fw)
            break
    else:
        pytest.fail("no uniform ratio as small as the allocation")
    both = fw.plan(model, input_shape=SHAPE, mode="vanilla", rank_selection="error", budget=2.0, rank_multiple=4,
                   calibration=x, data_aware=True)
    assert [lp.ranks for lp in both.layers] == [lp.ranks for lp in plan.layers]
    assert all(lp.data_aware for lp in both.decomposed())
    blind = fw.plan(model, input_shape=SHAPE, mode="vanilla", rank_selection="error", budget=2.0, rank_multiple=4)
    assert blind.meta["error_allocation"]["error_kind"] == "weight"


def smallest_reach(fw, model, auto):
    """Parameter ratio with every layer the auto plan found faster at its smallest allowed rank
    (ladder capped by the auto ranks), computed from the cost model."""
    from lrd_core.cost import decomposed_cost
    from lrd_core.error_alloc import ERROR_METHODS, ladder

    total, saved = fw.count_params(model), 0
    for lp in auto.decomposed():
        ranks = ladder(lp.info, lp.method, 8, lp.ranks) if lp.method in ERROR_METHODS else []
        smallest = min([decomposed_cost(lp.info, lp.method, r)[0] for r in ranks] + [lp.params_before])
        saved += lp.params_before - (smallest if lp.method in ERROR_METHODS else lp.params_after)
    return total / (total - saved)


def test_error_allocation_with_auto_keeps_to_faster_layers(fw, cache_dir):
    model = tiny(fw, reference_arrays(width=16), width=16)
    kw = dict(input_shape=(1, 3, 32, 32), mode="auto", device="CPU", objective="infer", profile_batch=1,
              verify=False, rank_multiple=8, exclude=["layer[12]\\..*", "fc"], cache_path=str(cache_dir / "lat.json"))
    auto = fw.plan(model, **kw)
    try:
        plan = fw.plan(model, rank_selection="error", budget=1.3, calibration=images(48, hw=32), **kw)
    except ConfigError as exc:          # too few layers measured faster for the budget (timing-dependent)
        reach = smallest_reach(fw, model, auto)
        if not auto.decomposed():       # no layer was measured faster: nothing to allocate ranks to
            assert "found no SVD/Tucker-2 layer" in str(exc)
        else:
            assert reach < 1.3 and f"the smallest candidates reach {reach:.3g}x" in str(exc)
        return
    faster = {lp.name: lp.ranks for lp in auto.decomposed()}
    for lp in plan.decomposed():
        assert lp.name in faster and all(r <= c for r, c in zip(lp.ranks, faster[lp.name]))
    if faster:
        assert plan.meta["error_allocation"]["reached"] >= 1.3


def test_pareto_search_picks_verifies_and_plots(fw, cache_dir, tmp_path):
    arrays = reference_arrays(width=16)
    model = tiny(fw, arrays, width=16)
    x, held = images(48, hw=32), images(48, seed=7, hw=32)
    reference = fw.predict(model, held).argmax(1)
    calls = []

    def agreement(m):
        calls.append(1)
        return float((fw.predict(m, held).argmax(1) == reference).mean())
    with pytest.raises(ConfigError, match="evaluate="):
        fw.plan(model, input_shape=(1, 3, 32, 32), mode="pareto", budget=1.2)
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="pareto", budget=1.2, pareto_ratios=[2.0, 3.0],
                   rank_multiple=8, exclude=["layer[123]\\..*"], objective="infer", profile_batch=1, calibration=x,
                   data_aware=True, evaluate=agreement, cache_path=str(cache_dir / "lat.json"))
    par = plan.meta["pareto"]
    assert par["baseline"] == 1.0 and par["evaluations"] == len(calls) - 2        # + baseline + verification
    assert 1 / par["estimated"]["size_ratio"] >= 1.2
    assert set(par["fixed_modes"]) >= {"vanilla", "mode3"} and par["front"]
    assert par["measured"]["drop"] == pytest.approx(1.0 - par["measured"]["metric"])
    race = par["race"]                          # timed against the fixed modes meeting the same budget
    kept = race["attempts"][(race["accepted"] or 1) - 1]
    assert par["measured"]["latency_ratios"] == kept["ratios"]
    assert kept["size_ratio"] == pytest.approx(par["estimated"]["size_ratio"], abs=1e-5)
    chosen = plan.decomposed()
    assert chosen and all(lp.data_aware for lp in chosen)
    assert all(not lp.name.startswith(("layer1", "layer2", "layer3")) for lp in chosen)
    tables = par["tables"]
    for lp in chosen:                           # each chosen option was measured alone
        assert any(row["option"].endswith("x".join(map(str, lp.ranks))) for row in tables[lp.name])
    fw.compress(model, plan)
    assert agreement(model) == pytest.approx(par["measured"]["metric"])
    from lrd_bench.pareto_plot import plot_front
    path = plot_front(par, str(tmp_path / "front.png"))
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert np.isfinite(par["estimated"]["latency_ratio"])
