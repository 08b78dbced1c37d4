"""MindIR and ONNX round trips of a compressed ResNet-18 in both frameworks, checked against the live net."""
import os

import numpy as np
import onnxruntime as ort
import pytest
import torch

import lrd_mindspore  # noqa: F401  (before mindspore)
import mindspore as ms
from mindspore import nn

from lrd_core.errors import ExportError
from tests.conftest import forward, perturb_bn

import lrd_torch  # noqa: E402
from lrd_mindspore.portable import padded_pools  # noqa: E402

ms_export, torch_export = lrd_mindspore, lrd_torch

SHAPE = (2, 3, 32, 32)          # ImageNet stem: the explicit pad + valid max-pool is in the graph


@pytest.fixture(scope="module")
def compressed():
    """One compressed half-width ResNet-18 (non-trivial BatchNorm): (torch model, MindSpore net, plan)."""
    import lrd_torch
    model = lrd_torch.models.resnet18(width=32, num_classes=100, seed=0)
    lrd_torch.load_numpy(model, perturb_bn(lrd_torch.state_to_numpy(model)))
    plan = lrd_torch.plan(model, input_shape=(1, 3, 32, 32), mode="mode3", ratio=2.0, rank_multiple=16)
    lrd_torch.compress(model, plan)
    net = lrd_mindspore.rebuild(lrd_mindspore.models.resnet18(width=32, num_classes=100, seed=1), plan)
    lrd_mindspore.load_numpy(net, lrd_torch.state_to_numpy(model))
    return model, net, plan


def _x(batch, seed=1):
    return np.random.default_rng(seed).standard_normal((batch,) + SHAPE[1:]).astype(np.float32)


@pytest.mark.parametrize("dynamic", [False, True])
def test_mindir_round_trip(compressed, tmp_path, dynamic):
    import lrd_mindspore as fw
    _, net, plan = compressed
    path = str(tmp_path / "net.mindir")
    report = ms_export.export(net, path, SHAPE, "MINDIR", dynamic_batch=dynamic)
    assert report["checked_batches"] == ([1, 2, 3] if dynamic else [2]) and report["max_abs_diff"] < 1e-4
    assert os.listdir(tmp_path) == ["net.mindir"]                 # no temporary left behind
    graph = nn.GraphCell(ms.load(path))
    for batch in ([2, 5] if dynamic else [2]):
        x = _x(batch)
        ref = forward(fw, net, x)
        assert np.max(np.abs(graph(ms.Tensor(x)).asnumpy() - ref)) < 1e-4
    assert len(plan.decomposed()) > 0


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_onnx_round_trip_dynamic_batch(compressed, tmp_path, framework):
    import lrd_torch
    model, net, _ = compressed
    path = str(tmp_path / f"{framework}.onnx")
    if framework == "torch":
        report = torch_export.export(model, path, SHAPE, "ONNX", dynamic_batch=True)
    else:
        report = ms_export.export(net, path, SHAPE, "ONNX", dynamic_batch=True)
    assert report["max_abs_diff"] < 1e-4 and report["checked_batches"] == [1, 2, 3]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert sess.get_outputs()[0].shape[0] == "batch"
    x = _x(4, seed=7)
    ref = forward(lrd_torch, model, x)          # both files against the torch model: same weights, same plan
    assert np.max(np.abs(sess.run(None, {sess.get_inputs()[0].name: x})[0] - ref)) < 1e-4


class PaddedPool(nn.Cell):
    def __init__(self, relu: bool):
        super().__init__()
        w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1, has_bias=True, weight_init=ms.Tensor(w),
                              bias_init=ms.Tensor(np.full(4, -1.0, np.float32)))
        self.act = nn.ReLU() if relu else nn.Identity()
        self.pool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)

    def construct(self, x):
        return self.pool(self.act(self.conv(x)))


def test_padded_max_pool_workaround_and_clear_error(tmp_path):
    net = PaddedPool(relu=True)
    assert padded_pools(net) == ["pool"]
    report = ms_export.export(net, str(tmp_path / "ok.onnx"), (2, 3, 16, 16), "ONNX", dynamic_batch=True)
    assert [w.split(" (")[0] for w in report["workarounds"]] == [
        "pool: padded max-pool exported as zero pad + valid max-pool"]
    assert report["max_abs_diff"] < 1e-5
    assert isinstance(net.pool, nn.MaxPool2d) and padded_pools(net) == ["pool"]   # restored
    bad = PaddedPool(relu=False)                 # negative inputs: zero padding is not the same
    with pytest.raises(ExportError, match="padded max-pool.*pool.*ReLU"):
        ms_export.export(bad, str(tmp_path / "bad.onnx"), (2, 3, 16, 16), "ONNX")
    assert sorted(os.listdir(tmp_path)) == ["ok.onnx"]               # nothing written for the failure
    report = ms_export.export(bad, str(tmp_path / "bad.mindir"), (2, 3, 16, 16), "MINDIR")
    assert report["max_abs_diff"] < 1e-5                              # MindIR keeps the padded pool


def test_torch_writes_mindir_through_its_mindspore_twin(compressed, tmp_path):
    """A compressed torch model asked for MindIR: its twin is rebuilt in MindSpore from the registry name,
    the plan and the weights, and the file is checked against that twin (and the twin against torch)."""
    model, _, plan = compressed
    report = torch_export.export(model, str(tmp_path / "t.mindir"), SHAPE)     # format from the suffix
    assert report["format"] == "MINDIR" and report["twin_framework"] == "mindspore"
    assert report["twin_max_abs_diff"] < 1e-4 and report["max_abs_diff"] < 1e-5
    cell = nn.GraphCell(ms.load(str(tmp_path / "t.mindir")))
    x = _x(2)
    assert np.abs(cell(ms.Tensor(x)).asnumpy() - forward(lrd_torch, model, x)).max() < 1e-4


def test_format_errors(compressed, tmp_path):
    model, net, _ = compressed
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())     # not from the registry
    with pytest.raises(ExportError, match="registry"):
        torch_export.export(plain, str(tmp_path / "x.mindir"), SHAPE, "MINDIR")
    with pytest.raises(ExportError, match="MINDIR or ONNX"):
        ms_export.export(net, str(tmp_path / "x.tflite"), SHAPE, "TFLITE")
    assert os.listdir(tmp_path) == []
