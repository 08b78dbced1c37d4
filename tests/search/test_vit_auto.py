"""``mode="auto"`` on Vision Transformers: candidates are the attention/MLP layers (and the head), each
timed at its real token count in every phase; only faster layers are decomposed and the whole network
is never left slower. Synthetic latency tables (known answers), then both adapters on a tiny ViT."""
import numpy as np
import pytest

from lrd_core.api.timing import layer_input_shape
from lrd_core.latency import Timing
from lrd_core.latency_cache import layer_signature
from lrd_core.layers import LayerInfo, Role
from lrd_core.profile import Profiler
from lrd_core.search import search_plan
from tests.conftest import forward

PHASES = ("infer@1", "infer@8", "train@8")
TOKENS = 65


def dense(name, cin, cout, kind=None, part=None, block=None, tokens=TOKENS, final=False):
    return LayerInfo(name, "dense", cin, cout, has_bias=True, input_hw=(tokens, 1),
                     role=Role(stage=None if final else 1, num_stages=1, kind=kind, part=part, block_index=block,
                               num_blocks=2, is_final_dense=final))


def vit_layers():
    out = [LayerInfo("patch_embed.proj", "conv2d", 3, 192, (4, 4), (4, 4), input_hw=(32, 32), has_bias=True,
                     role=Role(num_stages=1, is_stem=True, num_blocks=2))]
    for b in (1, 2):
        p = f"blocks.{b - 1}."
        out += [dense(p + f"attn.{n}", 192, 192, "attn", n, b) for n in ("q", "k", "v", "proj")]
        out += [dense(p + "mlp.fc1", 192, 768, "mlp", "fc1", b), dense(p + "mlp.fc2", 768, 192, "mlp", "fc2", b)]
    return out + [dense("head", 192, 100, tokens=1, final=True)]


class TokenTable:
    """Original layers take time proportional to their MACs per sample; factor chains of the MLP layers
    are faster (0.6x), of the attention projections slower (1.2x). Records every request."""

    def __init__(self):
        self.calls = []

    def __call__(self, info, variants, phase):
        self.calls.append((info, phase, layer_input_shape(info, int(phase.split("@")[1]))))
        base = info.tokens * info.in_channels * info.out_channels / 1e6
        factor = {"mlp": 0.6, "attn": 1.2}.get(info.role.kind, 1.0)
        return [Timing(samples=[base * (1.0 if m == "none" else factor)] * 3) for m, _ in variants]


def test_auto_times_each_layer_at_its_token_count_and_keeps_the_faster_ones():
    timer = TokenTable()
    plan = search_plan(vit_layers(), dict(mode="auto", ratio=2.0, rank_multiple=16, search_radius=1, verify=False),
                       Profiler(timer))
    assert {lp.name for lp in plan.decomposed()} == {f"blocks.{b}.mlp.fc{j}" for b in (0, 1) for j in (1, 2)}
    for name in ("blocks.0.attn.q", "blocks.1.attn.proj", "head"):
        assert plan[name].method == "none" and "not faster" in plan[name].reason, name
    assert plan["patch_embed.proj"].reason == "not selected by mode auto"
    shapes = {(info.name, phase): shape for info, phase, shape in timer.calls}
    assert shapes[("blocks.0.mlp.fc1", "train@8")] == (8, TOKENS, 192)
    assert shapes[("blocks.0.attn.q", "infer@1")] == (1, TOKENS, 192)
    assert shapes[("head", "infer@8")] == (8, 192)
    assert {phase for _, phase, _ in timer.calls} == set(PHASES)
    # q, k, v, proj of both blocks share one shape and one measurement per phase; fc1, fc2, head one each
    assert len(timer.calls) == 4 * len(PHASES)


def test_token_count_is_part_of_the_timing_key():
    a, b = dense("x", 192, 192, tokens=65), dense("x", 192, 192, tokens=197)
    assert layer_signature(a) != layer_signature(b) != layer_signature(dense("x", 192, 192, tokens=1))
    assert layer_signature(dense("x", 192, 192, tokens=1)) == "dense:192->192:b1"      # old cache keys hold


def test_the_whole_network_is_never_left_slower():
    timer = TokenTable()
    seen = []

    def verify(plan):                 # the network is slower while the first block's MLP is decomposed
        names = {lp.name for lp in plan.decomposed()}
        seen.append(names)
        return {p: (1.04 if "blocks.0.mlp.fc1" in names else 0.92) for p in PHASES}
    plan = search_plan(vit_layers(), dict(mode="auto", ratio=2.0, rank_multiple=16, verify_rounds=3), Profiler(timer),
                       verify=verify)
    checks = plan.meta["auto"]["verify"]
    assert len(seen[0]) == 4 and all(v <= 1.0 for v in checks[-1]["ratios"].values())
    assert not plan["blocks.0.mlp.fc1"].decomposed and "undone" in plan["blocks.0.mlp.fc1"].reason


def test_blocks_narrow_the_auto_candidates():
    timer = TokenTable()
    plan = search_plan(vit_layers(), dict(mode="auto", blocks="last:1", ratio=2.0, rank_multiple=16, verify=False),
                       Profiler(timer))
    assert {lp.name for lp in plan.decomposed()} == {"blocks.1.mlp.fc1", "blocks.1.mlp.fc2"}
    assert {info.name for info, _, _ in timer.calls} <= {f"blocks.1.{p}" for p in
                                                          ("attn.q", "mlp.fc1", "mlp.fc2")}


# ------------------------------------------------------------------ both adapters on a tiny ViT
TINY = dict(image_size=32, patch_size=8, num_classes=10, depth=1, dim=64, num_heads=2, mlp_dim=256)


def test_auto_plan_on_a_vit_in_both_frameworks(fw, tmp_path, monkeypatch):
    backend = fw.BACKEND
    original = backend.runners
    shapes = []

    def spy(models, input_shape, phase, *args, **kwargs):
        shapes.append((tuple(input_shape), phase))
        return original(models, input_shape, phase, *args, **kwargs)
    monkeypatch.setattr(backend, "runners", spy)
    model = fw.models.create_model("vit_tiny", **TINY, seed=0)
    threads = {"threads": 1} if fw.FRAMEWORK == "torch" else {}
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="auto", ratio=2.0, rank_multiple=16, objective="both",
                   profile_batch=2, search_radius=0, verify_rounds=1, cache_path=str(tmp_path / "lat.json"), **threads)
    auto = plan.meta["auto"]
    assert auto["phases"] == ["infer@1", "infer@2", "train@2"]
    block = {f"blocks.0.{p}" for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert block <= set(auto["table"]) <= block | {"head"}
    assert ((2, 17, 64), "train") in shapes and ((1, 17, 64), "infer") in shapes and ((2, 17, 256), "infer") in shapes
    for lp in plan.layers:
        if lp.decomposed:            # faster by the margin on average, slower by no more than it in any phase
            ratios = list(auto["table"][lp.name]["svd:" + "x".join(map(str, lp.ranks))].values())
            assert lp.note.startswith("auto") and np.mean(ratios) <= 0.95 and max(ratios) <= 1.05
        else:
            assert lp.reason
    if plan.decomposed():            # checked on the whole network (batch 2, every phase)
        assert set(auto["verify"][0]["ratios"]) == {"infer@1", "infer@2", "train@2"}
        assert ((2, 3, 32, 32), "train") in shapes
    fw.compress(model, plan)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert forward(fw, model, x).shape == (2, 10)
