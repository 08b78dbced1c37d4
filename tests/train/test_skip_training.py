"""Skip training (seed 003): basis convolutions in chosen layers for the first epochs, folded back exactly,
then the original schedule continues (LR history and data order untouched)."""
import json
import os

import numpy as np
import pytest

from lrd_cli.main import main
from lrd_core.errors import ConfigError
from lrd_core.schedule import epoch_schedule
from lrd_data import Loader
from lrd_recipe import config as recipe
from lrd_recipe.skip import ShiftedLoader
from tests.conftest import forward, perturb_bn
from tests.train.helpers import tiny_data

X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("options", [dict(conv_method="basis", basis_alpha=0.5, basis_beta=0.25),
                                     dict(conv_method="basis", basis_init="qr"), dict(conv_method="cp3", cp_iters=20)])
def test_fold_back_gives_the_uncompressed_network_of_the_same_outputs(fw, options):
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=8, seed=3)
    fw.load_numpy(model, perturb_bn(fw.state_to_numpy(model), seed=3))
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode=None, include=[r"layer[23]\..*conv2", "fc"], **options)
    fw.compress(model, plan)
    ref = forward(fw, model, X)
    fresh = fw.models.resnet18(num_classes=10, stem="cifar", width=8, seed=9)
    folded = fw.fold_back(model, plan, fresh)
    assert folded is fresh and set(fw.state_to_numpy(fresh)) == set(fw.state_to_numpy(
        fw.models.resnet18(num_classes=10, stem="cifar", width=8)))
    out = forward(fw, folded, X)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()            # seen: ~3e-7


def test_shifted_loader_continues_the_epochs():
    loader = Loader(tiny_data(40), 8, shuffle=True, seed=5)
    shifted = ShiftedLoader(loader, 3)
    for e in range(2):
        for (a, ya), (b, yb) in zip(shifted.epoch_batches(e), loader.epoch_batches(e + 3)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(shifted.batch(1, 2)[0], loader.batch(4, 2)[0])
    assert shifted.steps_per_epoch == loader.steps_per_epoch == 5


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_lrd_train_with_basis_skip_epochs(framework, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--framework", framework, "--width", "8", "--epoch_size", "3", "--train_limit", "128",
                 "--eval_limit", "64", "--batch_size", "32", "--progress", "false", "--seed", "0",
                 "--lr_decay_mode", "cosine", "--basis-layers", r"layer[23]\..*conv2", "--basis-skip-epochs", "2",
                 "--basis_alpha", "0.5", "--basis_beta", "0.25", "--basis-speedup", "true", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "train_summary.json").read_text())
    history = summary["runs"][0]["history"]
    assert [(h["epoch"], h["basis"]) for h in history] == [(1, True), (2, True), (3, False)]
    lr = epoch_schedule("cosine", 3, 4, 0.05, 0.0, 0.0, 0.0)                 # the whole run's schedule
    curve = summary["runs"][0]["curve"]
    assert [c[0] for c in curve][-1] == 12
    for step, _, _, value in curve:
        assert value == pytest.approx(float(lr[step - 1]), rel=1e-6)        # LR history untouched by the fold
    assert sorted(os.listdir(out / "original_skip"))[0].startswith("ckpt-")
    import importlib
    fw = importlib.import_module("lrd_" + framework)
    final = fw.models.resnet18(num_classes=10, stem="cifar", width=8)
    fw.load_checkpoint(final, summary["checkpoint"])                         # the original architecture


@pytest.mark.parametrize("overrides,needle", [
    (dict(basis_layers=["layer1.0.conv1"], basis_skip_epochs=5, epoch_size=2), "more than epoch_size"),
    (dict(basis_skip_epochs=1), "needs basis_layers"),
    (dict(basis_layers=["layer1.0.conv1"], basis_skip_epochs=1, basis_alpha=0.7, basis_beta=0.5,
          basis_speedup=True), "alpha + beta < 1"),
])
def test_bad_skip_settings_fail_at_parse_time(overrides, needle):
    with pytest.raises(ConfigError) as info:
        recipe.namespace(**overrides)
    assert needle in str(info.value)


def test_basis_layers_from_a_plan_file(tmp_path):
    from lrd_core import make_plan
    from lrd_core.layers import LayerInfo
    from lrd_recipe.options import skip_options

    layers = [LayerInfo(n, "conv2d", 16, 16, k, (1, 1), (k[0] // 2,) * 4, input_hw=(8, 8))
              for n, k in (("a.conv1", (3, 3)), ("a.conv2", (3, 3)), ("a.proj", (1, 1)), ("b.conv1", (3, 3)))]
    path = tmp_path / "aware_plan.json"
    make_plan(layers, mode=None, include=["a.conv2", "a.proj", "b.conv1"], ratio=2.0,
              skip_unreduced=False).to_json(str(path))
    cfg = recipe.namespace(basis_layers=[str(path), "a.conv1"], basis_skip_epochs=1, epoch_size=2)
    assert skip_options(cfg)["include"] == ["a.conv2", "b.conv1", "a.conv1"]        # KxK convs of the plan, in order
    make_plan(layers, mode=None, include=["a.proj"], ratio=2.0, skip_unreduced=False).to_json(str(path))
    with pytest.raises(ConfigError) as info:
        recipe.namespace(basis_layers=[str(path)], basis_skip_epochs=1, epoch_size=2)
    assert "decomposes no KxK conv" in str(info.value)
