"""Multi-stage compression on live networks, both frameworks: ranks shrink stage by stage, the
layer count does not grow, and every stage's plan + weights reload into an identical network."""
import importlib

import numpy as np

from lrd_core import multistage as M

from tests.conftest import forward

from .helpers import INPUT, compressed_tiny, tiny_data, tiny_model


def test_stages_shrink_ranks_without_adding_layers(fw, tmp_path):
    stages = fw.multistage
    model, plan = compressed_tiny(fw, ratio=1.2)
    n_layers = len(fw.inspect(model, input_shape=INPUT))
    x = tiny_data(8).x
    cfg = M.StageConfig(rank_selection="pr", ratios=(2.0, 3.0))
    history = [plan]
    for stage in (2, 3):
        before = stages.read_chains(model, plan)
        new, changed = stages.compress_stage(model, plan, cfg, stage)
        assert changed and len(fw.inspect(model, input_shape=INPUT)) == n_layers
        for a, b in zip(plan.decomposed(), new.decomposed()):
            assert all(y <= x_ for x_, y in zip(a.ranks, b.ranks))
        # the live chains are exactly the core re-decomposition of the chains before
        after = stages.read_chains(model, new)
        for name in changed:
            want = M.redecompose(new[name], before[name], new[name].ranks)
            for got, ref in zip(after[name], want):
                np.testing.assert_allclose(got.weight, ref.weight, rtol=1e-5, atol=1e-6)
        out = str(tmp_path / f"stage{stage}")
        fw.save(model, new, out)
        reloaded = fw.load(out, tiny_model(fw))
        np.testing.assert_allclose(forward(fw, reloaded, x), forward(fw, model, x), rtol=1e-5, atol=1e-5)
        history.append(new)
        plan = new
    params = [p.totals["params_after"] for p in history]
    assert params[0] > params[1] > params[2]
