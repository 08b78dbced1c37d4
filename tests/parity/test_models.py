"""ResNet zoo and NumPy state conversion: same structure, names and outputs in both frameworks."""
import numpy as np
import pytest

import mindspore as ms
import torch
from mindspore import nn as msnn
from torch import nn as tnn

from lrd_core import naming
from lrd_core.errors import ConfigError, MismatchError
from lrd_mindspore import models as msm
import lrd_mindspore as mss
from lrd_mindspore import naming as ms_naming
from lrd_torch import models as tm
import lrd_torch as ts

ZOO = {"torch": (tm, ts), "mindspore": (msm, mss)}


@pytest.fixture(autouse=True, scope="module")
def _mindspore_cpu():
    ms.set_context(mode=ms.PYNATIVE_MODE)   # the device is set once in conftest


@pytest.fixture(params=sorted(ZOO))
def fw(request):
    """(models module, state module) of one framework."""
    return ZOO[request.param]


def _no_nbt(arrays):
    return {k: v for k, v in arrays.items() if not naming.is_num_batches(k)}


def _perturbed(arrays, seed=0):
    """Non-trivial BatchNorm statistics/affine so that eval-mode BN is really exercised."""
    rng = np.random.default_rng(seed)
    out = dict(arrays)
    for k, v in arrays.items():
        if k.endswith(("running_mean", "bias")) and v.ndim == 1:
            out[k] = (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype)
        elif k.endswith(("running_var",)) or (k.endswith("weight") and v.ndim == 1):
            out[k] = (v * rng.uniform(0.5, 1.5, v.shape)).astype(v.dtype)
    return out


def _ms_forward(net, x):
    net.set_train(False)
    return net(ms.Tensor(x)).asnumpy()


def _torch_forward(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name, count", [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_parameter_counts(name, count):
    t = tm.create_model(name)
    m = msm.create_model(name)
    assert sum(p.numel() for p in t.parameters()) == count
    assert sum(int(np.prod(p.shape)) for p in m.trainable_params()) == count
    # torch trainable params in the same order as MindSpore's
    t_names = [k for k, _ in t.named_parameters()]
    m_names = [k for k, p in mss.BACKEND.tensors(m).items() if p.requires_grad]
    assert t_names == m_names


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_state_keys_and_shapes_match(name, stem):
    t = _no_nbt(ts.state_to_numpy(tm.create_model(name, stem=stem, num_classes=10)))
    m = mss.state_to_numpy(msm.create_model(name, stem=stem, num_classes=10))
    assert list(t) == list(m)  # same keys, same order
    assert {k: v.shape for k, v in t.items()} == {k: v.shape for k, v in m.items()}
    assert "layer2.0.downsample.0.weight" in t and "layer2.0.downsample.1.running_var" in t
    assert t["fc.weight"].shape[0] == 10 and "fc.bias" in t
    if name == "resnet50":  # v1.5: the stride sits on the 3x3 conv
        assert t["layer2.0.conv2.weight"].shape[2:] == (3, 3)
        assert t["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)


def test_same_seed_same_weights_in_both_frameworks():
    t = _no_nbt(ts.state_to_numpy(tm.resnet18(stem="cifar", width=16, seed=3)))
    m = mss.state_to_numpy(msm.resnet18(stem="cifar", width=16, seed=3))
    for k in t:
        np.testing.assert_array_equal(t[k], m[k], err_msg=k)
    other = ts.state_to_numpy(tm.resnet18(stem="cifar", width=16, seed=4))
    assert not np.array_equal(other["conv1.weight"], t["conv1.weight"])
    w = t["layer1.0.conv1.weight"]  # Kaiming normal, fan_out
    assert abs(w.std() / np.sqrt(2.0 / (16 * 9)) - 1) < 0.1
    assert np.all(t["bn1.weight"] == 1) and np.all(t["bn1.bias"] == 0)
    assert np.abs(t["fc.weight"]).max() <= 1 / np.sqrt(128)


def test_seed_none_is_fresh(fw):
    models, state = fw
    a = state.state_to_numpy(models.resnet18(stem="cifar", width=8))
    b = state.state_to_numpy(models.resnet18(stem="cifar", width=8))
    assert not np.array_equal(a["conv1.weight"], b["conv1.weight"])


@pytest.mark.parametrize("name, stem, size", [("resnet18", "cifar", 32), ("resnet50", "imagenet", 64)])
def test_same_weights_same_outputs(name, stem, size):
    t = tm.create_model(name, stem=stem, num_classes=10, seed=0)
    ts.load_numpy(t, _perturbed(ts.state_to_numpy(t)))
    m = msm.create_model(name, stem=stem, num_classes=10, seed=1)
    mss.load_numpy(m, ts.state_to_numpy(t))
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    yt, ym = _torch_forward(t, x), _ms_forward(m, x)
    scale = np.abs(yt).max()
    diff = np.abs(yt - ym).max()
    print(f"{name} {stem} {size}x{size}: max|y|={scale:.4g} max abs diff={diff:.3g}")
    assert ym.shape == (2, 10)
    assert diff < 1e-4 * max(scale, 1.0)


def test_mindspore_graph_mode_matches_pynative():
    net = msm.resnet18(stem="imagenet", width=8, num_classes=5, seed=2)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    y_py = _ms_forward(net, x)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        y_graph = _ms_forward(net, x)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    np.testing.assert_allclose(y_graph, y_py, rtol=1e-5, atol=1e-5 * np.abs(y_py).max())


def test_round_trip_mindspore_torch_exact():
    m = msm.resnet50(stem="cifar", width=16, num_classes=7)
    a = _perturbed(mss.state_to_numpy(m), seed=5)
    mss.load_numpy(m, a)
    first = mss.state_to_numpy(m)
    t = tm.resnet50(stem="cifar", width=16, num_classes=7, seed=9)
    ts.load_numpy(t, first)  # no num_batches_tracked in the arrays: optional
    back = _no_nbt(ts.state_to_numpy(t))
    assert list(back) == list(first)
    for k in first:
        np.testing.assert_array_equal(back[k], first[k], err_msg=k)
        np.testing.assert_array_equal(first[k], a[k], err_msg=k)
    m2 = msm.resnet50(stem="cifar", width=16, num_classes=7, seed=9)
    mss.load_numpy(m2, ts.state_to_numpy(t))  # num_batches_tracked present: ignored
    again = mss.state_to_numpy(m2)
    assert all(np.array_equal(again[k], first[k]) for k in first)


def test_state_to_numpy_copies_and_load_does_not_alias(fw):
    models, state = fw
    net = models.resnet18(stem="cifar", width=8, seed=0)
    arrays = state.state_to_numpy(net)
    before = arrays["conv1.weight"].copy()
    arrays["conv1.weight"] += 1.0
    assert np.array_equal(state.state_to_numpy(net)["conv1.weight"], before)
    state.load_numpy(net, arrays)
    arrays["conv1.weight"] += 1.0
    np.testing.assert_array_equal(state.state_to_numpy(net)["conv1.weight"], before + 1.0)


def test_load_numpy_reports_mismatches(fw):
    models, state = fw
    net = models.resnet18(stem="cifar", width=8, seed=0)
    good = state.state_to_numpy(net)
    bad = dict(good)
    del bad["layer1.0.conv1.weight"]
    bad["layer9.0.conv1.weight"] = np.zeros((1,), np.float32)
    bad["fc.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(MismatchError) as info:
        state.load_numpy(net, bad)
    msg = str(info.value)
    for part in ("missing", "layer1.0.conv1.weight", "unexpected", "layer9.0.conv1.weight",
                 "mis-shaped", "fc.weight", "(3, 3)"):
        assert part in msg
    # nothing was loaded half way
    after = state.state_to_numpy(net)
    assert all(np.array_equal(after[k], good[k]) for k in good)
    many = {k + "_x": v for k, v in good.items()}
    with pytest.raises(MismatchError, match=r"and \d+ more"):
        state.load_numpy(net, many)


def test_load_numpy_optional_num_batches_tracked():
    t = tm.resnet18(stem="cifar", width=8, seed=0)
    arrays = ts.state_to_numpy(t)
    assert "bn1.num_batches_tracked" in arrays
    ts.load_numpy(t, _no_nbt(arrays))  # absent: fine
    assert ts.state_to_numpy(t)["bn1.num_batches_tracked"] == 0


def test_state_after_replacing_layers_with_sequential_chains():
    t = tm.resnet18(stem="cifar", width=8, num_classes=4, seed=0)
    m = msm.resnet18(stem="cifar", width=8, num_classes=4, seed=0)
    t.layer1[0].conv2 = tnn.Sequential(tnn.Conv2d(8, 4, 1, bias=False),
                                       tnn.Conv2d(4, 8, 3, padding=1, bias=False))
    m.layer1[0].conv2 = msnn.SequentialCell([
        msnn.Conv2d(8, 4, 1, has_bias=False),
        msnn.Conv2d(4, 8, 3, pad_mode="pad", padding=1, has_bias=False)])
    t.layer2[0].downsample[0] = tnn.Sequential(tnn.Conv2d(8, 2, 1, bias=False),
                                               tnn.Conv2d(2, 16, 1, stride=2, bias=True))
    m.layer2[0].downsample[0] = msnn.SequentialCell([
        msnn.Conv2d(8, 2, 1, has_bias=False),
        msnn.Conv2d(2, 16, 1, stride=2, has_bias=True)])
    ta = ts.state_to_numpy(t)
    assert "layer1.0.conv2.1.weight" in ta and "layer2.0.downsample.0.1.bias" in ta
    assert list(_no_nbt(ta)) == list(mss.BACKEND.tensors(m))
    mss.load_numpy(m, ta)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    yt, ym = _torch_forward(t, x), _ms_forward(m, x)
    assert np.abs(yt - ym).max() < 1e-4 * max(np.abs(yt).max(), 1.0)


def test_name_mapping_round_trip():
    t = ts.state_to_numpy(tm.resnet18(stem="cifar", width=8, seed=0))
    m_names = [k for k, _ in msm.resnet18(stem="cifar", width=8).parameters_and_names()]
    converted = ms_naming.torch_to_mindspore(t)
    assert set(converted) == set(m_names)
    assert "bn1.gamma" in converted and "layer1.0.bn2.moving_variance" in converted
    assert not any("num_batches_tracked" in k for k in converted)
    assert converted["conv1.weight"] is t["conv1.weight"]
    back = ms_naming.mindspore_to_torch(converted)
    assert list(back) == list(_no_nbt(t))
    # MindSpore order (moving stats first) comes back in torch order
    ms_order = {k: converted[k] for k in m_names}
    assert list(ms_naming.mindspore_to_torch(ms_order)) == list(_no_nbt(t))
    # a Dense/conv named like a BN leaf is not renamed without its running_mean
    plain = {"head.weight": np.zeros((2, 2)), "head.bias": np.zeros(2)}
    assert ms_naming.torch_to_mindspore(plain).keys() == plain.keys()
    assert ms_naming.mindspore_to_torch(plain).keys() == plain.keys()


def test_describe_mismatch_none_when_equal():
    a = {"x.weight": np.zeros((2, 3)), "bn.num_batches_tracked": np.zeros(())}
    assert naming.describe_mismatch(a, {"x.weight": np.ones((2, 3))}) is None
    msg = naming.describe_mismatch(a, {}, hint="Rebuild it.")
    assert "x.weight" in msg and msg.endswith("Rebuild it.") and "num_batches" not in msg


def test_create_model_errors(fw):
    models, _ = fw
    assert set(models.MODELS) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_tiny",
                                  "vit_small", "vit_b_16"}
    assert models.list_models("vit") == ["vit_tiny", "vit_small", "vit_b_16"]
    with pytest.raises(ConfigError, match="did you mean resnet50"):
        models.create_model("resnet51")
    with pytest.raises(ConfigError, match="resnet18.*unexpected keyword"):
        models.create_model("resnet18", depth=3)
    model = models.create_model("resnet18", stem="cifar", width=4, num_classes=3, seed=0)
    from lrd_core.registry import model_spec
    assert model_spec(model) == ("resnet18", {"stem": "cifar", "width": 4, "num_classes": 3, "seed": 0})
    with pytest.raises(ConfigError, match="cifar"):
        models.create_model("resnet18", stem="mnist")
    with pytest.raises(ConfigError, match="width"):
        models.create_model("resnet18", width=0)


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_stem_max_pool_is_torchs_padded_max_pool(mode):
    """The MindSpore stem pool (a 3-D pool, for CPU speed) equals torch's MaxPool2d(3, 2, padding=1)
    on any input (negative values, odd sizes), and so does its portable export form after a ReLU."""
    from lrd_mindspore.models.resnet import StemMaxPool

    x = np.random.default_rng(3).standard_normal((2, 5, 13, 12)).astype(np.float32) - 2.0
    ref = tnn.MaxPool2d(3, 2, padding=1)(torch.from_numpy(x)).numpy()
    pool = StemMaxPool()
    ms.set_context(mode=mode)
    try:
        got = pool(ms.Tensor(x)).asnumpy()
        relu = np.maximum(x, 0)
        portable = pool.portable()(ms.Tensor(relu)).asnumpy()
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert got.shape == ref.shape == (2, 5, 7, 6)
    assert np.array_equal(got, ref)
    assert np.array_equal(portable, tnn.MaxPool2d(3, 2, padding=1)(torch.from_numpy(relu)).numpy())
