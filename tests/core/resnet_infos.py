"""ResNet LayerInfo lists built by hand from the architecture table (no framework involved)."""
from lrd_core.layers import LayerInfo, Role

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


def conv(name, cin, cout, k, s, hw, stage=None, ds=False, stem=False, num_stages=4):
    p = k // 2
    return LayerInfo(name, "conv2d", cin, cout, (k, k), (s, s), (p, p, p, p), (1, 1), 1, False, (hw, hw),
                     Role(stage=stage, num_stages=num_stages, is_downsample=ds, is_stem=stem))


def resnet_infos(depth=50, size=224, num_classes=1000, counts=None):
    """The layers of ResNet-``depth``; ``counts`` (blocks per stage) replaces the table's, e.g. (3, 4, 6)
    for a three-stage network."""
    kind, table = DEPTHS[depth]
    counts = tuple(counts or table)
    n = len(counts)
    exp = 4 if kind == "bottleneck" else 1
    layers = [conv("conv1", 3, 64, 7, 2, size, stem=True, num_stages=n)]
    hw = size // 4
    cin = 64
    for b, blocks in enumerate(counts, 1):
        planes = 64 * 2 ** (b - 1)
        for i in range(blocks):
            s = 2 if (i == 0 and b > 1) else 1
            pre = f"layer{b}.{i}."
            if kind == "bottleneck":
                layers += [conv(pre + "conv1", cin, planes, 1, 1, hw, b, num_stages=n),
                           conv(pre + "conv2", planes, planes, 3, s, hw, b, num_stages=n),
                           conv(pre + "conv3", planes, planes * 4, 1, 1, hw // s, b, num_stages=n)]
            else:
                layers += [conv(pre + "conv1", cin, planes, 3, s, hw, b, num_stages=n),
                           conv(pre + "conv2", planes, planes, 3, 1, hw // s, b, num_stages=n)]
            if i == 0 and (s != 1 or cin != planes * exp):
                layers.append(conv(pre + "downsample.0", cin, planes * exp, 1, s, hw, b, ds=True, num_stages=n))
            cin = planes * exp
            hw //= s
    layers.append(LayerInfo("fc", "dense", cin, num_classes, has_bias=True,
                            role=Role(num_stages=n, is_final_dense=True)))
    return layers
