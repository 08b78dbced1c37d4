"""``plan(mode="auto")`` and ``measure_latency`` through both adapters on a tiny ResNet (no timing asserted)."""
import importlib

import numpy as np
import pytest

from tests.conftest import forward

SHAPE = (1, 3, 16, 16)
OPTIONS = dict(mode="auto", ratio=2.0, rank_multiple=4, objective="infer", profile_batch=2, search_radius=0,
               verify_rounds=1)


def threads(fw):
    """One thread for torch (restored afterwards); MindSpore keeps its process-wide setting."""
    return {"threads": 1} if fw.FRAMEWORK == "torch" else {}


def tiny(fw):
    return fw.models.resnet18(stem="cifar", width=8, num_classes=10, seed=0)


def test_auto_plan_decides_every_candidate_and_reuses_the_cache(fw, tmp_path):
    cache = str(tmp_path / "latency.json")
    model = tiny(fw)
    before = fw.state_to_numpy(model)
    plan = fw.plan(model, input_shape=SHAPE, cache_path=cache, **OPTIONS, **threads(fw))
    auto = plan.meta["auto"]
    assert plan.config.mode == "auto" and auto["phases"] == ["infer@1", "infer@2"]
    assert auto["profile"]["misses"] > 0 and auto["profile"]["hits"] == 0
    for lp in plan.layers:
        if lp.decomposed:
            assert lp.reason is None and lp.note.startswith("auto")
            assert lp.params_after < lp.params_before
        else:
            assert lp.reason and ("auto" in lp.reason or "reduce" in lp.reason)
    if plan.decomposed():        # the whole network was timed against the original
        assert len(auto["verify"]) >= 1 and set(auto["verify"][0]["ratios"]) == {"infer@1", "infer@2"}
    again = fw.plan(model, input_shape=SHAPE, cache_path=cache, **OPTIONS, **threads(fw))
    assert again.meta["auto"]["profile"]["misses"] == 0
    assert again.meta["auto"]["profile"]["hits"] == auto["profile"]["misses"]
    assert [(lp.name, lp.method, lp.ranks) for lp in again.layers] == \
           [(lp.name, lp.method, lp.ranks) for lp in plan.layers]
    after = fw.state_to_numpy(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)    # timing never trains the caller's net
    fw.compress(model, plan)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    assert forward(fw, model, x).shape == (2, 10)


def test_measure_latency_single_and_interleaved(fw):
    lat = fw.latency
    model = tiny(fw)
    before = fw.state_to_numpy(model)
    one = lat.measure_latency(model, (2, 3, 16, 16), "CPU", "infer", warmup=1, repeat=3, **threads(fw))
    assert one.median_ms > 0 and one.batch == 2 and one.framework == fw.FRAMEWORK and len(one.timing.samples) == 3
    plan = fw.plan(model, input_shape=SHAPE, mode="vanilla", ratio=2.0, rank_multiple=4)
    pair = lat.measure_latency([model, lat.with_plan(model, plan)], (2, 3, 16, 16), "CPU", "train",
                               warmup=1, repeat=3, num_classes=10, **threads(fw))
    assert pair[0].ratio == 1.0 and pair[1].ratio > 0 and pair[1].phase == "train"
    assert lat.count_params(lat.with_plan(model, plan)) < lat.count_params(model)
    after = fw.state_to_numpy(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(Exception, match="mode must be"):
        lat.measure_latency(model, (2, 3, 16, 16), "CPU", "fast")


def test_peak_memory_probe_in_a_fresh_process(fw):
    lat = fw.latency
    mem = lat.peak_memory("resnet18", {"stem": "cifar", "width": 16, "num_classes": 10}, None, (8, 3, 32, 32))
    assert mem["kind"] == "host RSS"
    assert 0 < mem["infer_peak_mb"] < mem["train_peak_mb"] < 4096
