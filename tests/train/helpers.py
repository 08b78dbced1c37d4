"""Tiny models and data for the training tests (identical structure and names in both frameworks)."""
from __future__ import annotations

import contextlib

import numpy as np

from lrd_core.naming import init_arrays
from lrd_data import ArrayData

INPUT = (1, 3, 8, 8)


def tiny_data(n: int = 64, seed: int = 0, classes: int = 4, size: int = 8) -> ArrayData:
    """Separable random data: class c has a bright patch at position c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int32)
    x = 0.3 * rng.standard_normal((n, 3, size, size)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, (c // 2) * 4:(c // 2) * 4 + 3, (c % 2) * 4:(c % 2) * 4 + 3] += 1.0
    return ArrayData(x, y, classes)


def tiny_model(fw, bn: bool = True, seed: int = 0):
    """conv3x3(3->8)[+BN] -> conv3x3(8->8)[+BN] -> conv1x1(8->16) -> mean -> fc(16->4), ReLUs between."""
    model = _torch_tiny(bn) if fw.FRAMEWORK == "torch" else _ms_tiny(bn)
    shapes = {k: tuple(t.shape) for k, t in fw.BACKEND.tensors(model).items()}
    arrays = init_arrays(shapes, seed)
    fw.load_numpy(model, arrays)
    return model


def _torch_tiny(bn: bool):
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8) if bn else nn.Identity()
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(8) if bn else nn.Identity()
            self.conv3 = nn.Conv2d(8, 16, 1, bias=False)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)))
            x = torch.relu(self.conv3(x))
            return self.fc(x.mean((2, 3)))

    return Tiny()


def _ms_tiny(bn: bool):
    from mindspore import nn, ops

    class Tiny(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, pad_mode="pad", padding=1, has_bias=False)
            self.bn1 = nn.BatchNorm2d(8, momentum=0.9) if bn else nn.Identity()
            self.conv2 = nn.Conv2d(8, 8, 3, pad_mode="pad", padding=1, has_bias=False)
            self.bn2 = nn.BatchNorm2d(8, momentum=0.9) if bn else nn.Identity()
            self.conv3 = nn.Conv2d(8, 16, 1, has_bias=False)
            self.fc = nn.Dense(16, 4, has_bias=True)
            self.relu = nn.ReLU()
            self.mean = ops.ReduceMean(keep_dims=False)

        def construct(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.relu(self.conv3(x))
            return self.fc(self.mean(x, (2, 3)))

    return Tiny()


def compressed_tiny(fw, bn: bool = True, seed: int = 0, ratio: float = 1.5):
    """The tiny model with every layer decomposed (Tucker-2 for 3x3, SVD for 1x1 and fc)."""
    model = tiny_model(fw, bn, seed)
    plan = fw.plan(model, input_shape=INPUT, mode="all", rank_selection="pr", ratio=ratio)
    fw.compress(model, plan)
    return model, plan


def params(fw, model) -> dict:
    """Copies of every parameter/buffer, torch-style names."""
    return {k: np.array(v) for k, v in fw.state_to_numpy(model).items()}


def train_module(fw):
    return __import__(f"lrd_{fw.FRAMEWORK}.train", fromlist=["fit"])


@contextlib.contextmanager
def graph_mode(fw):
    """MindSpore GRAPH mode inside the block (the mode the freezing pitfall lives in); no-op for torch."""
    if fw.FRAMEWORK != "mindspore":
        yield
        return
    import mindspore as ms
    old = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=old)
