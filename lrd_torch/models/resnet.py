"""ResNet 18/34/50/101/152 (v1.5) for PyTorch, torchvision-compatible names.

Same structure, names and parameter order as :mod:`lrd_mindspore.models.resnet`; the same
``seed`` gives the same weights in both frameworks (drawn by :func:`lrd_core.naming.init_arrays`).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from lrd_core.archs import RESNET_DOC, RESNETS, STEMS, check_resnet  # noqa: F401
from lrd_core.naming import init_arrays



def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class BasicBlock(nn.Module):
    """Two 3x3 convs with identity (or 1x1 conv + BN downsample) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = _bn(planes)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride, v1.5) -> 1x1 (x4 channels) with shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = _bn(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = _bn(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with an ImageNet (7x7/2 conv + 3x3/2 max-pool) or CIFAR (3x3/1 conv) stem.

    Parameters
    ----------
    block : type
        :class:`BasicBlock` or :class:`Bottleneck`.
    layers : sequence of int
        Blocks per stage (4 stages).
    num_classes : int
        Outputs of the final ``fc`` layer.
    stem : {"imagenet", "cifar"}
    width : int
        Base channel count; stages use width, 2w, 4w, 8w (times the block expansion).
    seed : int or None
        Seed of the initial weights; None draws fresh ones.
    """

    def __init__(self, block, layers, num_classes: int = 1000, stem: str = "imagenet",
                 width: int = 64, seed: Optional[int] = None):
        super().__init__()
        check_resnet(stem, width, num_classes)
        self.stem = stem
        self.inplanes = width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = _conv(3, width, 3)
        self.bn1 = _bn(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, padding=1) if stem == "imagenet" else nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        _initialise(self, seed)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv(self.inplanes, planes * block.expansion, 1, stride),
                                       _bn(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _initialise(model: nn.Module, seed: Optional[int]) -> None:
    sd = model.state_dict()
    arrays = init_arrays({k: tuple(v.shape) for k, v in sd.items()}, seed)
    with torch.no_grad():
        for k, v in sd.items():
            v.copy_(torch.from_numpy(arrays[k]))


def _builder(name: str):
    kind, layers = RESNETS[name]
    block = BasicBlock if kind == "basic" else Bottleneck

    def build(num_classes: int = 1000, stem: str = "imagenet", width: int = 64,
              seed: Optional[int] = None) -> ResNet:
        with torch.random.fork_rng(devices=[]):  # default init must not move the global RNG
            return ResNet(block, layers, num_classes, stem, width, seed)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = RESNET_DOC.format(name=name)
    return build


resnet18 = _builder("resnet18")
resnet34 = _builder("resnet34")
resnet50 = _builder("resnet50")
resnet101 = _builder("resnet101")
resnet152 = _builder("resnet152")
