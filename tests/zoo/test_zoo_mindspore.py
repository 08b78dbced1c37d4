"""Networks written by others (mindcv, plain MindSpore) go through inspect / plan / compress.

mindcv models come from ``mindcv.models.create_model`` (random weights, nothing downloaded); its
Vision Transformer is built small from the class. mindcv has no ResNet-D ("bag of tricks": deep stem,
average pooling then a 1x1 conv on the projection shortcut), so one is written here, named unlike
ours.
"""
import pytest

ms = pytest.importorskip("mindspore")
pytest.importorskip("mindcv")
from mindspore import nn, ops  # noqa: E402

from tests.zoo.checks import RESNET50_COUNTS, check_architecture  # noqa: E402

INPUT = (1, 3, 64, 64)


def mindcv(name, **kwargs):
    def build():
        from mindcv.models import create_model
        ms.set_seed(0)
        return create_model(name, num_classes=10, pretrained=False, **kwargs)
    return build


def vit():
    from mindcv.models.vit import VisionTransformer
    ms.set_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=10)


def conv_bn(cin, cout, k, stride=1, act=True):
    cells = [nn.Conv2d(cin, cout, k, stride, pad_mode="pad", padding=k // 2), nn.BatchNorm2d(cout)]
    return nn.SequentialCell(cells + [nn.ReLU()] if act else cells)


class Unit(nn.Cell):
    """Bottleneck; the shortcut of a strided unit average-pools before its 1x1 conv."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        mid = cout // 4
        self.trunk = nn.SequentialCell([conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride), conv_bn(mid, cout, 1,
                                                                                                   act=False)])
        self.project = cin != cout or stride != 1
        if self.project:
            pool = [nn.AvgPool2d(stride, stride)] if stride != 1 else []
            self.skip = nn.SequentialCell(pool + [conv_bn(cin, cout, 1, act=False)])

    def construct(self, x):
        return ops.relu(self.trunk(x) + (self.skip(x) if self.project else x))


class ResNetD(nn.Cell):
    """ResNet-D-50 at a quarter of the width: 3-conv stem, (3, 4, 6, 3) units, pooled projections."""

    def __init__(self, classes=10, width=16):
        super().__init__()
        self.entry = nn.SequentialCell([conv_bn(3, width // 2, 3, 2), conv_bn(width // 2, width // 2, 3),
                                        conv_bn(width // 2, width, 3), nn.MaxPool2d(3, 2, pad_mode="same")])
        units, cin = [], width
        for s, n in enumerate((3, 4, 6, 3)):
            cout = width * 4 * 2 ** s
            units += [Unit(cin if u == 0 else cout, cout, 2 if (u == 0 and s > 0) else 1) for u in range(n)]
            cin = cout
        self.body = nn.CellList(units)
        self.logits = nn.Dense(cin, classes)

    def construct(self, x):
        x = self.entry(x)
        for unit in self.body:
            x = unit(x)
        return self.logits(x.mean((2, 3)))


def resnet_d():
    ms.set_seed(0)
    return ResNetD()


# name: (builder, input shape, mode counts, grouped convs, layers that do not run)
ARCHS = {
    "resnet50": (mindcv("resnet50"), INPUT, RESNET50_COUNTS, 0, 0),
    "resnet_d50": (resnet_d, INPUT, RESNET50_COUNTS, 0, 0),
    "resnetv2_50": (mindcv("resnetv2_50"), INPUT, RESNET50_COUNTS, 0, 0),
    "resnext50_32x4d": (mindcv("resnext50_32x4d"), INPUT, RESNET50_COUNTS, 16, 0),
    "seresnet50": (mindcv("seresnet50"), INPUT, RESNET50_COUNTS, 0, 0),
    "mobilenet_v2": (mindcv("mobilenet_v2_050_96"), INPUT, None, 17, 0),
    "shufflenet_v2": (mindcv("shufflenet_v2_x0_5"), INPUT, None, 19, 0),
    "densenet121": (mindcv("densenet121"), INPUT, None, 0, 0),
    "vit": (vit, (1, 3, 32, 32), None, 0, 0),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_zoo_architecture(lrd_mindspore, arch):
    build, shape, counts, grouped, not_run = ARCHS[arch]
    check_architecture(lrd_mindspore, build, shape, counts=counts, grouped=grouped, not_run=not_run)


def test_dense_layers_on_tokens_count_per_token(lrd_mindspore):
    """The MLP reads (batch, 17 tokens, 32): 17 positions per sample, in the plan's MAC counts too."""
    plan = lrd_mindspore.plan(vit(), input_shape=(1, 3, 32, 32), mode="all", rank_selection="manual",
                              ranks={r"blocks\.\d\.mlp\.fc\d": 4})
    fc1 = plan["blocks.0.mlp.fc1"]
    assert fc1.info.input_hw == (17, 1) and fc1.info.tokens == 17
    assert fc1.macs_before == 17 * 32 * 128 and fc1.macs_after == 17 * 4 * (32 + 128)
    assert plan["head"].info.input_hw == (1, 1) and plan["head"].info.role.is_final_dense
    assert plan["patch_embed.proj"].info.role.is_stem
