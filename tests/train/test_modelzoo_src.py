"""modelzoo/resnet/src: dataset factory (per-rank slices), ModelZoo-style LR generator and callbacks."""
import importlib.util
import os

import numpy as np
import pytest

from lrd_recipe import config as recipe
from lrd_core.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dataset_module():
    path = os.path.join(ROOT, "modelzoo", "resnet", "src", "dataset.py")
    spec = importlib.util.spec_from_file_location("zoo_resnet_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_create_dataset_gives_each_rank_its_slice_of_the_global_batch():
    create = _dataset_module().create_dataset

    def cfg(batch):
        return recipe.namespace(framework="torch", dataset="digits", image_size=8, batch_size=batch, train_limit=96,
                                eval_limit=40, eval_batch_size=16, seed=4)

    whole = create(cfg(32), True)
    ranks = [create(cfg(16), True, rank=r, world=2) for r in range(2)]
    assert whole.steps_per_epoch == ranks[0].steps_per_epoch == ranks[1].steps_per_epoch == 3
    for epoch in (0, 1):
        for (x, y), (x0, y0), (x1, y1) in zip(whole.epoch_batches(epoch), ranks[0].epoch_batches(epoch),
                                              ranks[1].epoch_batches(epoch)):
            assert len(y0) == len(y1) == 16
            np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
            np.testing.assert_array_equal(np.concatenate([x0, x1]), x)
    seen = np.concatenate([y for _, y in create(cfg(16), False).epoch_batches(0)])
    assert len(seen) == 40                                           # evaluation: the whole set on every rank
    with pytest.raises(ConfigError, match=r"rank 2 is not in \[0, world=2\)"):
        create(cfg(16), True, rank=2, world=2)


def _src_module(name):
    path = os.path.join(ROOT, "modelzoo", "resnet", "src", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"zoo_resnet_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_lr_modelzoo_signature_known_values():
    get_lr = _src_module("lr_generator").get_lr
    lr = get_lr(lr_init=0.0, lr_end=0.0, lr_max=0.1, warmup_epochs=1, total_epochs=2, steps_per_epoch=5)
    np.testing.assert_allclose(lr, [0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.08, 0.06, 0.04, 0.02], rtol=1e-6)
    cos = get_lr(0.0, 0.0, 0.1, 0, 1, 4, lr_decay_mode="cosine")
    np.testing.assert_allclose(cos, 0.05 * (1 + np.cos(np.pi * np.arange(4) / 4)), rtol=1e-6)
    with pytest.raises(ConfigError):
        get_lr(0.0, 0.0, 0.1, 0, 1, 4, lr_decay_mode="exp")


def test_modelzoo_callbacks_under_ms_train_model():
    """The stand-alone callbacks for scripts that drive ms.train.Model themselves."""
    import lrd_mindspore  # noqa: F401  (device and ISA set-up)
    import mindspore as ms
    from mindspore import dataset, nn

    from lrd_data import ArrayData
    from lrd_mindspore.train import evaluate

    cb = _src_module("callbacks")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    ms.set_seed(0)
    net = nn.Dense(4, 2)
    model = ms.train.Model(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
                           nn.Momentum(net.trainable_params(), 0.1, 0.9))
    data = dataset.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(8)
    lines = []
    ev = cb.EvalCallBack(net, ArrayData(x, y, 2), interval=1, log=lines.append)
    model.train(2, data, callbacks=[ev, cb.StepTimeMonitor(8, every=2, log=lines.append)], dataset_sink_mode=False)
    assert [e for e, _ in ev.history] == [1, 2]
    assert ev.history[-1][1] == pytest.approx(evaluate(net, ArrayData(x, y, 2)))
    steps = [line for line in lines if "ms/step" in line]
    assert len(steps) == 4 and all("loss" in line and "img/s" in line for line in steps)    # 8 steps, every 2
    assert sum("eval accuracy" in line for line in lines) == 2
