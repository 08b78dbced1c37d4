"""Vision Transformers: same names, weights and outputs in torch and MindSpore; checkpoints both ways;
every projection an ordinary dense layer that inspect lists and compress decomposes."""
import numpy as np
import pytest

import mindspore as ms
import torch
from scipy.special import erf

from lrd_core.errors import ConfigError
from lrd_core.init_vit import vit_config, vit_param_count, vit_param_shapes
from lrd_core.naming import is_num_batches
from lrd_mindspore.models import vit as msvit
from lrd_torch.models import vit as tvit
from tests.conftest import forward

SMALL = dict(image_size=32, patch_size=4, num_classes=10, depth=2)   # the small-input form, 2 blocks
X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
ZOO = {"torch": tvit, "mindspore": msvit}


def _perturbed(arrays, seed=0):
    """Non-trivial biases, LayerNorm affine and larger weights, so every term of the forward pass counts."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in arrays.items():
        if v.ndim == 1 and k.endswith("weight"):    # LayerNorm scale
            out[k] = (v * rng.uniform(0.5, 1.5, v.shape)).astype(np.float32)
        else:
            out[k] = (v + 0.05 * rng.standard_normal(v.shape)).astype(np.float32)
    return out


def _block_names(i):
    b = f"blocks.{i}."
    return [b + n for n in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2")]


def test_same_seed_same_state_in_both_frameworks(lrd_torch, lrd_mindspore):
    t, m = tvit.vit_tiny(**SMALL, seed=3), msvit.vit_tiny(**SMALL, seed=3)
    ta, ma = lrd_torch.state_to_numpy(t), lrd_mindspore.state_to_numpy(m)
    want = vit_param_shapes(vit_config("vit_tiny", **SMALL))
    assert list(ta) == list(ma) == list(want)            # same names, same (state_dict) order
    assert {k: v.shape for k, v in ta.items()} == want
    for k in ta:
        np.testing.assert_array_equal(ta[k], ma[k], err_msg=k)
    assert [k for k, _ in t.named_parameters()] == [p for p, _ in m.parameters_and_names()]
    # the initialiser: LayerNorm 1/0, dense trunc-normal(0.02)/0, tokens trunc-normal(0.02)
    assert np.all(ta["blocks.1.norm2.weight"] == 1) and np.all(ta["norm.bias"] == 0)
    assert np.all(ta["blocks.0.attn.q.bias"] == 0) and np.all(ta["head.bias"] == 0)
    fc1 = ta["blocks.0.mlp.fc1.weight"]
    assert np.abs(fc1).max() <= 0.04 and abs(fc1.std() / (0.02 * 0.8796) - 1) < 0.03   # std of N(0,1) cut at +-2
    assert np.abs(ta["pos_embed"]).max() <= 0.04 and 0.015 < ta["pos_embed"].std() < 0.02
    other = lrd_torch.state_to_numpy(tvit.vit_tiny(**SMALL, seed=4))
    assert not np.array_equal(other["blocks.0.attn.k.weight"], ta["blocks.0.attn.k.weight"])


@pytest.mark.parametrize("name, options", [("vit_tiny", SMALL),
                                           ("vit_small", dict(image_size=16, patch_size=8, num_classes=7, depth=1))])
def test_same_weights_same_outputs(lrd_torch, lrd_mindspore, name, options):
    t = tvit.MODELS[name](**options, seed=0)
    weights = _perturbed(lrd_torch.state_to_numpy(t))
    lrd_torch.load_numpy(t, weights)
    m = lrd_mindspore.load_numpy(msvit.MODELS[name](**options, seed=1), weights)
    x = X[:, :, :options["image_size"], :options["image_size"]]
    yt, ym = forward(lrd_torch, t, x), forward(lrd_mindspore, m, x)
    scale = np.abs(yt).max()
    print(f"{name}: max|y|={scale:.4g}, max abs diff={np.abs(yt - ym).max():.3g}")
    assert ym.shape == yt.shape == (2, options["num_classes"]) and scale > 0.5
    assert np.abs(yt - ym).max() <= 1e-5 * scale


def test_mindspore_graph_mode_matches_pynative(lrd_mindspore):
    net = msvit.vit_tiny(**SMALL, seed=2)
    lrd_mindspore.load_numpy(net, _perturbed(lrd_mindspore.state_to_numpy(net)))
    y_py = forward(lrd_mindspore, net, X)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        y_graph = forward(lrd_mindspore, net, X)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert np.abs(y_graph - y_py).max() <= 1e-5 * np.abs(y_py).max()


@pytest.mark.parametrize("name, count", [("vit_tiny", 5_717_416), ("vit_small", 22_050_664),
                                         ("vit_b_16", 86_567_656)])
def test_parameter_counts_of_the_standard_models(name, count):
    assert vit_param_count(vit_config(name)) == count          # from the shapes: no heavy model is built


def test_vit_tiny_at_224_has_the_published_size(fw):
    model = ZOO[fw.FRAMEWORK].vit_tiny(seed=0)
    shapes = {k: v.shape for k, v in fw.state_to_numpy(model).items()}
    assert shapes == vit_param_shapes(vit_config("vit_tiny"))
    assert shapes["pos_embed"] == (1, 197, 192) and shapes["patch_embed.proj.weight"] == (192, 3, 16, 16)
    assert fw.count_params(model) == 5_717_416


def test_checkpoints_load_in_the_other_framework(lrd_torch, lrd_mindspore, tmp_path):
    t = tvit.vit_tiny(**SMALL, seed=5)
    lrd_torch.load_numpy(t, _perturbed(lrd_torch.state_to_numpy(t), seed=5))
    lrd_torch.write_checkpoint(lrd_torch.state_to_numpy(t), str(tmp_path / "vit.pt"))
    m = lrd_mindspore.load_checkpoint(msvit.vit_tiny(**SMALL, seed=6), str(tmp_path / "vit.pt"))
    assert np.abs(forward(lrd_mindspore, m, X) - forward(lrd_torch, t, X)).max() <= 1e-5 * np.abs(
        forward(lrd_torch, t, X)).max()
    lrd_mindspore.write_checkpoint(lrd_mindspore.state_to_numpy(m), str(tmp_path / "vit.ckpt"))
    back = lrd_torch.read_checkpoint(str(tmp_path / "vit.ckpt"))
    t2 = lrd_torch.load_numpy(tvit.vit_tiny(**SMALL, seed=7), back)
    start, end = lrd_torch.state_to_numpy(t), lrd_torch.state_to_numpy(t2)
    assert list(back) == list(start)
    assert all(np.array_equal(start[k], end[k]) for k in start)


@pytest.mark.parametrize("options, words", [
    (dict(image_size=30, patch_size=4), ("image_size 30 is not divisible by patch_size 4", "28 or 32")),
    (dict(image_size=224, patch_size=0), ("patch_size must be a positive integer",)),
    (dict(dim=200), ("dim 200 is not divisible by num_heads 3",)),
    (dict(drop_rate=1.0), ("drop_rate",)),
    (dict(num_classes=0), ("num_classes",)),
])
def test_bad_options_raise_one_line_config_errors(fw, options, words):
    with pytest.raises(ConfigError) as info:
        ZOO[fw.FRAMEWORK].vit_tiny(**options)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("vit_tiny: ")
    for w in words:
        assert w in msg


def test_input_of_the_wrong_size_is_a_config_error(fw):
    model = ZOO[fw.FRAMEWORK].vit_tiny(**SMALL, seed=0)
    with pytest.raises(ConfigError, match=r"expected an input of shape \(N, 3, 32, 32\), got \(2, 3, 28, 28\); "
                                          r"resize the images to 32x32 or build the model with image_size=28"):
        forward(fw, model, X[:, :, :28, :28])
    with pytest.raises(ConfigError, match=r"got \(2, 1, 30, 30\); resize the images to 32x32$"):
        forward(fw, model, X[:, :1, :30, :30])


def test_gelu_is_the_exact_erf_form(fw):
    x = np.linspace(-6, 6, 1201, dtype=np.float32)
    ref = x * 0.5 * (1 + erf(x.astype(np.float64) / np.sqrt(2)))
    if fw.FRAMEWORK == "torch":
        got = tvit.Mlp(vit_config("vit_tiny")).act(torch.from_numpy(x)).numpy()
    else:
        got = msvit.GELU()(ms.Tensor(x)).asnumpy()
        portable = msvit.PortableGELU()(ms.Tensor(x)).asnumpy()
        assert np.all(np.abs(portable - ref) <= 1e-6 * (1 + np.abs(x)))   # the ONNX form (A&S 7.1.26 erfc)
    assert np.all(np.abs(got - ref) <= 2e-7 * (1 + np.abs(x)))            # the tanh form is off by up to 4.7e-4


def test_mindspore_portable_layer_norm_matches(lrd_mindspore):
    norm = msvit.LayerNorm(6)
    rng = np.random.default_rng(1)
    lrd_mindspore.load_numpy(norm, {"weight": rng.uniform(0.5, 1.5, 6).astype(np.float32),
                                    "bias": rng.standard_normal(6).astype(np.float32)})
    x = (3 + 2 * rng.standard_normal((2, 5, 6))).astype(np.float32)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (6,), torch.from_numpy(norm.weight.asnumpy()),
                                         torch.from_numpy(norm.bias.asnumpy()), eps=1e-6).numpy()
    assert np.abs(norm(ms.Tensor(x)).asnumpy() - ref).max() < 2e-6
    assert np.abs(norm.onnx_portable()(ms.Tensor(x)).asnumpy() - ref).max() < 2e-6


def test_inspect_lists_patch_conv_and_every_projection(fw):
    infos = fw.inspect(ZOO[fw.FRAMEWORK].vit_tiny(**SMALL, seed=0), input_shape=(1, 3, 32, 32))
    assert [i.name for i in infos] == ["patch_embed.proj"] + _block_names(0) + _block_names(1) + ["head"]
    conv = infos[0]
    assert (conv.kind, conv.kernel, conv.stride, conv.input_hw, conv.has_bias) == ("conv2d", (4, 4), (4, 4), (32, 32),
                                                                                  True)
    assert conv.role.is_stem and not conv.role.is_downsample
    dense = {i.name: (i.kind, i.in_channels, i.out_channels) for i in infos[1:]}
    assert dense["blocks.1.attn.v"] == ("dense", 192, 192) and dense["blocks.0.mlp.fc1"] == ("dense", 192, 768)
    assert dense["blocks.0.mlp.fc2"] == ("dense", 768, 192) and dense["head"] == ("dense", 192, 10)
    assert infos[-1].role.is_final_dense and not any(i.role.is_final_dense for i in infos[:-1])


def test_compressed_vit_same_outputs_in_both_frameworks(lrd_torch, lrd_mindspore):
    """Every dense layer (on (batch, tokens, features) inputs) becomes a chain of two; both frameworks agree,
    and the MindSpore chain runs in GRAPH mode too."""
    t = tvit.vit_tiny(**SMALL, seed=8)
    weights = _perturbed(lrd_torch.state_to_numpy(t), seed=8)
    lrd_torch.load_numpy(t, weights)
    m = lrd_mindspore.load_numpy(msvit.vit_tiny(**SMALL), weights)
    plan = lrd_torch.plan(t, input_shape=(1, 3, 32, 32), mode="all", rank_selection="pr", ratio=2.0,
                          rank_multiple=8)
    decomposed = {lp.name for lp in plan.decomposed()}
    assert set(_block_names(0) + _block_names(1)) <= decomposed
    lrd_torch.compress(t, plan)
    lrd_mindspore.compress(m, plan)
    assert "blocks.0.attn.q.1.bias" in lrd_torch.state_to_numpy(t)
    a, b = forward(lrd_torch, t, X), forward(lrd_mindspore, m, X)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        g = forward(lrd_mindspore, m, X)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert np.abs(g - b).max() <= 1e-5 * np.abs(b).max()
    ta, ma = lrd_torch.state_to_numpy(t), lrd_mindspore.state_to_numpy(m)
    assert [k for k in ta if not is_num_batches(k)] == list(ma)


@pytest.mark.parametrize("framework, fmt", [("torch", "ONNX"), ("mindspore", "MINDIR")])
def test_export_with_a_dynamic_batch(framework, fmt, tmp_path, request):
    fw = request.getfixturevalue("lrd_" + framework)
    model = ZOO[framework].vit_tiny(**dict(SMALL, depth=1), seed=0)
    out = fw.export(model, str(tmp_path / f"vit.{fmt.lower()}"), input_shape=(2, 3, 32, 32), format=fmt,
                    dynamic_batch=True)
    assert out["max_abs_diff"] < 1e-4 and 1 in out["checked_batches"] and 3 in out["checked_batches"]


def test_dropout_acts_in_training_only(fw):
    build = ZOO[fw.FRAMEWORK].vit_tiny
    plain, dropping = build(**SMALL, seed=1), build(**SMALL, seed=1, drop_rate=0.25)
    assert list(fw.state_to_numpy(plain)) == list(fw.state_to_numpy(dropping))
    np.testing.assert_array_equal(forward(fw, dropping, X), forward(fw, plain, X))
    if fw.FRAMEWORK == "torch":
        dropping.train()
        with torch.no_grad():
            train_out = dropping(torch.from_numpy(X)).numpy()
    else:
        dropping.set_train(True)
        train_out = dropping(ms.Tensor(X)).asnumpy()
    assert np.abs(train_out - forward(fw, plain, X)).max() > 1e-3


def test_mindspore_onnx_export_swaps_in_the_portable_cells(lrd_mindspore, tmp_path):
    """MindSpore 2.10 has no ONNX form of Erf and writes its fused LayerNorm as an invalid ONNX graph;
    export swaps every ``onnx_portable()`` form in for ONNX only, and the file matches the live network."""
    net = msvit.vit_tiny(**dict(SMALL, depth=1), seed=0)
    cells = {n: c for n, c in net.cells_and_names() if callable(getattr(c, "onnx_portable", None))}
    assert sorted(cells) == ["blocks.0.mlp.act", "blocks.0.norm1", "blocks.0.norm2", "norm"]
    before = lrd_mindspore.state_to_numpy(net)
    out = lrd_mindspore.export(net, str(tmp_path / "vit.onnx"), input_shape=(2, 3, 32, 32), format="ONNX",
                               dynamic_batch=True)
    assert out["max_abs_diff"] < 1e-5 and out["checked_batches"] == [1, 2, 3]
    after = lrd_mindspore.state_to_numpy(net)            # the original cells are back, weights untouched
    assert {n for n, c in net.cells_and_names() if callable(getattr(c, "onnx_portable", None))} == set(cells)
    assert list(after) == list(before) and all(np.array_equal(after[k], before[k]) for k in before)
    mindir = lrd_mindspore.export(net, str(tmp_path / "vit.mindir"), input_shape=(2, 3, 32, 32))
    assert mindir["format"] == "MINDIR" and mindir["max_abs_diff"] < 1e-5
