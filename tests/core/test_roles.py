"""Roles inferred from hand-made traces of example passes (no framework involved)."""
import json

import pytest

from lrd_core import PlanConfig, make_plan
from lrd_core.cost import decomposed_cost, layer_macs
from lrd_core.errors import ConfigError, UnknownLayerError
from lrd_core.layers import LayerInfo, Role
from lrd_core.roles import NOT_RUN, apply_overrides, infer_roles, layer_infos
from lrd_core.trace import Trace, TraceRecorder


class T:
    """A stand-in tensor: only its identity and shape matter."""

    def __init__(self, *shape):
        self.shape = shape


class Net:
    """Records operations on stand-in tensors the way an adapter's hooks do."""

    def __init__(self, shape=(1, 3, 32, 32)):
        self.rec = TraceRecorder(lambda t: isinstance(t, T), lambda t: t.shape)
        self.x = T(*shape)
        self.rec.start(self.x)
        self.layers = []

    def op(self, kind, name, inputs, shape, op_type="", out=None):
        out = T(*shape) if out is None else out
        outermost = self.rec.begin()
        self.rec.end(outermost, name, inputs, out, kind=kind, op_type=op_type or kind)
        return out

    def conv(self, name, x, cout, stride=1):
        self.layers.append((name, "conv2d"))
        n, _, h, w = x.shape
        return self.op("conv2d", name, [x], (n, cout, h // stride, w // stride))

    def dense(self, name, x, cout):
        self.layers.append((name, "dense"))
        return self.op("dense", name, [x], x.shape[:-1] + (cout,))

    def other(self, name, x, shape=None):
        return self.op(None, name, [x], shape or x.shape, op_type=name)

    def add(self, a, b):
        return self.op("add", "add", [a, b], a.shape)

    def pool(self, x, stride=2):
        n, c, h, w = x.shape
        return self.op("pool", "pool", [x], (n, c, h // stride, w // stride))

    def head(self, x, classes=10):
        x = self.op("pool", "mean", [x], x.shape[:2])
        x = self.other("dropout", self.other("flatten", x))
        return self.dense("fc", x, classes)

    def finish(self, out) -> Trace:
        return self.rec.finish(out)


def basic_block(net, x, prefix, cout, stride=1, shortcut="conv", names=("conv1", "conv2", "proj")):
    y = net.other("relu", net.conv(f"{prefix}.{names[0]}", x, cout, stride))
    y = net.conv(f"{prefix}.{names[1]}", y, cout)
    if shortcut == "conv":
        x = net.conv(f"{prefix}.{names[2]}", x, cout, stride)
    elif shortcut == "pool-conv":
        x = net.conv(f"{prefix}.{names[2]}", net.pool(x, stride), cout)
    return net.other("relu", net.add(y, x))


def small_resnet(names=None, shortcut="conv"):
    """stem -> 2 blocks at 16x16 (the first with a stride-1 projection) -> 2 blocks at 8x8 -> fc."""
    names = names or {}
    net = Net()
    x = net.pool(net.conv(names.get("stem", "stem"), net.x, 8, 2), 1)
    x = basic_block(net, x, names.get("b1", "s1.b1"), 16, 1, "conv")
    x = basic_block(net, x, names.get("b2", "s1.b2"), 16, 1, None)
    x = basic_block(net, x, names.get("b3", "s2.b1"), 32, 2, shortcut)
    x = basic_block(net, x, names.get("b4", "s2.b2"), 32, 1, None)
    return net, net.finish(net.head(x))


def test_plain_resnet_roles_from_structure():
    net, trace = small_resnet()
    roles = infer_roles(trace, net.layers)
    assert roles["stem"] == Role(num_stages=2, is_stem=True)
    assert roles["fc"] == Role(num_stages=2, is_final_dense=True)       # through mean/flatten/dropout
    assert [roles[f"s1.b{i}.conv{j}"].stage for i in (1, 2) for j in (1, 2)] == [1, 1, 1, 1]
    assert [roles[f"s2.b{i}.conv{j}"].stage for i in (1, 2) for j in (1, 2)] == [2, 2, 2, 2]
    assert {n for n, r in roles.items() if r.is_downsample} == {"s1.b1.proj", "s2.b1.proj"}
    assert roles["s1.b1.proj"].stage == 1 and roles["s2.b1.proj"].stage == 2   # stride-1 projection stays


def test_pooled_shortcut_is_a_projection():
    net, trace = small_resnet(shortcut="pool-conv")
    roles = infer_roles(trace, net.layers)
    assert roles["s2.b1.proj"] == Role(stage=2, num_stages=2, is_downsample=True)
    assert sum(r.is_downsample for r in roles.values()) == 2


def test_names_do_not_matter():
    misleading = {"stem": "layer4.0.downsample", "b1": "layer3.1", "b2": "stage9.shortcut", "b3": "layer1.0",
                  "b4": "features.down_sample_layer"}
    renamed, trace = small_resnet(misleading)
    plain, plain_trace = small_resnet()
    got = infer_roles(trace, renamed.layers)
    want = infer_roles(plain_trace, plain.layers)
    assert [got[n] for n, _ in renamed.layers] == [want[n] for n, _ in plain.layers]


def test_invisible_ops_are_bridged_and_in_place_ops_versioned():
    """Block 0: visible in-place add and relu (they write y again). Blocks 1-2: the add and every
    activation are invisible, as functions a MindSpore adapter cannot wrap; block 2 computes its
    projection first, so a loose end waits while an unseen relu runs between its two convs."""
    net = Net((1, 3, 16, 16))
    x = net.conv("c0", net.x, 8)
    for k in range(3):
        net.rec.enter(f"block{k}", x)
        s = net.conv(f"block{k}.down", x, 16, 2) if k == 2 else x
        y = net.conv(f"block{k}.a", x, s.shape[1], 1 + (k == 2))
        if k:
            y = T(*y.shape)                           # relu(y), not seen
        y = net.conv(f"block{k}.b", y, y.shape[1])
        if k:
            out = T(*y.shape)                         # relu(y + s), not seen
        else:
            net.op("add", "add_", [y, s], y.shape, out=y)
            out = net.op(None, "relu_", [y], y.shape, out=y)
        net.rec.exit(f"block{k}", out)
        x = out
    roles = infer_roles(net.finish(net.dense("fc", net.op("pool", "mean", [x], x.shape[:2]), 10)), net.layers)
    assert roles["c0"].is_stem and roles["fc"].is_final_dense
    assert [roles[f"block{k}.a"].stage for k in range(3)] == [1, 1, 2]
    assert roles["block2.down"].is_downsample and not roles["block2.a"].is_downsample
    assert sum(r.is_downsample for r in roles.values()) == 1


def test_an_activation_wrapper_is_not_taken_for_a_block():
    """A cell running one conv and an unseen activation returns a tensor shaped like its input."""
    net = Net((1, 8, 16, 16))
    x = net.x
    for k in range(3):
        net.rec.enter(f"cell{k}", x)
        net.conv(f"cell{k}.conv", x, 8)
        x = T(*x.shape)
        net.rec.exit(f"cell{k}", x)
    roles = infer_roles(net.finish(x), net.layers)
    assert roles["cell0.conv"].is_stem and [roles[f"cell{k}.conv"].stage for k in (1, 2)] == [1, 1]


def test_concatenation_blocks_and_transition():
    """DenseNet-like: cat(x, f(x)) blocks; a conv + pool transition between two dense blocks."""
    net = Net()
    x = net.conv("conv0", net.x, 8, 2)
    for b in (1, 2):
        for i in (1, 2):
            y = net.conv(f"db{b}.l{i}.conv2", net.conv(f"db{b}.l{i}.conv1", x, 16), 4)
            x = net.op("cat", "cat", [x, y], x.shape[:1] + (x.shape[1] + 4,) + x.shape[2:])
        if b == 1:
            x = net.pool(net.conv("trans.conv", x, 8))
    roles = infer_roles(net.finish(net.head(x)), net.layers)
    assert roles["conv0"].is_stem and roles["fc"].is_final_dense
    assert {n: r.stage for n, r in roles.items() if r.stage} == {
        "db1.l1.conv1": 1, "db1.l1.conv2": 1, "db1.l2.conv1": 1, "db1.l2.conv2": 1, "trans.conv": 1,
        "db2.l1.conv1": 2, "db2.l1.conv2": 2, "db2.l2.conv1": 2, "db2.l2.conv2": 2}
    assert not any(r.is_downsample for r in roles.values())


def test_gate_branch_layers_belong_to_no_stage():
    """Squeeze-and-excitation (pooled 1x1 convs), a CBAM channel gate (dense MLP, its result expanded
    to full size before the product) and a spatial gate (a conv on a 2-channel map)."""
    net = Net()
    x = net.conv("stem", net.x, 8, 2)
    y = net.conv("b.conv", x, 8)
    w = net.conv("b.se.up", net.other("relu", net.conv("b.se.down", net.op("pool", "mean", [y], (1, 8, 1, 1)), 2)),
                 8)
    y = net.op("mul", "mul", [y, net.other("sigmoid", w)], y.shape)
    w = net.dense("b.ch.fc2", net.dense("b.ch.fc1", net.op("pool", "mean", [y], (1, 8)), 2), 8)
    y = net.op("mul", "mul", [y, net.other("expand_as", w, y.shape)], y.shape)
    w = net.conv("b.sp.conv", net.other("stack_max_mean", y, (1, 2) + y.shape[2:]), 1)
    y = net.op("mul", "__mul__", [y, w], y.shape)
    roles = infer_roles(net.finish(net.head(net.add(y, x))), net.layers)
    assert roles["b.conv"].stage == 1 and roles["fc"].is_final_dense
    for name in ("b.se.down", "b.se.up", "b.ch.fc1", "b.ch.fc2", "b.sp.conv"):
        assert roles[name] == Role(num_stages=1), name


def test_heads_without_blocks_and_conv_classifier():
    net = Net()
    x = net.pool(net.conv("c2", net.conv("c1", net.x, 8), 8))
    x = net.conv("c4", net.conv("c3", x, 16), 16)
    x = net.dense("fc2", net.other("relu", net.dense("fc1", net.other("flatten", x, (1, 16 * 256)), 32)), 10)
    roles = infer_roles(net.finish(x), net.layers)
    assert roles["c1"].is_stem and [roles[n].stage for n in ("c2", "c3", "c4")] == [1, 2, 2]
    assert roles["fc2"].is_final_dense and not roles["fc1"].is_final_dense
    net = Net()
    y = net.other("flatten", net.conv("classifier", net.pool(net.conv("c1", net.x, 8), 32), 10), (1, 10))
    assert not any(r.is_final_dense for r in infer_roles(net.finish(y), net.layers).values())


def test_layer_infos_geometry_tokens_and_layers_that_did_not_run():
    net = Net((2, 3, 32, 32))
    tokens = net.other("flatten", net.conv("patch", net.x, 64, 8), (2, 16, 64))
    x = net.add(tokens, net.dense("mlp.fc2", net.dense("mlp.fc1", tokens, 128), 64))
    trace = net.finish(net.dense("head", net.other("select", x, (2, 64)), 10))
    geometry = [("patch", dict(kind="conv2d", in_channels=3, out_channels=64, kernel=8, stride=8, padding="same")),
                ("mlp.fc1", dict(kind="dense", in_channels=64, out_channels=128, has_bias=True)),
                ("mlp.fc2", dict(kind="dense", in_channels=128, out_channels=64, has_bias=True)),
                ("attn.out_proj", dict(kind="dense", in_channels=64, out_channels=64)),
                ("head", dict(kind="dense", in_channels=64, out_channels=10, has_bias=True))]
    infos = {l.name: l for l in layer_infos(trace, geometry)}
    assert infos["patch"].input_hw == (32, 32) and infos["patch"].padding == (0, 0, 0, 0)
    assert infos["patch"].role.is_stem and infos["head"].role.is_final_dense and infos["head"].input_hw == (1, 1)
    fc1 = infos["mlp.fc1"]
    assert fc1.input_hw == (16, 1) and fc1.tokens == 16 and fc1.output_hw == (16, 1)
    assert layer_macs(fc1) == 16 * 64 * 128
    assert decomposed_cost(fc1, "svd", (8,)) == (8 * 64 + 128 * 8 + 128, 16 * 8 * (64 + 128))
    assert infos["attn.out_proj"].unsupported == NOT_RUN and infos["mlp.fc1"].unsupported is None
    plan = make_plan(list(infos.values()), mode="all", ratio=2.0)
    assert plan["attn.out_proj"].method == "none" and plan["attn.out_proj"].reason == NOT_RUN
    assert plan["mlp.fc1"].method == "svd" and plan["mlp.fc1"].macs_before == 16 * 64 * 128


def test_same_padding_is_resolved_from_the_input_size():
    net = Net((1, 3, 15, 15))
    trace = net.finish(net.conv("c", net.x, 4, 2))
    info, = layer_infos(trace, [("c", dict(kind="conv2d", in_channels=3, out_channels=4, kernel=(3, 4), stride=2,
                                          padding="same"))])
    assert info.padding == (1, 1, 1, 2) and info.output_hw == (8, 8)


def test_trace_round_trips_as_plain_data():
    _, trace = small_resnet()
    again = Trace.from_dict(json.loads(json.dumps(trace.to_dict())))
    assert again == trace and len(trace.layer_calls()) == 12


def test_overrides_and_their_validation():
    net, trace = small_resnet()
    roles = infer_roles(trace, net.layers)
    got = apply_overrides(roles, {"stem": {"stage": 1, "is_stem": False}, r"s2\.b2\..*": {"stage": 3}})
    assert got["stem"] == Role(stage=1, num_stages=3) and got["s2.b2.conv1"].stage == 3
    assert all(r.num_stages == 3 for r in got.values()) and got["s2.b1.proj"].is_downsample
    for bad, match in (({"stem": {"block": 2}}, "unknown role field 'block'"),
                       ({"stem": {"stage": 0}}, "integer >= 1"), ({"stem": {"is_stem": "yes"}}, "true or false"),
                       ({"(": {"stage": 1}}, "not a valid regular expression"), (["stem"], "roles takes")):
        with pytest.raises(ConfigError, match=match):
            apply_overrides(roles, bad)
    with pytest.raises(UnknownLayerError, match="matches no conv/dense layer"):
        apply_overrides(roles, {"nothing.*": {"stage": 2}})
    with pytest.raises(ConfigError, match="unknown role field"):
        PlanConfig(roles={"stem": {"downsample": True}})


def test_override_steers_the_mode():
    """ResNet-50 with its last block moved to a fifth stage: mode3 keeps layer4.0/1's 1x1 convs."""
    from tests.core.resnet_infos import resnet_infos
    layers = resnet_infos(50)
    base = make_plan(layers, mode="mode3", ratio=2.0)
    moved = make_plan(layers, mode="mode3", ratio=2.0, roles={r"layer4\.2\..*": {"stage": 5}})
    assert sum(lp.selected for lp in base.layers) == 45
    # last two stages are now 4 and 5: layer3.0's shortcut returns; only layer4.2's two 1x1 convs stay out
    assert sum(lp.selected for lp in moved.layers) == 45 + 1 + 4
    assert moved["layer3.0.downsample.0"].selected and not base["layer3.0.downsample.0"].selected
    assert moved["layer4.0.conv1"].selected and not moved["layer4.2.conv1"].selected
    assert moved["layer4.2.conv1"].info.role == Role(stage=5, num_stages=5)
    assert moved.config.roles == {r"layer4\.2\..*": {"stage": 5}}


def test_old_plan_roles_with_block_still_load():
    d = LayerInfo("layer3.0.conv1", "conv2d", 8, 8, role=Role(stage=3, num_stages=4)).to_dict()
    assert d["role"]["stage"] == 3
    d["role"] = {"block": 3, "is_downsample": False, "is_stem": False, "is_final_dense": False}
    again = LayerInfo.from_dict(d)
    assert again.role.stage == 3 and again.role.block == 3 and again.role.stage_from_end == 2
