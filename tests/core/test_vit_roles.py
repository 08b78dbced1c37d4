"""Transformer roles (attention projections, MLP layers, block indices) from hand-made traces, the
``attn``/``mlp`` modes and the ``blocks`` choice (no framework involved)."""
import json

import pytest

from lrd_core import PlanConfig, make_plan
from lrd_core.blocks import parse_blocks
from lrd_core.errors import ConfigError, RankError
from lrd_core.layers import LayerInfo, Role
from lrd_core.modes import MODES
from lrd_core.plan import Plan
from lrd_core.roles import apply_overrides, infer_roles, layer_infos
from lrd_core.vit_roles import role_from_name
from tests.core.test_roles import Net, small_resnet

D, T_ = 16, 5          # width, tokens


def attention(net, x, prefix, packed=False, fused=False, scale=True):
    """Multi-head attention on (1, T, D): separate or packed projections, explicit products or one
    fused scaled-dot-product operation, then the output projection."""
    heads = (1, 2, T_, D // 2)
    if packed:
        qkv = net.other("reshape", net.dense(f"{prefix}.qkv", x, 3 * D), (3,) + heads)
        q, k, v = (net.other("unbind", qkv, heads) for _ in range(3))
    else:
        q, k, v = (net.other("reshape", net.dense(f"{prefix}.{n}", x, D), heads) for n in "qkv")
    if fused:
        out = net.op("attention", "scaled_dot_product_attention", [q, k, v], heads)
    else:
        if scale:
            q = net.op("mul", "mul", [q], heads)
        s = net.op("matmul", "matmul", [q, net.other("transpose", k, (1, 2, D // 2, T_))], (1, 2, T_, T_))
        a = net.other("dropout", net.other("softmax", s))
        out = net.op("matmul", "matmul", [a, v], heads)
    return net.dense(f"{prefix}.proj", net.other("reshape", out, (1, T_, D)), D)


def mlp(net, x, prefix, hidden=32):
    return net.dense(f"{prefix}.fc2", net.other("gelu", net.dense(f"{prefix}.fc1", x, hidden)), D)


def vit(depth=3, packed=False, fused=False, names=None):
    """Patch conv -> tokens -> pre-norm blocks (attention, MLP) -> norm -> class token -> head."""
    names = names or (lambda i: (f"blocks.{i}.attn", f"blocks.{i}.mlp"))
    net = Net((1, 3, 8, 8))
    x = net.other("flatten", net.conv("patch_embed.proj", net.x, D, 4), (1, T_ - 1, D))
    x = net.op("cat", "cat", [x], (1, T_, D))            # with the class token (a parameter: not an activation)
    for i in range(depth):
        a, m = names(i)
        x = net.add(x, attention(net, net.other("norm1", x), a, packed, fused))
        x = net.add(x, mlp(net, net.other("norm2", x), m))
    return net, net.finish(net.dense("head", net.other("select", net.other("norm", x), (1, D)), 10))


def parts(roles):
    return {n: (r.kind, r.part, r.block_index) for n, r in roles.items()}


def test_separate_projections_mlp_and_blocks_from_structure():
    net, trace = vit(depth=3)
    roles = infer_roles(trace, net.layers)
    got = parts(roles)
    for i in range(3):
        b = f"blocks.{i}."
        assert [got[b + n] for n in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2")] == [
            ("attn", "q", i + 1), ("attn", "k", i + 1), ("attn", "v", i + 1), ("attn", "proj", i + 1),
            ("mlp", "fc1", i + 1), ("mlp", "fc2", i + 1)]
    assert got["head"] == (None, None, None) and roles["head"].is_final_dense
    assert got["patch_embed.proj"] == (None, None, None) and roles["patch_embed.proj"].is_stem
    assert {r.num_blocks for r in roles.values()} == {3}
    assert not any(r.is_packed for r in roles.values())


@pytest.mark.parametrize("packed, fused", [(True, False), (True, True), (False, True)])
def test_packed_and_fused_attention(packed, fused):
    net, trace = vit(depth=2, packed=packed, fused=fused)
    got = parts(infer_roles(trace, net.layers))
    if packed:
        assert got["blocks.1.attn.qkv"] == ("attn", "qkv", 2)
        assert infer_roles(trace, net.layers)["blocks.1.attn.qkv"].is_packed
    else:
        assert [got[f"blocks.1.attn.{n}"][1] for n in "qkv"] == ["q", "k", "v"]
    assert got["blocks.0.attn.proj"] == ("attn", "proj", 1) and got["blocks.1.mlp.fc2"] == ("mlp", "fc2", 2)


def test_names_do_not_matter_and_resnets_get_no_transformer_roles():
    net, trace = vit(depth=2, names=lambda i: (f"enc{i}.mix", f"enc{i}.ffn_like"))
    plain, plain_trace = vit(depth=2)
    got = [infer_roles(trace, net.layers)[n] for n, _ in net.layers]
    assert got == [infer_roles(plain_trace, plain.layers)[n] for n, _ in plain.layers]
    res, res_trace = small_resnet()
    assert all(r.kind is None and r.block_index is None and r.num_blocks is None
               for r in infer_roles(res_trace, res.layers).values())


def test_search_stays_inside_the_residual_branch():
    """An attention without query/key projections (products of the normalised stream): the previous
    block's MLP is not taken for them; its value and output projections are still found."""
    net = Net((1, 3, 8, 8))
    x = net.other("flatten", net.conv("patch", net.x, D, 4), (1, T_, D))
    x = net.add(x, mlp(net, net.other("norm0", x), "pre"))
    h = net.other("norm1", x)
    s = net.op("matmul", "matmul", [h, net.other("transpose", h, (1, D, T_))], (1, T_, T_))
    out = net.op("matmul", "matmul", [net.other("softmax", s), net.dense("blk.v", h, D)], (1, T_, D))
    x = net.add(x, net.dense("blk.proj", out, D))
    roles = infer_roles(net.finish(x), net.layers)
    assert parts(roles)["pre.fc1"] == ("mlp", "fc1", 1) and parts(roles)["pre.fc2"] == ("mlp", "fc2", 1)
    assert parts(roles)["blk.v"] == ("attn", "v", 2) and parts(roles)["blk.proj"] == ("attn", "proj", 2)


def test_name_rules_are_the_fallback():
    assert role_from_name("blocks.3.attn.qkv") == ("attn", "qkv", 4)
    assert role_from_name("encoder.layers.0.self_attn.out_proj") == ("attn", "proj", 1)
    assert role_from_name("layers.1.ff.2") == ("mlp", "fc2", 2)
    assert role_from_name("layer1.0.conv1") == (None, None, None)
    layers = [("blocks.0.attn.q", "dense"), ("blocks.1.mlp.fc1", "dense"), ("head", "dense")]
    roles = infer_roles(None, layers)                   # no trace: names are all there is
    assert parts(roles) == {"blocks.0.attn.q": ("attn", "q", 1), "blocks.1.mlp.fc1": ("mlp", "fc1", 2),
                            "head": (None, None, None)}
    assert roles["blocks.0.attn.q"].num_blocks == 2


def geometry(net):
    """(name, geometry) of every layer of a :func:`vit` network."""
    out = []
    for n, k in net.layers:
        if k == "conv2d":
            out.append((n, dict(kind=k, in_channels=3, out_channels=D, kernel=4, stride=4)))
            continue
        cin, cout = (D, 32) if n.endswith("fc1") else (32, D) if n.endswith("fc2") else (D, 10) if n == "head" \
            else (D, 3 * D) if n.endswith("qkv") else (D, D)
        out.append((n, dict(kind=k, in_channels=cin, out_channels=cout, has_bias=True)))
    return out


def test_modes_and_blocks_choice():
    net, trace = vit(depth=4)
    infos = layer_infos(trace, geometry(net))
    chosen = {m: [l.name for l in infos if MODES[m](l)] for m in ("attn", "mlp", "auto", "vanilla", "all")}
    assert len(chosen["attn"]) == 16 and all(".attn." in n for n in chosen["attn"])
    assert len(chosen["mlp"]) == 8 and all(".mlp." in n for n in chosen["mlp"])
    order = [l.name for l in infos]
    assert chosen["vanilla"] == ["head"]
    assert chosen["auto"] == sorted(chosen["attn"] + chosen["mlp"], key=order.index) + ["head"]
    assert len(chosen["all"]) == 26
    last = make_plan(infos, mode="mlp", blocks="last:2", ratio=2.0)
    assert {lp.name for lp in last.layers if lp.selected} == {f"blocks.{i}.mlp.fc{j}" for i in (2, 3) for j in (1, 2)}
    first = make_plan(infos, mode="all", blocks="first:1", include=["patch_embed.proj"], ratio=2.0)
    assert {lp.name for lp in first.layers if lp.selected} == {"patch_embed.proj"} | {
        f"blocks.0.{n}" for n in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2")}
    some = make_plan(infos, mode="attn", blocks="1,3-4", ratio=2.0)
    assert sorted({lp.info.role.block_index for lp in some.layers if lp.selected}) == [1, 3, 4]
    assert Plan.from_dict(json.loads(json.dumps(some.to_dict()))).config.blocks == "1,3-4"
    with pytest.raises(ConfigError, match="the model has 4 transformer blocks; choose at most 4"):
        make_plan(infos, mode="attn", blocks="last:5")


@pytest.mark.parametrize("spec, want", [("last:6", ("last", 6, frozenset())), ("First:2", ("first", 2, frozenset())),
                                        ("1-3, 7", (None, 0, frozenset({1, 2, 3, 7}))), (None, None)])
def test_blocks_spec_parsing(spec, want):
    got = parse_blocks(spec)
    assert (got if got is None else (got.edge, got.count, got.indices)) == want


@pytest.mark.parametrize("spec", ["last:0", "lst:3", "3-1", "0", "a,b", 3])
def test_bad_blocks_specs_are_config_errors(spec):
    with pytest.raises(ConfigError, match="blocks"):
        PlanConfig(blocks=spec)


def test_blocks_on_a_cnn_are_its_stages():
    from tests.core.resnet_infos import resnet_infos
    layers = resnet_infos(50)
    plan = make_plan(layers, mode="vanilla", blocks="last:1", ratio=2.0)
    assert {lp.info.role.stage for lp in plan.layers if lp.selected} == {4}
    assert sum(lp.selected for lp in plan.layers) == 10        # layer4: 3 bottlenecks x 3 + downsample


def test_role_json_round_trip_overrides_and_old_plans():
    role = Role(stage=1, num_stages=1, kind="attn", part="qkv", block_index=2, num_blocks=12)
    info = LayerInfo("blocks.1.attn.qkv", "dense", 8, 24, role=role)
    assert LayerInfo.from_dict(json.loads(json.dumps(info.to_dict()))).role == role and role.is_packed
    old = {"stage": 1, "num_stages": 4, "is_downsample": False, "is_stem": False, "is_final_dense": False}
    assert Role.from_dict(old).kind is None and Role.from_dict(old).block_index is None
    net, trace = vit(depth=2)
    roles = apply_overrides(infer_roles(trace, net.layers), {"head": {"kind": "mlp", "block_index": 3},
                                                            r"blocks\.0\.mlp\.fc1": {"kind": None}})
    assert roles["head"].kind == "mlp" and roles["blocks.0.mlp.fc1"].kind is None
    assert {r.num_blocks for r in roles.values()} == {3}
    for bad in ({"head": {"kind": "conv"}}, {"head": {"block_index": 0}}, {"head": {"part": 3}}):
        with pytest.raises(ConfigError):
            apply_overrides(roles, bad)


def test_tucker_ranks_on_a_packed_projection_are_one_clear_error():
    net, trace = vit(depth=1, packed=True)
    infos = layer_infos(trace, geometry(net))
    with pytest.raises(RankError) as info:
        make_plan(infos, mode=None, rank_selection="manual", ranks={"blocks.0.attn.qkv": (8, 4)})
    msg = str(info.value)
    assert "\n" not in msg and "packed query/key/value projection" in msg and "give one rank, e.g. 4" in msg
    with pytest.raises(RankError, match=r"rank \(24,\) exceeds the full rank \(16,\)"):
        make_plan(infos, mode=None, rank_selection="manual", ranks={"blocks.0.attn.qkv": 24})
