"""Vision Transformers through inspect / plan / compress in both frameworks: transformer roles from the
traced structure, the ``attn``/``mlp``/``all`` modes and the ``blocks`` choice, every rank selection on
the dense layers of (batch, tokens, features) inputs, packed projections of other zoos."""
import numpy as np
import pytest

from lrd_core import ranks as R
from lrd_core.errors import RankError
from lrd_core.modes import MODES
from lrd_core.vit_roles import role_from_name
from tests.conftest import forward

SMALL = dict(image_size=32, patch_size=8, num_classes=10, depth=3)     # 17 tokens, 3 blocks
SHAPE = (1, 3, 32, 32)
X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
PARTS = ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2")


def vit(fw, seed=0, **kw):
    return fw.models.create_model("vit_tiny", **{**SMALL, **kw}, seed=seed)


def test_roles_modes_and_blocks(fw):
    infos = fw.inspect(vit(fw), input_shape=SHAPE)
    for l in infos[1:-1]:          # every block layer: the role its name describes, found from the structure
        assert (l.role.kind, l.role.part, l.role.block_index) == role_from_name(l.name), l.name
        assert l.role.num_blocks == 3 and l.tokens == 17
    counts = {m: sum(MODES[m](l) for l in infos) for m in ("attn", "mlp", "all", "vanilla", "auto")}
    assert counts == {"attn": 12, "mlp": 6, "all": 20, "vanilla": 1, "auto": 19}
    plan = fw.plan(vit(fw), input_shape=SHAPE, mode="attn", blocks="last:1", ratio=2.0, rank_multiple=8)
    assert [lp.name for lp in plan.decomposed()] == [f"blocks.2.{p}" for p in PARTS[:4]]
    plan = fw.plan(vit(fw), input_shape=SHAPE, mode="mlp", blocks="first:2", include=["patch_embed.proj"],
                   ratio=2.0, rank_multiple=8)
    assert [lp.name for lp in plan.decomposed()] == ["patch_embed.proj"] + [f"blocks.{i}.mlp.fc{j}" for i in (0, 1)
                                                                            for j in (1, 2)]
    assert plan["patch_embed.proj"].method == "tucker2"
    resnet = fw.inspect(fw.models.resnet18(stem="cifar", width=8, num_classes=10), input_shape=SHAPE)
    assert {m: sum(MODES[m](l) for l in resnet) for m in ("vanilla", "mode1", "mode2", "mode3", "mode4", "mode5",
                                                          "all", "attn", "mlp")} == {
        "vanilla": 20, "mode1": 17, "mode2": 18, "mode3": 18, "mode4": 17, "mode5": 4, "all": 21, "attn": 0,
        "mlp": 0}


def _planted(fw, rank=4, noise=0.0, seed=1):
    """A ViT whose block layers have rank ``rank`` (+ Gaussian noise of relative size ``noise``)."""
    model = vit(fw)
    arrays = fw.state_to_numpy(model)
    rng = np.random.default_rng(seed)
    for i in range(SMALL["depth"]):
        for p in PARTS:
            w = arrays[f"blocks.{i}.{p}.weight"]
            low = rng.standard_normal((w.shape[0], rank)) @ rng.standard_normal((rank, w.shape[1]))
            low *= 0.05 / np.abs(low).std()
            arrays[f"blocks.{i}.{p}.weight"] = (low + noise * 0.05 * rng.standard_normal(w.shape)).astype(np.float32)
        arrays[f"blocks.{i}.mlp.fc1.bias"] = rng.uniform(-0.1, 0.1, arrays[f"blocks.{i}.mlp.fc1.bias"].shape
                                                         ).astype(np.float32)
    return fw.load_numpy(model, arrays), arrays


def test_every_rank_selection_on_token_layers(fw):
    model, arrays = _planted(fw, rank=4, noise=0.02)
    names = [f"blocks.{i}.{p}" for i in range(3) for p in PARTS]
    kw = dict(input_shape=SHAPE, mode="all", exclude=["patch_embed.proj", "head"])
    pr = fw.plan(model, rank_selection="pr", ratio=3.0, rank_rounding="nearest", **kw)
    vb = fw.plan(model, rank_selection="vbmf", vbmf_weakening=1.0, **kw)
    en = fw.plan(model, rank_selection="energy", energy=0.9, **kw)
    q8 = fw.plan(model, rank_selection="vbmf", vbmf_weakening=1.0, rank_multiple=8, **kw)
    man = fw.plan(model, rank_selection="manual", ranks={r"blocks\.\d\.mlp\.fc1": 12, "blocks.0.attn.v": 5}, **kw)
    for name in names:
        w = arrays[name + ".weight"]
        out, cin = w.shape
        assert pr[name].ranks == (round(R.pr_svd_rank(out, cin, 3.0)),), name
        assert vb[name].ranks == (4,), name                              # the planted rank, under noise
        assert en[name].ranks == (R.energy_rank(w, 0.9),) and en[name].ranks[0] <= 4, name
        assert q8[name].ranks == (8,), name                              # 4 rounded to the multiple, clamped
        assert pr[name].macs_before == 17 * out * cin and pr[name].macs_after == 17 * pr[name].ranks[0] * (out + cin)
    assert [man[n].ranks for n in ("blocks.0.mlp.fc1", "blocks.2.mlp.fc1", "blocks.0.attn.v")] == [(12,), (12,), (5,)]
    assert sum(lp.decomposed for lp in man.layers) == 4


def test_exact_low_rank_layers_decompose_without_error(fw):
    """Rank-4 block layers: an energy plan keeps rank 4 and the compressed network gives the same outputs."""
    model, _ = _planted(fw, rank=4)
    ref = forward(fw, model, X)
    plan = fw.plan(model, input_shape=SHAPE, mode="all", exclude=["patch_embed.proj", "head"],
                   rank_selection="energy", energy=0.99999)
    assert {lp.ranks for lp in plan.decomposed()} == {(4,)} and len(plan.decomposed()) == 18
    fw.compress(model, plan)
    out = forward(fw, model, X)
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


def test_same_mode_plan_same_outputs_in_both_frameworks(lrd_torch, lrd_mindspore):
    t = vit(lrd_torch, seed=3)
    weights = lrd_torch.state_to_numpy(t)
    m = lrd_mindspore.load_numpy(vit(lrd_mindspore, seed=4), weights)
    plan = lrd_mindspore.plan(m, input_shape=SHAPE, mode="mlp", blocks="2-3", ratio=2.0, rank_multiple=8)
    assert len(plan.decomposed()) == 4
    lrd_torch.compress(t, plan)
    lrd_mindspore.compress(m, plan)
    a, b = forward(lrd_torch, t, X), forward(lrd_mindspore, m, X)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def _torch_packed():
    """A ViT written with packed qkv projections and torch's fused scaled-dot-product attention."""
    import torch
    from torch import nn

    class Attn(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)

        def forward(self, x):
            b, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, 4, c // 4).permute(2, 0, 3, 1, 4).unbind(0)
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return self.out(y.transpose(1, 2).reshape(b, n, c))

    class Layer(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.ln1, self.mix, self.ln2 = nn.LayerNorm(d), Attn(d), nn.LayerNorm(d)
            self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

        def forward(self, x):
            x = x + self.mix(self.ln1(x))
            return x + self.ffn(self.ln2(x))

    class Net(nn.Module):
        def __init__(self, d=32):
            super().__init__()
            self.embed = nn.Conv2d(3, d, 8, 8)
            self.body = nn.Sequential(Layer(d), Layer(d))
            self.cls = nn.Linear(d, 10)

        def forward(self, x):
            return self.cls(self.body(self.embed(x).flatten(2).transpose(1, 2)).mean(1))

    torch.manual_seed(0)
    return Net(), "body.{i}.mix.qkv", "body.{i}.mix.out", "body.{i}.ffn.{j}"


def _mindcv_packed():
    import mindspore as ms
    from mindcv.models.vit import VisionTransformer
    ms.set_seed(0)
    net = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=10)
    return net, "blocks.{i}.attn.qkv", "blocks.{i}.attn.proj", "blocks.{i}.mlp.fc{k}"


def test_packed_projections_of_other_zoos(fw):
    """torch: fused attention on a packed projection; MindSpore: mindcv's ViT (packed qkv, BatchMatMul)."""
    pytest.importorskip("mindcv")
    model, qkv, proj, ffn = _torch_packed() if fw.FRAMEWORK == "torch" else _mindcv_packed()
    infos = {l.name: l for l in fw.inspect(model, input_shape=SHAPE)}
    for i in range(2):
        assert infos[qkv.format(i=i)].role.is_packed and infos[qkv.format(i=i)].role.part == "qkv"
        assert (infos[proj.format(i=i)].role.kind, infos[proj.format(i=i)].role.part) == ("attn", "proj")
        layers = [ffn.format(i=i, j=j, k=j // 2 + 1) for j in (0, 2)]
        assert [(infos[n].role.kind, infos[n].role.part, infos[n].role.block_index) for n in layers] == [
            ("mlp", "fc1", i + 1), ("mlp", "fc2", i + 1)]
    with pytest.raises(RankError, match=r"is a packed query/key/value projection, i\.e\. one dense layer, "
                                        r"decomposed by SVD with one rank; Tucker-2 ranks \(r_out, r_in\) \(48, 16\)"):
        fw.plan(model, input_shape=SHAPE, mode="attn", rank_selection="manual", ranks={qkv.format(i=0): (48, 16)})
    ref = forward(fw, model, X)
    plan = fw.plan(model, input_shape=SHAPE, mode="attn", rank_selection="manual",
                   ranks={qkv.format(i=r"\d"): 32, proj.format(i=r"\d"): 32}, skip_unreduced=False)
    assert sorted(lp.name for lp in plan.decomposed()) == sorted(
        n.format(i=i) for i in range(2) for n in (qkv, proj))
    assert plan[qkv.format(i=0)].method == "svd" and plan[qkv.format(i=0)].info.out_channels == 96
    fw.compress(model, plan)                      # full rank: the same network
    assert np.abs(forward(fw, model, X) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_data_aware_decomposition_of_token_layers(fw):
    """Calibration on (batch, tokens, features) activations: at the same ranks, the data-aware factors keep the
    network's outputs on held-out inputs several times closer to the original's than plain SVD (the same
    numbers in both frameworks: 0.31 vs 0.055 relative error here)."""
    def build():
        model = vit(fw, depth=2)
        arrays = fw.state_to_numpy(model)
        arrays["pos_embed"] = (arrays["pos_embed"] * 20).astype(np.float32)    # anisotropic token activations
        return fw.load_numpy(model, arrays)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    calibration, held_out = [x[i:i + 16] for i in range(0, 48, 16)], x[48:]
    ref = forward(fw, build(), held_out)
    kw = dict(input_shape=SHAPE, mode="all", exclude=["patch_embed.proj", "head"], rank_selection="manual",
              ranks={r".*\.attn\..*": 32, r".*\.mlp\..*": 48})
    errors = {}
    for aware in (False, True):
        model = build()
        plan = fw.plan(model, calibration=calibration if aware else None, data_aware=aware, **kw)
        assert len(plan.decomposed()) == 12 and all(lp.data_aware == aware for lp in plan.decomposed())
        fw.compress(model, plan, calibration=calibration if aware else None)
        errors[aware] = np.abs(forward(fw, model, held_out) - ref).max() / np.abs(ref).max()
    assert errors[True] < 0.3 * errors[False] and errors[False] > 0.1
