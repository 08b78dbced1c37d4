"""Multi-stage compression numerics (framework-neutral)."""
import numpy as np
import pytest

from lrd_core import multistage as M
from lrd_core.errors import ConfigError
from lrd_core.factorize import compose, skeleton, tucker2
from lrd_core.layers import LayerInfo, Role
from lrd_core.planner import make_plan

INFOS = [LayerInfo("conv", "conv2d", 24, 32, (3, 3), padding=(1, 1, 1, 1), input_hw=(8, 8), role=Role(stage=1)),
         LayerInfo("pw", "conv2d", 32, 48, (1, 1), input_hw=(8, 8), role=Role(stage=2)),
         LayerInfo("fc", "dense", 48, 10, has_bias=True, role=Role(is_final_dense=True))]


def _plan(ranks, **kw):
    return make_plan(INFOS, mode="all", rank_selection="manual", ranks=ranks, **kw)


def _random_chains(plan, seed=0, planted=None):
    """Chains with random (non-orthogonal, fine-tuned-looking) factors; optionally a planted core rank."""
    rng = np.random.default_rng(seed)
    chains = {}
    for lp in plan.decomposed():
        subs = skeleton(lp.info, lp.method, lp.ranks)
        for s in subs:
            s.weight = rng.standard_normal(s.weight.shape)
        if planted and lp.name in planted:        # orthonormal outer factors, core = low rank + noise
            for s in (subs[0], subs[-1]):
                q = np.linalg.qr(rng.standard_normal((max(s.weight.shape[:2]), min(s.weight.shape[:2]))))[0]
                s.weight = (q if s.weight.shape[0] >= s.weight.shape[1] else q.T).reshape(s.weight.shape)
            r = planted[lp.name]
            core = subs[1 if lp.method == "tucker2" else 0].weight
            a = rng.standard_normal((core.shape[0], r)) @ rng.standard_normal((r, int(np.prod(core.shape[1:]))))
            subs[1 if lp.method == "tucker2" else 0].weight = (a + 0.01 * rng.standard_normal(a.shape)).reshape(core.shape)
        if subs[-1].has_bias:
            subs[-1].bias = rng.standard_normal(subs[-1].bias.shape)
        chains[lp.name] = subs
    return chains


def test_redecompose_svd_is_the_truncated_svd_of_the_product():
    plan = _plan({"conv": (16, 16), "pw": 16, "fc": 8})
    chains = _random_chains(plan)
    lp = plan["pw"]
    new = M.redecompose(lp, chains["pw"], (6,))
    assert [s.weight.shape for s in new] == [(6, 32, 1, 1), (48, 6, 1, 1)]
    w = compose(chains["pw"])[:, :, 0, 0]
    u, s, vt = np.linalg.svd(w)
    best = (u[:, :6] * s[:6]) @ vt[:6]
    np.testing.assert_allclose(compose(new)[:, :, 0, 0], best, atol=1e-9 * np.abs(best).max())
    fc = M.redecompose(plan["fc"], chains["fc"], (3,))
    np.testing.assert_array_equal(fc[-1].bias, chains["fc"][-1].bias)


def test_redecompose_tucker_matches_tucker2_of_the_product_and_keeps_geometry():
    plan = _plan({"conv": (20, 16), "pw": 16, "fc": 8})
    chains = _random_chains(plan, seed=1)
    new = M.redecompose(plan["conv"], chains["conv"], (8, 6))
    assert [s.weight.shape for s in new] == [(6, 24, 1, 1), (8, 6, 3, 3), (32, 8, 1, 1)]
    assert [s.position for s in new] == ["first", "core", "last"] and new[1].padding == (1, 1, 1, 1)
    w = compose(chains["conv"])
    direct = compose(tucker2(w, (8, 6), n_iter=20))
    err_new = np.linalg.norm(compose(new) - w) / np.linalg.norm(w)
    err_direct = np.linalg.norm(direct - w) / np.linalg.norm(w)
    assert err_new <= err_direct * (1 + 1e-3)                      # as good as decomposing the full product
    # unchanged ranks reproduce the layer exactly
    same = M.redecompose(plan["conv"], chains["conv"], (20, 16))
    np.testing.assert_allclose(compose(same), w, atol=1e-9 * np.abs(w).max())


def test_vbmf_stage_finds_the_planted_core_rank_and_never_grows():
    plan = _plan({"conv": (24, 20), "pw": 24, "fc": 8})
    chains = _random_chains(plan, seed=2, planted={"conv": 5})
    new = M.next_plan(plan, chains, M.StageConfig(rank_selection="vbmf", vbmf_weakening=1.0), stage=2)
    assert new["conv"].ranks[0] == 5                    # mode-0 rank of the planted core
    for a, b in zip(plan.decomposed(), new.decomposed()):
        assert all(y <= x for x, y in zip(a.ranks, b.ranks))
    assert new.totals["params_after"] < plan.totals["params_after"]
    assert new.meta["stage"] == 2 and new.meta["stages"][-1]["changed"]["conv"][1][0] == 5
    half = M.next_plan(plan, chains, M.StageConfig(vbmf_weakening=0.5), stage=2)
    assert half["conv"].ranks[0] == round(24 - 0.5 * (24 - 5))


def test_pr_stages_step_the_target_and_respect_the_classifier_floor():
    plan = _plan({"conv": (28, 20), "pw": 28, "fc": 8}, final_dense_ratio=1.3)
    chains = _random_chains(plan, seed=3)
    cfg = M.StageConfig(rank_selection="pr", ratios=(2.0, 4.0))
    s2 = M.next_plan(plan, chains, cfg, 2)
    s3 = M.next_plan(s2, {k: M.redecompose(s2[k], v, s2[k].ranks) for k, v in chains.items()}, cfg, 3)
    p1, p2, p3 = (p.totals["params_after"] for p in (plan, s2, s3))
    assert p1 > p2 > p3
    conv = INFOS[0]
    assert s2["conv"].params_after <= conv.out_channels * conv.in_channels * 9 / 2.0 * 1.1
    assert s3["fc"].ranks == s2["fc"].ranks                          # classifier stays at 1.3x


def test_stop_rules():
    plan = _plan({"conv": (16, 16), "pw": 16, "fc": 8})              # 1.80x overall
    assert M.should_continue(plan, plan, M.StageConfig(max_stages=3), 2) == (False, "ranks stopped changing")
    assert M.should_continue(plan, None, M.StageConfig(max_stages=3), 3) == (True, "")
    assert not M.should_continue(plan, None, M.StageConfig(max_stages=2), 3)[0]
    assert M.should_continue(plan, None, M.StageConfig(target_ratio=1.8), 2)[1] == "target ratio 1.8x reached (1.80x)"
    assert M.should_continue(plan, None, M.StageConfig(target_ratio=1.9), 2)[0]
    with pytest.raises(ConfigError, match="non-decreasing"):
        M.StageConfig(rank_selection="pr", ratios=(3.0, 2.0))
    with pytest.raises(ConfigError, match="unknown stage rank selection"):
        M.StageConfig(rank_selection="energy")
