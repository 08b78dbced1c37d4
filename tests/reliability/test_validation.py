"""Rules of :mod:`lrd_core.validate` with known answers: manual-rank precedence, recomputed totals, input sizes
too small for the network, degenerate matrices, NaN weights, framework of a training checkpoint."""
import json
import os
import re

import numpy as np
import pytest

from lrd_core import Plan
from lrd_core.cost import decomposed_cost
from lrd_core.errors import BadWeightsError, ConfigError, MismatchError, RankError
from lrd_core.factorize import svd, tucker2
from lrd_core.ranks import evbmf_rank
from lrd_core.trainstate import TrainState, check_framework, resume_text

from .lab import KW, SHAPE


def test_manual_ranks_exact_name_wins_overlapping_patterns_fail_and_other_selections_honour_them(fw):
    model = fw.models.resnet18(**KW, seed=0)
    plan = fw.plan(model, input_shape=SHAPE, rank_selection="manual",
                   ranks={"layer1\\..*": 2, "layer1.0.conv1": 3})
    assert plan["layer1.0.conv1"].ranks == (3, 3) and plan["layer1.1.conv2"].ranks == (2, 2)
    assert plan["layer2.0.conv1"].method == "none"                          # manual: only the named layers
    with pytest.raises(ConfigError, match=r"layer layer1\.0\.conv1 is matched by several rank patterns "
                                          r"\('layer1\\\\\..\*' and 'layer1\\\\\.0\\\\\..\*'\)"):
        fw.plan(model, input_shape=SHAPE, rank_selection="manual", ranks={"layer1\\..*": 2, "layer1\\.0\\..*": 3})
    pr = fw.plan(model, input_shape=SHAPE, mode="vanilla", rank_selection="pr", ratio=2.0, ranks={"layer3.1.conv2": 3})
    plain = fw.plan(model, input_shape=SHAPE, mode="vanilla", rank_selection="pr", ratio=2.0)
    assert pr["layer3.1.conv2"].ranks == (3, 3) and "overrides pr" in pr["layer3.1.conv2"].note
    assert plain["layer3.1.conv2"].ranks != (3, 3)
    assert [lp.ranks for lp in pr.layers if lp.name != "layer3.1.conv2"] == \
        [lp.ranks for lp in plain.layers if lp.name != "layer3.1.conv2"]


def test_edited_ranks_get_recomputed_costs_and_totals(lab, fw):
    d = json.loads(open(os.path.join(lab, "plan.json")).read())
    lp = next(x for x in d["layers"] if x["name"] == "layer4.1.conv2")          # a 32->32 3x3 conv
    lp["ranks"] = [32, 32]                                                       # grows the layer
    stale = dict(d["totals"])
    plan = Plan.from_dict(d)
    layer = plan["layer4.1.conv2"]
    assert (layer.params_after, layer.macs_after) == decomposed_cost(layer.info, "tucker2", (32, 32))
    assert layer.params_after > layer.params_before                              # 32*32 + 9*32*32 + 32*32 > 9*32*32
    assert plan.totals["params_after"] == stale["params_after"] - lp["params_after"] + layer.params_after
    model = fw.compress(fw.models.resnet18(**KW, seed=0), plan)
    others = fw.count_params(fw.models.resnet18(**KW, seed=0)) - plan.totals["params_before"]
    assert fw.count_params(model) == others + plan.totals["params_after"]


def test_inputs_too_small_for_the_network_are_refused_by_structure(fw):
    imagenet = fw.models.resnet18(num_classes=10, stem="imagenet", width=4, seed=0)
    with pytest.raises(ConfigError, match=r"input 1x3x16x16 is too small for this network: layer layer4\.0\.conv1 "
                                          r"\(stride 2x2\) would see a 1x1 input.*\(32 or more\)"):
        fw.inspect(imagenet, input_shape=(1, 3, 16, 16))
    assert len(fw.inspect(imagenet, input_shape=(1, 3, 32, 32))) == 21            # 32 -> 16 -> 8 -> 8 -> 4 -> 2 -> 1
    for side in (3, 4, 9, 13, 15):                                              # the size suggested works at once
        with pytest.raises(ConfigError, match=r"\(\d+ or more\)") as err:
            fw.inspect(imagenet, input_shape=(1, 3, side, side))
        hint = int(re.search(r"\((\d+) or more\)", str(err.value)).group(1))
        assert len(fw.inspect(imagenet, input_shape=(1, 3, hint, hint))) == 21, (side, hint)
    cifar = fw.models.resnet18(**KW, seed=0)
    infos = fw.inspect(cifar, input_shape=(1, 3, 8, 8))                          # 8 -> 8 -> 4 -> 2 -> 1: fine
    assert {i.name: i.input_hw for i in infos}["layer4.0.conv1"] == (2, 2)
    with pytest.raises(ConfigError, match="layer4.0.conv1"):
        fw.inspect(cifar, input_shape=(1, 3, 4, 4))
    with pytest.raises(ConfigError, match="input_shape must be"):
        fw.inspect(cifar, input_shape="32")


def test_evbmf_rank_of_degenerate_matrices():
    for shape in ((1, 7), (7, 1), (1, 1), (0, 4), (4, 0), (0, 0)):
        assert evbmf_rank(np.ones(shape)) == 0, shape
    assert evbmf_rank(np.zeros((6, 9))) == 0
    rng = np.random.default_rng(3)
    planted = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 70)) + 0.05 * rng.standard_normal((50, 70))
    assert evbmf_rank(planted) == 4
    for bad, error in ((np.array([[np.nan, 1.0], [1.0, 2.0]]), BadWeightsError), (np.ones(3), ConfigError),
                       ([["a", "b"]], ConfigError), (None, ConfigError)):
        with pytest.raises(error):
            evbmf_rank(bad)


def test_factorizations_refuse_nan_and_non_integer_ranks():
    w = np.random.default_rng(0).standard_normal((8, 6, 3, 3)).astype(np.float32)
    nan = w.copy()
    nan[1, 2, 0, 0] = np.nan
    with pytest.raises(BadWeightsError, match="NaN"):
        tucker2(nan, (2, 2))
    with pytest.raises(BadWeightsError, match="NaN"):
        svd(np.full((4, 5), np.inf), 2)
    for ranks in ((2.5, 2), (True, 2), (0, 2), (9, 2), (1, 2, 3)):
        with pytest.raises(RankError):
            tucker2(w, ranks)
    with pytest.raises(RankError):
        svd(w[:, :, :1, :1], 7)
    assert [s.weight.shape for s in tucker2(w, (4, 3))] == [(3, 6, 1, 1), (4, 3, 3, 3), (8, 4, 1, 1)]


def test_a_training_checkpoint_names_the_framework_that_wrote_it(tmp_path):
    for writer, reader in (("torch", "mindspore"), ("mindspore", "torch")):
        ckpt = tmp_path / writer
        ckpt.mkdir()
        (ckpt / ("model.pt" if writer == "torch" else "model.ckpt")).write_bytes(b"w")
        with pytest.raises(MismatchError, match=f"was written by {writer} .* this run uses {reader}: resume it with "
                                                f"framework {writer}"):
            check_framework(str(ckpt), reader)
        check_framework(str(ckpt), writer)
    with pytest.raises(MismatchError, match="holds no model.pt"):
        check_framework(str(tmp_path), "torch")
    done, half = TrainState(3, 10, global_step=30), TrainState(3, 10, global_step=12)
    assert "already finished this run (3/3 epochs, step 30/30)" in resume_text("d", done)
    assert "(step 12/30, epoch 2/3)" in resume_text("d", half)
