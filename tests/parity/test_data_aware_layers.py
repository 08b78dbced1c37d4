"""Every layer of the digits model and of ResNet-50 (small input): at the plan's ranks the data-aware
chain's output error on held-out data is below the weight-space chain's, in both frameworks."""
import numpy as np
import pytest

from lrd_core import calibrate as C
from lrd_core.factorize import compose, factorize_layer
from lrd_data import load_digits


@pytest.fixture(autouse=True)
def one_torch_thread():
    """torch's intra-op threads only wait for each other on a loaded 2-core machine (a 16-channel conv
    took 47 ms); these tests time nothing."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def bn_calibrated(fw, name, data, **kw):
    """A randomly initialised model whose BatchNorm statistics are estimated on ``data`` (like a
    trained net's, activations stay in range)."""
    import importlib

    model = fw.models.create_model(name, num_classes=10, seed=0, **kw)
    importlib.import_module(f"lrd_{fw.FRAMEWORK}.train").recalibrate_bn(model, data, batches=4, batch_size=64)
    return model


def held_out_errors(fw, model, plan, held, group=16):
    """``{layer: (data-aware error, weight-space error)}``: relative output errors of the two chains on
    the held-out inputs each layer receives, ``||(W - W') x|| / ||W x||`` over every receptive field."""
    backend = fw.BACKEND
    layers = dict(backend.named_layers(model))
    chains = plan.calibration.chains
    out = {}
    todo = plan.decomposed()
    for k in range(0, len(todo), group):
        part = {lp.name: lp for lp in todo[k:k + group]}
        seen = {}
        backend.record_inputs(model, held, list(part), lambda n, x: seen.setdefault(n, x))
        for name, lp in part.items():
            i = lp.info
            x = seen[name]
            rows = (np.concatenate(list(C.patch_rows(x, i.kernel, i.stride, i.padding, i.dilation, dtype=np.float32)))
                    if i.kind == "conv2d" else x.reshape(-1, x.shape[-1]))
            w = backend.weight(layers[name])
            ws = factorize_layer(i, lp.method, lp.ranks, w, backend.bias(layers[name]))
            flat = w.reshape(len(w), -1)
            base = np.linalg.norm(rows @ flat.T)
            err = [np.linalg.norm(rows @ (flat - compose(c).reshape(len(w), -1)).T) / base
                   for c in (chains[name][1], ws)]
            out[name] = tuple(err)
    return out


def test_every_layer_of_the_digits_model(fw):
    train, test = load_digits(size=32, seed=0)
    model = bn_calibrated(fw, "resnet18", train, stem="cifar", width=16)
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="all", ratio=2.0, rank_multiple=4,
                   calibration=train.x[:384], data_aware=True, calibration_cache=False)
    errors = held_out_errors(fw, model, plan, test.x[:192])
    assert len(errors) >= 19                                   # every conv/dense layer but a few unreduced
    worse = {n: e for n, e in errors.items() if not e[0] < e[1]}
    assert not worse
    ratio = np.mean([a / b for a, b in errors.values()])
    assert ratio < 0.6                                          # data-aware errors are far below


@pytest.mark.slow
def test_every_layer_of_resnet50_at_64px(lrd_torch):
    """Every layer of ResNet-50 (all 53 convs/dense, bottleneck shapes; base width 16 instead of 64 to
    keep the test fast) in torch (the numerics are the framework-free core; the other framework's
    statistics match torch's to 1e-5, see test_calibration.py)."""
    fw = lrd_torch
    train, test = load_digits(size=64, seed=0)
    model = bn_calibrated(fw, "resnet50", train, stem="imagenet", width=16)
    plan = fw.plan(model, input_shape=(1, 3, 64, 64), mode="vanilla", ratio=2.0, rank_multiple=4,
                   calibration=train.x[:192], data_aware=True, calibration_cache=False)
    kinds = {lp.calibration["stats"] for lp in plan.decomposed()}
    assert kinds == {"patch", "channel"}                       # few positions in the last stages: channel
    errors = held_out_errors(fw, model, plan, test.x[:96])
    assert len(errors) == len(plan.decomposed()) >= 52
    worse = {n: e for n, e in errors.items() if not e[0] < e[1]}
    assert not worse
