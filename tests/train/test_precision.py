"""Ascend training conventions on CPU: mixed precision (amp_level) and fixed / dynamic loss scaling."""
import numpy as np
import pytest

from lrd_core.errors import ConfigError
from lrd_core.precision import PrecisionConfig
from lrd_data import Loader

from .helpers import params, tiny_data, tiny_model, train_module


def _fit(fw, precision, steps=3):
    model = tiny_model(fw, bn=True, seed=0)
    data = Loader(tiny_data(16 * steps), 16, seed=3)
    lr = np.full(steps, 0.05, np.float32)
    result = train_module(fw).fit(model, data, lr, 1, log=None, precision=precision)
    return model, result


def test_fixed_loss_scale_trains_like_float32(fw):
    """A power-of-two scale is exact: the weights match the unscaled run (MindSpore: scaled step; torch on CPU:
    GradScaler needs CUDA, scaling skipped)."""
    ref, r0 = _fit(fw, None)
    got, r1 = _fit(fw, {"loss_scale_type": "fixed", "loss_scale": 1024.0})
    a, b = params(fw, ref), params(fw, got)
    assert all(np.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
    assert r0["history"][-1]["loss"] == pytest.approx(r1["history"][-1]["loss"], rel=1e-5)


def test_mixed_precision_with_dynamic_loss_scale_trains(fw):
    """O2 + dynamic scaling: the loss stays within half-precision error of float32 training and the weights
    move (O2 computes in float16 on MindSpore, bfloat16 autocast on torch CPU)."""
    ref, r0 = _fit(fw, None)
    got, r1 = _fit(fw, {"amp_level": "O2", "loss_scale_type": "dynamic", "loss_scale": 256.0, "scale_window": 2})
    l0, l1 = r0["history"][-1]["loss"], r1["history"][-1]["loss"]
    assert np.isfinite(l1) and abs(l1 - l0) < 0.05 * abs(l0) + 0.02
    start = params(fw, tiny_model(fw, bn=True, seed=0))
    moved = params(fw, got)
    assert any(not np.allclose(start[k], moved[k]) for k in start if k.endswith("weight"))


@pytest.mark.parametrize("bad, message", [
    ({"amp_level": "O4"}, "amp_level 'O4': choose one of O0, O1, O2, O3"),
    ({"loss_scale_type": "auto"}, "loss_scale_type 'auto'"),
    ({"dataset_sink_mode": True, "sink_size": -3}, "sink_size must be -1 (whole epoch) or > 0, got -3"),
    ({"sink_size": 0}, "sink_size must be -1"),
])
def test_bad_precision_settings(bad, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PrecisionConfig(**bad)


def test_recipe_keys_reach_the_trainer():
    from lrd_recipe import config
    from lrd_recipe.options import precision_options

    cfg = config.parse(["--amp_level", "O2", "--loss_scale_type", "fixed", "--loss_scale", "1024"])
    assert precision_options(cfg) == PrecisionConfig(amp_level="O2", loss_scale_type="fixed", loss_scale=1024.0)
    with pytest.raises(ConfigError, match="amp_level"):
        config.parse(["--amp_level", "O5"])


def test_mindspore_o2_dynamic_scaling_in_graph_mode(lrd_mindspore):
    from .helpers import graph_mode

    with graph_mode(lrd_mindspore):
        _, r0 = _fit(lrd_mindspore, None, steps=2)
        _, r1 = _fit(lrd_mindspore, {"amp_level": "O2", "loss_scale_type": "dynamic", "loss_scale": 256.0}, steps=2)
    l0, l1 = r0["history"][-1]["loss"], r1["history"][-1]["loss"]
    assert np.isfinite(l1) and abs(l1 - l0) < 0.05 * abs(l0) + 0.02
