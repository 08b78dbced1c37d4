"""make_plan decisions, errors, totals and the JSON round trip."""
import json

import numpy as np
import pytest

from lrd_core import Plan, PlanConfig, decompose, make_plan
from lrd_core.errors import (BadWeightsError, ConfigError, MismatchError, RankError, UnknownLayerError,
                             UnsupportedLayerError)
from lrd_core.factorize import compose
from lrd_core.layers import LayerInfo, Role
from tests.core.resnet_infos import resnet_infos

R50 = resnet_infos(50)


def weights_for(layers, seed=0):
    rng = np.random.default_rng(seed)
    return {l.name: rng.standard_normal(l.weight_shape).astype(np.float32) * 0.05 for l in layers}


def test_paper_setting_resnet50():
    plan = make_plan(R50, mode="mode3", rank_selection="pr", ratio=3.0, final_dense_ratio=1.3, rank_multiple=32)
    d = plan.to_dict()
    assert [l["name"] for l in d["layers"]] == [l.name for l in R50]          # every conv/dense listed
    assert sum(l["selected"] for l in d["layers"]) == 45
    for l in d["layers"]:
        if l["method"] != "none":
            assert all(r % 32 == 0 for r in l["ranks"]) and l["reason"] is None
            assert l["params_after"] < l["params_before"]
        else:
            assert l["reason"] and l["ranks"] is None and l["params_after"] == l["params_before"]
    # 64-channel 1x1 convs cannot shrink at rank 32 -> kept with a reason
    assert "would not reduce" in plan["layer1.0.conv1"].reason
    assert plan["layer4.0.conv2"].method == "tucker2" and plan["layer4.0.conv2"].ranks == (256, 256)
    assert plan["fc"].ranks == (512,)        # 2048*1000/(1.3*3048) = 516.8 -> 512
    t = d["totals"]
    for key in ("params_before", "params_after", "macs_before", "macs_after"):
        assert t[key] == sum(l[key] for l in d["layers"])
    assert t["params_before"] == 25_503_912 and t["macs_before"] == 4_089_184_256   # conv + fc of ResNet-50


def test_json_round_trip(tmp_path):
    w = weights_for(R50)
    plan = make_plan(R50, weights=w, mode="vanilla", rank_selection="vbmf", vbmf_weakening=0.5, rank_multiple=8,
                     include=["conv1"], exclude=["layer4\\..*"], meta={"model": "resnet50"})
    path = plan.to_json(tmp_path / "plan.json")
    again = Plan.from_json(path)
    assert again.to_dict() == plan.to_dict()
    raw = json.loads(open(path).read())
    assert set(raw) >= {"version", "config", "layers", "totals"}
    assert set(raw["layers"][0]) >= {"name", "kind", "selected", "method", "ranks", "reason", "params_before",
                                     "params_after", "macs_before", "macs_after"}
    assert not list(tmp_path.glob(".plan-*"))       # no temp file left behind


def test_same_inputs_same_plan():
    w = weights_for(R50[:10])
    a = make_plan(R50[:10], weights=w, mode="all", rank_selection="energy", energy=0.8)
    b = make_plan(R50[:10], weights={k: v.copy() for k, v in w.items()}, mode="all", rank_selection="energy",
                  energy=0.8)
    assert a.to_dict() == b.to_dict()


def test_summary_lists_layers_and_totals():
    plan = make_plan(R50, mode="mode3", ratio=3.0, rank_multiple=32)
    text = plan.summary()
    assert "layer4.2.conv2" in text and "TOTAL" in text and "44/54 decomposed" in text
    assert f"{plan.totals['params_before'] / plan.totals['params_after']:.2f}x" in text


def test_final_dense_ratio_is_milder():
    plan = make_plan(R50, mode="vanilla", ratio=3.0, final_dense_ratio=1.3)
    fc = plan["fc"]
    assert fc.params_before / fc.params_after == pytest.approx(1.3, rel=0.01)
    assert plan["layer3.0.conv2"].params_before / plan["layer3.0.conv2"].params_after == pytest.approx(3.0, rel=0.02)


def test_vbmf_on_random_weights_clamps_to_minimum_rank_with_note():
    layers = R50[:5]
    rng = np.random.default_rng(0)
    w = {l.name: rng.standard_normal(l.weight_shape).astype(np.float32) for l in layers}
    plan = make_plan(layers, weights=w, mode="all", rank_selection="vbmf", vbmf_weakening=1.0, rank_multiple=16)
    lp = plan["layer1.0.conv2"]
    assert lp.ranks == (16, 16) and "clamped to the minimum rank" in lp.note


def test_manual_ranks_regex_and_exact():
    plan = make_plan(R50, rank_selection="manual", mode=None,
                     ranks={"layer4\\.\\d\\.conv2": (128, 64), "fc": 100})
    assert plan["layer4.1.conv2"].ranks == (128, 64) and plan["fc"].ranks == (100,)
    assert len(plan.decomposed()) == 4
    assert plan["layer3.0.conv2"].reason == "not selected"


def test_grouped_conv_is_skipped_by_modes_and_refused_when_named():
    layers = [LayerInfo("layer1.0.conv2", "conv2d", 32, 32, (3, 3), groups=32, input_hw=(8, 8), role=Role(stage=1)),
              LayerInfo("layer1.0.conv3", "conv2d", 32, 64, (1, 1), input_hw=(8, 8), role=Role(stage=1))]
    plan = make_plan(layers, mode="vanilla", ratio=2.0)
    assert plan["layer1.0.conv2"].method == "none" and "depthwise" in plan["layer1.0.conv2"].reason
    assert plan["layer1.0.conv3"].method == "svd"
    with pytest.raises(UnsupportedLayerError, match="layer1.0.conv2"):
        make_plan(layers, mode=None, include=["layer1.0.conv2"])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(ratio=1.0), ConfigError, "ratio"),
    (dict(ratio=0.5), ConfigError, "ratio"),
    (dict(final_dense_ratio=1.0), ConfigError, "final_dense_ratio"),
    (dict(mode="mode9"), ConfigError, "mode9"),
    (dict(include=["layer9.*"]), UnknownLayerError, "layer9"),
    (dict(exclude=["nope"]), UnknownLayerError, "nope"),
    (dict(rank_selection="manual", ranks={"layer1.0.conv2": (65, 8)}), RankError, "layer1.0.conv2"),
    (dict(rank_selection="manual", ranks={"fc": (10, 20)}), RankError, "fc"),
    (dict(rank_selection="manual"), ConfigError, "ranks"),
    (dict(rank_selection="vbmf"), ConfigError, "checkpoint"),
    (dict(rank_multiple=0), ConfigError, "rank_multiple"),
    (dict(energy=1.5), ConfigError, "energy"),
])
def test_bad_input_errors_name_the_problem(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_plan(R50, **kwargs)


def test_nan_weights_are_refused_with_the_layer_name():
    w = weights_for(R50)
    w["layer2.1.conv2"][0, 0, 0, 0] = np.nan
    with pytest.raises(BadWeightsError, match="layer2.1.conv2"):
        make_plan(R50, weights=w, mode="vanilla")
    plan = make_plan(R50, mode="vanilla")
    with pytest.raises(BadWeightsError, match="layer2.1.conv2"):
        decompose(plan, w)


def test_decompose_checks_shapes_and_reconstructs():
    layers = R50[:6]
    w = weights_for(layers)
    plan = make_plan(layers, mode="all", rank_selection="manual", skip_unreduced=False,
                     ranks={l.name: (l.out_channels, l.in_channels) if l.kernel != (1, 1) else
                            min(l.out_channels, l.in_channels) for l in layers[1:]})
    subs = decompose(plan, w)
    for name, chain in subs.items():
        np.testing.assert_allclose(compose(chain).reshape(w[name].shape), w[name], atol=1e-6)
    bad = dict(w)
    bad["layer1.0.conv2"] = np.zeros((64, 32, 3, 3), np.float32)
    with pytest.raises(MismatchError, match="layer1.0.conv2"):
        decompose(plan, bad)


def test_config_round_trip_and_unknown_keys():
    cfg = PlanConfig(mode="mode2", ranks={"a": (3, 4)}, include=["x"])
    assert PlanConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="ratoi"):
        PlanConfig.from_dict({"ratoi": 3})


def test_version_mismatch(tmp_path):
    plan = make_plan(R50[:3], mode="all")
    d = plan.to_dict()
    d["version"] = 99
    with pytest.raises(MismatchError, match="version"):
        Plan.from_dict(d)
