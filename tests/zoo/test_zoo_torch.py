"""Networks written by others (pytorchcv, plain torch) go through inspect / plan / compress.

pytorchcv models are imported module by module (``pytorchcv.model_provider`` pulls torchvision);
those ending in a fixed ``AvgPool2d(7)`` get an adaptive pool so that 64x64 inputs work. The ResNet
variants are the package's classes at a quarter of the width (the package's own ``width_scale``
keeps the last block at full width, which adds a fifth projection). The ViT-style encoder is
written here, with ``nn.MultiheadAttention`` (packed in-projection, ``out_proj`` used functionally).
"""
import importlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorchcv")
from torch import nn  # noqa: E402

from tests.zoo.checks import RESNET50_COUNTS, check_architecture  # noqa: E402

INPUT = (1, 3, 64, 64)


def pytorchcv(module, builder, resnet50=False, **kwargs):
    """A builder of ``pytorchcv.models.<module>.<builder>``; ``resnet50=True`` passes the channels of a
    quarter-width ResNet-50 (3, 4, 6, 3 bottlenecks) to the class."""
    def build():
        torch.manual_seed(0)
        fn = getattr(importlib.import_module(f"pytorchcv.models.{module}"), builder)
        if resnet50:
            kwargs.update(channels=[[w] * n for w, n in zip((64, 128, 256, 512), (3, 4, 6, 3))],
                          init_block_channels=16)
        model = fn(num_classes=10, **kwargs)
        if isinstance(getattr(model.features, "final_pool", None), nn.AvgPool2d):
            model.features.final_pool = nn.AdaptiveAvgPool2d(1)
        return model
    return build


def resnet50_like(module, cls, **kwargs):
    return pytorchcv(module, cls, resnet50=True, **kwargs)


class Encoder(nn.Module):
    """A small ViT: patch conv, class token, pre-norm blocks (MultiheadAttention + MLP), head."""

    def __init__(self, dim=32, heads=4, depth=2, patch=8, image=32, classes=10):
        super().__init__()
        self.to_patches = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (image // patch) ** 2 + 1, dim))
        self.layers = nn.ModuleList(nn.ModuleDict(dict(
            ln_a=nn.LayerNorm(dim), mha=nn.MultiheadAttention(dim, heads, batch_first=True),
            ln_b=nn.LayerNorm(dim), ff=nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))))
            for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, classes)

    def forward(self, img):
        t = self.to_patches(img).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        for blk in self.layers:
            h = blk["ln_a"](t)
            t = t + blk["mha"](h, h, h, need_weights=False)[0]
            t = t + blk["ff"](blk["ln_b"](t))
        return self.classifier(self.ln(t)[:, 0])


def encoder():
    torch.manual_seed(0)
    return Encoder()


# name: (builder, input shape, mode counts, grouped convs, layers that do not run)
ARCHS = {
    "resnet50": (resnet50_like("resnet", "ResNet", bottleneck=True, conv1_stride=False), INPUT, RESNET50_COUNTS,
                 0, 0),
    "resnet_d50": (resnet50_like("resneta", "ResNetA", bottleneck=True, conv1_stride=False), INPUT,
                   RESNET50_COUNTS, 0, 0),
    "preresnet50": (resnet50_like("preresnet", "PreResNet", bottleneck=True, conv1_stride=False), INPUT,
                    RESNET50_COUNTS, 0, 0),
    "resnext50_32x4d": (resnet50_like("resnext", "ResNeXt", cardinality=32, bottleneck_width=4), INPUT,
                        RESNET50_COUNTS, 16, 0),
    "seresnet50": (resnet50_like("seresnet", "SEResNet", bottleneck=True, conv1_stride=False), INPUT,
                   RESNET50_COUNTS, 0, 0),
    "mobilenetv2": (pytorchcv("mobilenetv2", "mobilenetv2_wd2"), INPUT, None, 17, 0),
    "shufflenetv2": (pytorchcv("shufflenetv2", "shufflenetv2_wd2"), INPUT, None, 19, 0),
    "densenet121": (pytorchcv("densenet", "densenet121"), INPUT, None, 0, 0),
    "vit": (encoder, (1, 3, 32, 32), None, 0, 2),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_zoo_architecture(lrd_torch, arch):
    build, shape, counts, grouped, not_run = ARCHS[arch]
    check_architecture(lrd_torch, build, shape, counts=counts, grouped=grouped, not_run=not_run)


def test_dense_layers_on_tokens_count_per_token(lrd_torch):
    """The MLP reads (batch, 17 tokens, 32): 17 positions per sample, in the plan's MAC counts too."""
    plan = lrd_torch.plan(encoder(), input_shape=(1, 3, 32, 32), mode="all", rank_selection="manual",
                          ranks={r"layers\.\d\.ff\.\d": 4})
    fc1 = plan["layers.0.ff.0"]
    assert fc1.info.input_hw == (17, 1) and fc1.info.tokens == 17
    assert fc1.macs_before == 17 * 32 * 64 and fc1.macs_after == 17 * 4 * (32 + 64)
    assert plan["classifier"].info.input_hw == (1, 1) and plan["classifier"].info.role.is_final_dense
    assert plan["to_patches"].info.role.is_stem
