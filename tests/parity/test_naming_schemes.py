"""Our ResNet-18/50 written under other naming schemes get the same roles and mode counts.

The architecture is ours (v1.5 bottleneck / basic block, 1x1 projection on the first block of a
stage); only the module tree and its names change: MindSpore ModelZoo (``down_sample_layer``,
``end_point``), pytorchcv (``features.stageN.unitM.body.convK.conv``, ``identity_conv``), a flat timm
style (``blocks.N.proj``) and a misleading one whose names contradict the structure (main convs
called ``downsample``, stages numbered backwards).
"""
import pytest

from lrd_core.modes import MODES
from tests.core.resnet_infos import DEPTHS, resnet_infos

COUNTS = {50: {"vanilla": 53, "mode1": 17, "mode2": 51, "mode3": 45, "mode4": 49, "mode5": 37},
          18: {"vanilla": 20, "mode1": 17, "mode2": 18, "mode3": 18, "mode4": 17, "mode5": 4}}


SCHEMES = {   # {s}: stage, {i}: block in the stage, {n}: block in the network, {k}: conv in the block
    "modelzoo": dict(stem="conv1", fc="end_point", unit="layer{s}.{i}", conv="conv{k}",
                     short="down_sample_layer.0"),
    "units": dict(stem="features.init_block.conv.conv", fc="output", unit="features.stage{s}.unit{j}",
                  conv="body.conv{k}.conv", short="identity_conv.conv"),
    "flat": dict(stem="stem.conv", fc="head.fc", unit="blocks.{n}", conv="{abc}", short="proj"),
    "misleading": dict(stem="layer2.stem", fc="layer4.fc", unit="layer{r}.{i}", conv="downsample.{k0}", short="main"),
}


def blueprint(depth, scheme, width=8):
    """Units ``(path, [(conv path, cin, cout, k, stride)], shortcut or None)``, the fc's input width and
    the map from our layer names to the scheme's."""
    kind, counts = DEPTHS[depth]
    fmt = SCHEMES[scheme]
    exp = 4 if kind == "bottleneck" else 1
    ours = {"conv1": fmt["stem"], "fc": fmt["fc"]}
    units, cin, n = [], width, 0
    for s, blocks in enumerate(counts, 1):
        planes = width * 2 ** (s - 1)
        for i in range(blocks):
            unit = fmt["unit"].format(s=s, i=i, j=i + 1, n=n, r=5 - s)
            stride = 2 if (i == 0 and s > 1) else 1
            if kind == "bottleneck":
                convs = [(1, cin, planes, 1, 1), (2, planes, planes, 3, stride), (3, planes, planes * 4, 1, 1)]
            else:
                convs = [(1, cin, planes, 3, stride), (2, planes, planes, 3, 1)]
            main = [(unit + "." + fmt["conv"].format(k=k, k0=k - 1, abc="abc"[k - 1]), a, b, ks, st)
                    for k, a, b, ks, st in convs]
            ours.update({f"layer{s}.{i}.conv{k}": m[0] for (k, *_), m in zip(convs, main)})
            short = None
            if i == 0 and (stride != 1 or cin != planes * exp):
                short = (f"{unit}.{fmt['short']}", cin, planes * exp, 1, stride)
                ours[f"layer{s}.{i}.downsample.0"] = short[0]
            units.append((unit, main, short))
            cin, n = planes * exp, n + 1
    return units, cin, ours


# ---------------------------------------------------------------------------- torch
def torch_model(depth, scheme, width=8):
    import torch
    from torch import nn

    def put(root, path, module):
        *parents, leaf = path.split(".")
        for p in parents:
            if not hasattr(root, p):
                root.add_module(p, nn.Module())
            root = getattr(root, p)
        root.add_module(leaf, module)
        return module

    class Unit(nn.Module):
        def __init__(self, prefix, main, short):
            super().__init__()
            rel = lambda p: p[len(prefix) + 1:]           # noqa: E731
            object.__setattr__(self, "_convs", [(put(self, rel(p), nn.Conv2d(a, b, k, s, k // 2, bias=False)),
                          put(self, rel(p) + "_bn", nn.BatchNorm2d(b))) for p, a, b, k, s in main])
            object.__setattr__(self, "_short", None if short is None else (
                put(self, rel(short[0]), nn.Conv2d(short[1], short[2], 1, short[4], bias=False)),
                put(self, rel(short[0]) + "_bn", nn.BatchNorm2d(short[2]))))

        def forward(self, x):
            out = x
            for k, (conv, bn) in enumerate(self._convs):
                out = bn(conv(out))
                out = torch.relu(out) if k < len(self._convs) - 1 else out
            identity = x if self._short is None else self._short[1](self._short[0](x))
            return torch.relu(out + identity)

    class Net(nn.Module):
        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self._stem_bn(self._stem(x))), 3, 2, 1)
            for unit in self._units:
                x = unit(x)
            return self._fc(torch.flatten(x.mean((2, 3), keepdim=True), 1))

    units, cout, ours = blueprint(depth, scheme, width)
    net = Net()
    object.__setattr__(net, "_stem", put(net, ours["conv1"], nn.Conv2d(3, width, 7, 2, 3, bias=False)))
    object.__setattr__(net, "_stem_bn", put(net, ours["conv1"] + "_bn", nn.BatchNorm2d(width)))
    object.__setattr__(net, "_units", [put(net, path, Unit(path, main, short)) for path, main, short in units])
    object.__setattr__(net, "_fc", put(net, ours["fc"], nn.Linear(cout, 10)))
    return net, ours


# ---------------------------------------------------------------------------- MindSpore
def mindspore_model(depth, scheme, width=8):
    from mindspore import nn, ops

    class Holder(nn.Cell):
        pass

    def put(root, path, cell):
        *parents, leaf = path.split(".")
        for p in parents:
            if p not in root.name_cells():
                root.insert_child_to_cell(p, Holder())
            root = root.name_cells()[p]
        root.insert_child_to_cell(leaf, cell)
        return cell

    def conv(a, b, k, s):
        return nn.Conv2d(a, b, k, s, pad_mode="pad", padding=k // 2)

    class Unit(nn.Cell):
        def __init__(self, prefix, main, short):
            super().__init__()
            rel = lambda p: p[len(prefix) + 1:]           # noqa: E731
            object.__setattr__(self, "_convs", [(put(self, rel(p), conv(a, b, k, s)),
                                               put(self, rel(p) + "_bn", nn.BatchNorm2d(b)))
                                              for p, a, b, k, s in main])
            object.__setattr__(self, "_short", None if short is None else (
                put(self, rel(short[0]), conv(short[1], short[2], 1, short[4])),
                put(self, rel(short[0]) + "_bn", nn.BatchNorm2d(short[2]))))

        def construct(self, x):
            out = x
            for k, (c, bn) in enumerate(self._convs):
                out = bn(c(out))
                out = ops.relu(out) if k < len(self._convs) - 1 else out
            identity = x if self._short is None else self._short[1](self._short[0](x))
            return ops.relu(out + identity)

    class Net(nn.Cell):
        def construct(self, x):
            x = ops.max_pool2d(ops.pad(ops.relu(self._stem_bn(self._stem(x))), (1, 1, 1, 1)), 3, 2)
            for unit in self._units:
                x = unit(x)
            return self._fc(x.mean((2, 3)))

    units, cout, ours = blueprint(depth, scheme, width)
    net = Net()
    object.__setattr__(net, "_stem", put(net, ours["conv1"], nn.Conv2d(3, width, 7, 2, pad_mode="pad", padding=3)))
    object.__setattr__(net, "_stem_bn", put(net, ours["conv1"] + "_bn", nn.BatchNorm2d(width)))
    object.__setattr__(net, "_units", [put(net, path, Unit(path, main, short)) for path, main, short in units])
    object.__setattr__(net, "_fc", put(net, ours["fc"], nn.Dense(cout, 10)))
    return net, ours


BUILDERS = {"torch": torch_model, "mindspore": mindspore_model}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("depth", [18, 50])
def test_renamed_resnets_get_our_roles_and_mode_counts(fw, depth, scheme):
    model, ours = BUILDERS[fw.FRAMEWORK](depth, scheme)
    layers = fw.inspect(model, input_shape=(1, 3, 64, 64))
    assert sorted(l.name for l in layers) == sorted(ours.values())
    got = {l.name: l.role for l in layers}
    want = {ours[l.name]: l.role for l in resnet_infos(depth)}
    assert got == want
    counts = {mode: sum(1 for l in layers if MODES[mode](l)) for mode in COUNTS[depth]}
    assert counts == COUNTS[depth]
    plan = fw.plan(model, input_shape=(1, 3, 64, 64), mode="mode3", ratio=2.0)
    assert sum(lp.selected for lp in plan.layers) == COUNTS[depth]["mode3"]
