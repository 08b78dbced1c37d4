"""The two trainers agree: same init, data, schedule and freezing give the same weights; BatchNorm
re-calibration gives the exact batch statistics (NumPy reference)."""
import numpy as np
import pytest

from lrd_core.freezing import FreezeConfig
from lrd_data import Loader

from tests.conftest import forward

from .helpers import compressed_tiny, graph_mode, params, tiny_data, tiny_model, train_module


def test_torch_and_mindspore_train_to_the_same_weights(lrd_torch, lrd_mindspore):
    out = {}
    for fw in (lrd_torch, lrd_mindspore):
        model, plan = compressed_tiny(fw)
        with graph_mode(fw):
            result = train_module(fw).fit(model, Loader(tiny_data(48), 16, seed=4), np.array([0.1, 0.05, 0.05, 0.02]),
                                          1, plan=plan, freeze=FreezeConfig("sequential", unit="step"),
                                          weight_decay=1e-3, label_smoothing=0.1, log=None)
        out[fw.FRAMEWORK] = (params(fw, model), result["history"][0]["loss"])
    (pt, loss_t), (pm, loss_m) = out["torch"], out["mindspore"]
    assert set(pm) == {k for k in pt if not k.endswith("num_batches_tracked")}
    for k in pm:
        np.testing.assert_allclose(pm[k], pt[k], rtol=1e-4, atol=2e-5, err_msg=k)
    assert loss_m == pytest.approx(loss_t, rel=1e-5)


def test_bn_recalibration_is_the_average_of_batch_statistics(fw):
    model = tiny_model(fw)
    data = tiny_data(64, seed=7)
    loader = Loader(data, 16, shuffle=False)
    used = train_module(fw).recalibrate_bn(model, loader, batches=3)
    assert used == 3
    # NumPy reference: bn1 sees conv1's output; its running stats = mean over the 3 batches of the
    # per-batch mean / unbiased variance
    w = params(fw, model)["conv1.weight"]
    means, variances = [], []
    for k in range(3):
        x = data.x[16 * k:16 * (k + 1)].astype(np.float64)
        pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = np.stack([pad[:, :, i:i + 8, j:j + 8] for i in range(3) for j in range(3)], axis=-1)
        y = np.einsum("nchwk,ock->nohw", cols, w.reshape(8, 3, 9))
        means.append(y.mean(axis=(0, 2, 3)))
        variances.append(y.var(axis=(0, 2, 3), ddof=1))
    got = params(fw, model)
    np.testing.assert_allclose(got["bn1.running_mean"], np.mean(means, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["bn1.running_var"], np.mean(variances, 0), rtol=1e-4, atol=1e-5)
    assert np.isfinite(forward(fw, model, data.x[:4])).all()
