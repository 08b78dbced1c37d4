"""conv_method in plans: CP-3 / CP-4 (+ EPC) and basis ranks, plan JSON, costs, folding, and the bad inputs."""
import json

import numpy as np
import pytest

from lrd_core import Plan, decompose, make_plan
from lrd_core.cost import decomposed_cost, layer_params
from lrd_core.errors import ConfigError, RankError, UnsupportedLayerError
from lrd_core.factorize import fold
from lrd_core.factorize.cp import max_cp_rank, pr_cp3_rank, pr_cp4_rank
from lrd_core.layers import LayerInfo, Role
from lrd_core.skip import fold_state

CONV = LayerInfo("conv", "conv2d", 16, 24, (3, 3), (2, 2), (1, 1, 1, 1), has_bias=True, input_hw=(12, 12),
                 role=Role(stage=1))
PW = LayerInfo("pw", "conv2d", 24, 32, input_hw=(6, 6), role=Role(stage=1))
DW = LayerInfo("dw", "conv2d", 32, 32, (3, 3), (1, 1), (1, 1, 1, 1), groups=32, input_hw=(6, 6), role=Role(stage=1))
FC = LayerInfo("fc", "dense", 32, 10, has_bias=True, role=Role(is_final_dense=True))
LAYERS = [CONV, PW, DW, FC]


def weights(seed=0):
    rng = np.random.default_rng(seed)
    a, b, c = rng.standard_normal((24, 4)), rng.standard_normal((16, 4)), rng.standard_normal((9, 4))
    planted = np.einsum("or,ir,kr->oik", a, b, c)                  # CP rank 4 + noise: a real estimate
    out = {l.name: rng.standard_normal(l.weight_shape).astype(np.float32) for l in LAYERS}
    out["conv"] = (planted + 0.05 * rng.standard_normal(planted.shape)).reshape(CONV.weight_shape).astype(np.float32)
    return out


W = weights()


@pytest.mark.parametrize("method,pr", [("cp3", pr_cp3_rank), ("cp4", pr_cp4_rank)])
def test_cp_plans_ranks_costs_and_reports(method, pr):
    plan = make_plan(LAYERS, mode="all", weights=W, conv_method=method, ratio=3.0, epc=True, cp_iters=40)
    lp = plan["conv"]
    assert lp.method == method and lp.ranks == (pr(24, 16, 3, 3, 3.0),)            # 23 (cp3), 25 (cp4)
    assert (lp.params_after, lp.macs_after) == decomposed_cost(CONV, method, lp.ranks)
    assert plan["pw"].method == "svd" and plan["fc"].method == "svd"
    assert plan["dw"].method == "none" and "grouped" in plan["dw"].reason
    err, ss = lp.cp["error"], lp.cp["sensitivity"]
    assert err[1] <= err[0] * (1 + 1e-9) and ss[1] < ss[0]
    d = json.loads(json.dumps(plan.to_dict()))
    entry = next(x for x in d["layers"] if x["name"] == "conv")
    assert entry["method"] == method and entry["cp"] == {"error": err, "sensitivity": ss}
    assert "cp" not in next(x for x in d["layers"] if x["name"] == "pw")
    again = Plan.from_dict(d)
    assert again["conv"].cp == lp.cp and again.to_dict() == d
    subs = decompose(again, W, {"conv": np.ones(24, np.float32)})["conv"]
    w = W["conv"].astype(np.float64)
    assert np.linalg.norm(fold(method, subs) - w) / np.linalg.norm(w) == pytest.approx(err[1], rel=1e-5)
    np.testing.assert_array_equal(subs[-1].bias, np.ones(24, np.float32))
    assert max_cp_rank(CONV, method) == pr(24, 16, 3, 3, 1.0)


def test_cp_rank_selection_by_vbmf_and_quantization():
    plan = make_plan(LAYERS, mode=None, include=["conv"], weights=W, conv_method="cp3", rank_selection="vbmf",
                     vbmf_weakening=1.0, cp_iters=20)
    assert plan["conv"].ranks == (4,)                               # the planted channel rank
    q = make_plan(LAYERS, mode=None, include=["conv"], weights=W, conv_method="cp3", ratio=3.0, rank_multiple=16,
                  cp_iters=5)
    assert q["conv"].ranks == (16,)                                 # PR 23 -> nearest multiple of 16


def test_basis_plans_dense_mix_and_alpha_beta():
    plan = make_plan(LAYERS, mode=None, include=["conv"], weights=W, conv_method="basis", ratio=3.0)
    lp = plan["conv"]
    assert lp.ranks == (round(24 * 144 / (3 * (144 + 24))),) and lp.cp is None       # C' = 7
    plan = make_plan(LAYERS, mode=None, include=["conv"], weights=W, conv_method="basis", basis_alpha=0.5,
                     basis_beta=0.25)
    ab = plan["conv"]
    assert ab.ranks == (12, 6)
    # 12 basis filters at 6x6 outputs, then 24 outputs: 18 copies + 6 pairs = 30 MACs per position
    assert (ab.params_after, ab.macs_after) == (12 * 144 + 48 + 24, (12 * 144 + 30) * 36)
    subs = decompose(Plan.from_dict(plan.to_dict()), W)["conv"]
    assert subs[1].kind == "combine" and int((subs[1].index[:, 0] != subs[1].index[:, 1]).sum()) == 6
    assert subs[1].in_channels == 12


def test_fold_state_restores_the_uncompressed_state():
    plan = make_plan(LAYERS, mode="all", weights=W, conv_method="basis", basis_alpha=0.5, basis_beta=0.25)
    subs = decompose(plan, W, {"conv": np.arange(24, dtype=np.float32), "fc": np.ones(10, np.float32)})
    arrays = {"bn.weight": np.ones(3, np.float32)}
    for name, chain in subs.items():
        for i, s in enumerate(chain):
            arrays[f"{name}.{i}.weight"] = s.weight
            if s.bias is not None:
                arrays[f"{name}.{i}.bias"] = s.bias
            if s.index is not None:
                arrays[f"{name}.{i}.index"] = s.index
    arrays["dw.weight"] = W["dw"]
    out = fold_state(arrays, plan)
    assert set(out) == {"bn.weight", "conv.weight", "conv.bias", "pw.weight", "dw.weight", "fc.weight", "fc.bias"}
    np.testing.assert_allclose(out["conv.weight"], fold("basis", subs["conv"]).astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(out["conv.bias"], np.arange(24, dtype=np.float32))
    assert out["fc.weight"].shape == (10, 32) and out["conv.weight"].dtype == np.float32


@pytest.mark.parametrize("options,error,text", [
    (dict(conv_method="cp3", rank_selection="manual", ranks={"conv": 0}), ConfigError, "must be >= 1"),
    (dict(conv_method="cp3", rank_selection="manual", ranks={"conv": 10 ** 4}), RankError, "outside [1, 70]"),
    (dict(conv_method="cp4", rank_selection="manual", ranks={"conv": (4, 4)}), RankError, "takes one rank"),
    (dict(conv_method="basis", rank_selection="manual", ranks={"conv": 25}), RankError, "[1, 24] (Cout)"),
    (dict(conv_method="basis", basis_alpha=1.5, basis_beta=0.2), ConfigError, "basis_alpha must be in (0, 1]"),
    (dict(conv_method="basis", basis_alpha=0.5, basis_beta=0.0), ConfigError, "basis_beta must be in (0, 1]"),
    (dict(conv_method="basis", basis_alpha=0.6, basis_beta=0.4, basis_speedup=True), ConfigError,
     "needs alpha + beta < 1"),
    (dict(conv_method="basis", basis_alpha=0.5), ConfigError, "go together"),
    (dict(conv_method="cp3", basis_alpha=0.5, basis_beta=0.2), ConfigError, "apply to conv_method='basis'"),
    (dict(conv_method="cp5"), ConfigError, "unknown conv_method"),
    (dict(conv_method="cp3", include=["dw"]), UnsupportedLayerError, "grouped/depthwise conv (groups=32)"),
    (dict(conv_method="basis", rank_selection="manual", ranks={"dw": 4}), UnsupportedLayerError, "CP and basis"),
])
def test_bad_inputs_raise_one_clear_error(options, error, text):
    with pytest.raises(error) as info:
        make_plan(LAYERS, **{"mode": None, "cp_iters": 5, **options}, weights=W)
    assert text in str(info.value) and "\n" not in str(info.value)


def test_a_failed_cpd_is_the_layer_reason_unless_named(monkeypatch):
    from lrd_core.errors import DecompositionError
    from lrd_core.factorize import cp_basis

    def fail(*a, **k):
        raise DecompositionError("CP3 of layer conv at rank 24 is degenerate")
    monkeypatch.setattr(cp_basis, "factorize_cp", fail)
    cp_basis._CACHE.clear()
    plan = make_plan(LAYERS, mode="all", weights=W, conv_method="cp3", ratio=3.0)
    assert plan["conv"].method == "none" and "degenerate" in plan["conv"].reason
    assert plan["conv"].params_after == layer_params(CONV)
    with pytest.raises(DecompositionError):
        make_plan(LAYERS, mode=None, include=["conv"], weights=W, conv_method="cp3", ratio=3.0)
