"""ResNet 18/34/50/101/152 (v1.5) for MindSpore, torchvision-compatible cell names.

Same structure, names and parameter order as :mod:`lrd_torch.models.resnet` (BatchNorm
parameters are named gamma/beta/moving_mean/moving_variance, see :mod:`lrd_core.naming`);
the same ``seed`` gives the same weights in both frameworks. Works in PYNATIVE and GRAPH mode
and exports to MindIR and ONNX. The ImageNet stem's 3x3/2 max-pool with padding 1 is a
:class:`StemMaxPool` (see there: the plain padded forms are 10-20x slower on MindSpore's CPU backend).
"""
from __future__ import annotations

from typing import Optional

from mindspore import nn, ops

from lrd_core.archs import RESNET_DOC, RESNETS, STEMS, check_resnet  # noqa: F401
from lrd_core.naming import init_arrays



def _conv(cin: int, cout: int, k: int, stride: int = 1, padding: Optional[int] = None) -> nn.Conv2d:
    padding = k // 2 if padding is None else padding
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=padding, has_bias=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.9)  # == torch momentum 0.1


class BasicBlock(nn.Cell):
    """Two 3x3 convs with identity (or 1x1 conv + BN downsample) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Cell] = None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = _bn(planes)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.has_downsample = downsample is not None

    def construct(self, x):
        identity = x
        if self.has_downsample:
            identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (carries the stride, v1.5) -> 1x1 (x4 channels) with shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Cell] = None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = _bn(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = _bn(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.has_downsample = downsample is not None

    def construct(self, x):
        identity = x
        if self.has_downsample:
            identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class StemMaxPool(nn.Cell):
    """3x3 max-pool, stride 2, padding 1 (torch's ``MaxPool2d(3, 2, padding=1)``).

    Computed as a 3-D max-pool over a singleton depth axis, which pads like torch (padding never
    wins the max) for any input. On MindSpore 2.10's CPU backend both ``MaxPool2d(pad_mode="pad")``
    and ``nn.Pad`` + a "valid" pool took 10-20x longer (6.7 and 12.5 ms vs 0.7 ms for 1x64x112x112;
    12 ms was ~17% of a ResNet-50 forward pass). Exporters swap it for :meth:`portable` (an explicit
    zero pad + "valid" max-pool, exact in ResNet because the input follows a ReLU and is >= 0),
    which every MindIR/ONNX consumer supports.
    """

    def __init__(self):
        super().__init__()
        self.pool = ops.MaxPool3D(kernel_size=(1, 3, 3), strides=(1, 2, 2), pad_mode="pad",
                                  pad_list=(0, 0, 1, 1, 1, 1))

    def construct(self, x):
        return self.pool(x.expand_dims(2)).squeeze(2)

    @staticmethod
    def portable() -> nn.Cell:
        """The same pool from the most widely supported operators (for export)."""
        return nn.SequentialCell([nn.Pad(((0, 0), (0, 0), (1, 1), (1, 1))),
                                  nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")])


class ResNet(nn.Cell):
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
            self.conv1 = _conv(3, width, 7, 2, 3)
        else:
            self.conv1 = _conv(3, width, 3)
        self.bn1 = _bn(width)
        self.relu = nn.ReLU()
        if stem == "imagenet":
            self.maxpool = StemMaxPool()
        else:
            self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.mean = ops.ReduceMean(keep_dims=False)
        self.fc = nn.Dense(width * 8 * block.expansion, num_classes, has_bias=True)
        _initialise(self, seed)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.SequentialCell:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.SequentialCell([
                _conv(self.inplanes, planes * block.expansion, 1, stride),
                _bn(planes * block.expansion)])
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.SequentialCell(layers)

    def construct(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.mean(x, (2, 3)))


def _initialise(model: nn.Cell, seed: Optional[int]) -> None:
    from ..backend import BACKEND

    tensors = BACKEND.tensors(model)
    arrays = init_arrays({k: tuple(t.shape) for k, t in tensors.items()}, seed)
    for k, t in tensors.items():
        BACKEND.assign(t, arrays[k])


def _builder(name: str):
    kind, layers = RESNETS[name]
    block = BasicBlock if kind == "basic" else Bottleneck

    def build(num_classes: int = 1000, stem: str = "imagenet", width: int = 64,
              seed: Optional[int] = None) -> ResNet:
        return ResNet(block, layers, num_classes, stem, width, seed)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = RESNET_DOC.format(name=name)
    return build


resnet18 = _builder("resnet18")
resnet34 = _builder("resnet34")
resnet50 = _builder("resnet50")
resnet101 = _builder("resnet101")
resnet152 = _builder("resnet152")
