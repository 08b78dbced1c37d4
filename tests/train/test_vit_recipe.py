"""The ViT recipe in both trainers: AdamW with torch's semantics (NumPy reference, torch = MindSpore),
no weight decay on norms/biases/tokens, exact resume of the AdamW state, the recipe keys and configs,
and a tiny end-to-end ViT run (train -> decompose -> fine-tune with sequential freezing -> export ->
the other framework rebuilds it)."""
import json
import os

import numpy as np
import pytest

from lrd_core.errors import ConfigError
from lrd_core.freezing import FreezeConfig
from lrd_core.optim import OptimizerConfig, decays, optimizer_config
from lrd_data import Loader
from lrd_recipe import config as recipe, pipeline
from lrd_recipe.demo import VIT_DEMO, config as demo_config, parity

from .helpers import graph_mode, params, tiny_data, train_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(image_size=8, patch_size=4, num_classes=4, depth=1, dim=32, num_heads=2, mlp_dim=64)
ADAMW = {"name": "adamw", "beta1": 0.8, "beta2": 0.95, "eps": 1e-6}


def tiny_vit(fw, compressed=True, seed=0):
    model = fw.models.create_model("vit_tiny", **TINY, seed=seed)
    if not compressed:
        return model, None
    plan = fw.plan(model, input_shape=(1, 3, 8, 8), mode="all", exclude=["patch_embed.proj"], ratio=1.5)
    fw.compress(model, plan)
    return model, plan


def numpy_adamw(p, grads, lr, wd, b1, b2, eps):
    """torch.optim.AdamW, written out: decoupled decay, bias-corrected moments, eps outside the sqrt."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, (g, a) in enumerate(zip(grads, lr), 1):
        p = p * (1 - a * wd)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - a / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return p


def test_adamw_against_numpy_in_both_frameworks(fw):
    """One decayed weight and one undecayed bias, three steps with per-step LRs; the bias skips step 2
    (a frozen phase) and keeps its own bias-correction count."""
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    gw = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]
    gb = [rng.standard_normal(3).astype(np.float32) for _ in range(3)]
    lr, wd = np.array([0.1, 0.05, 0.02], np.float32), 0.3
    cfg = optimizer_config(ADAMW, weight_decay=wd)
    if fw.FRAMEWORK == "torch":
        import torch
        from lrd_torch.optim import build_optimizer
        layer = torch.nn.Linear(4, 3)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w0))
            layer.bias.copy_(torch.from_numpy(b0))
        opt = build_optimizer(layer, cfg)
        for k in range(3):
            for g in opt.param_groups:
                g["lr"] = float(lr[k])
            layer.weight.grad = torch.from_numpy(gw[k])
            layer.bias.grad = None if k == 1 else torch.from_numpy(gb[k])
            opt.step()
        w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    else:
        import mindspore as ms
        from mindspore import Parameter, ParameterTuple
        from lrd_mindspore.optim import build_optimizer
        wp, bp = Parameter(ms.Tensor(w0), name="fc.weight"), Parameter(ms.Tensor(b0), name="fc.bias")
        full = build_optimizer([("fc.weight", wp), ("fc.bias", bp)], cfg, ms.Tensor(lr))
        only_w = build_optimizer([("fc.weight", wp)], cfg, ms.Tensor(lr))     # the phase with the bias frozen
        for attr in ("moments1", "moments2", "steps"):
            setattr(only_w, attr, ParameterTuple([getattr(full, attr)[0]]))
        only_w.global_step = full.global_step
        full((ms.Tensor(gw[0]), ms.Tensor(gb[0])))
        only_w((ms.Tensor(gw[1]),))
        full((ms.Tensor(gw[2]), ms.Tensor(gb[2])))
        w, b = wp.asnumpy(), bp.asnumpy()
    ref_w = numpy_adamw(w0.astype(np.float64), gw, lr, wd, 0.8, 0.95, 1e-6)
    ref_b = numpy_adamw(b0.astype(np.float64), [gb[0], gb[2]], [lr[0], lr[2]], 0.0, 0.8, 0.95, 1e-6)
    np.testing.assert_allclose(w, ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, ref_b, rtol=1e-5, atol=1e-6)
    assert np.abs(ref_w - w0).max() > 0.05 and np.abs(ref_b - b0).max() > 0.05


def test_weight_decay_only_on_conv_and_dense_weights(fw):
    model, _ = tiny_vit(fw, compressed=True)
    arrays = fw.state_to_numpy(model)
    want = {k for k, v in arrays.items() if k.endswith(".weight") and v.ndim in (2, 4)}
    assert "cls_token" in arrays and "pos_embed" in arrays and "blocks.0.attn.q.0.weight" in want
    cfg = OptimizerConfig("adamw", weight_decay=0.05)
    if fw.FRAMEWORK == "torch":
        from lrd_torch.optim import build_optimizer
        opt = build_optimizer(model, cfg)
        name_of = {id(p): n for n, p in model.named_parameters()}
        got = {name_of[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
        assert {g["weight_decay"] for g in opt.param_groups} == {0.05, 0.0}
    else:
        from lrd_mindspore.optim import build_optimizer
        named = list(fw.BACKEND.parameters(model).items())
        opt = build_optimizer(named, cfg, 0.001)
        name_of = {id(p): n for n, p in named}
        got = {name_of[id(p)] for p, flag in zip(opt.parameters, opt.decay_flags) if flag}
    assert got == want
    assert not decays("cls_token", (1, 1, 192)) and not decays("pos_embed", (1, 65, 192))
    assert not decays("blocks.0.norm1.weight", (192,)) and decays("blocks.0.attn.q.weight", (192, 192))


def test_adamw_trainers_agree(lrd_torch, lrd_mindspore):
    """Same weights, data, LRs, label smoothing and sequential freezing: the same weights after AdamW steps."""
    out = {}
    for fw in (lrd_torch, lrd_mindspore):
        model, plan = tiny_vit(fw)
        start = params(fw, model)
        with graph_mode(fw):
            res = train_module(fw).fit(model, Loader(tiny_data(48), 16, seed=4), np.array([2e-3, 4e-3, 1e-3]), 1,
                                       plan=plan, freeze=FreezeConfig("sequential", unit="step"), weight_decay=0.05,
                                       label_smoothing=0.1, log=None, optimizer=ADAMW)
        out[fw.FRAMEWORK] = (start, params(fw, model), res["history"][0]["loss"])
    (s, pt, loss_t), (_, pm, loss_m) = out["torch"], out["mindspore"]
    assert set(pm) == set(pt)
    assert max(np.abs(pt[k] - s[k]).max() for k in pt) > 1e-3            # the steps moved the weights
    for k in pm:
        np.testing.assert_allclose(pm[k], pt[k], rtol=1e-4, atol=2e-5, err_msg=k)
    assert loss_m == pytest.approx(loss_t, rel=1e-5)


class Killed(Exception):
    pass


def _fit(fw, out, on_step=()):
    model, plan = tiny_vit(fw)
    res = train_module(fw).fit(model, Loader(tiny_data(32), 16, seed=3), np.linspace(3e-3, 1e-4, 6), 3, plan=plan,
                               freeze=FreezeConfig("sequential", every=3, unit="step"), out_dir=out, keep=3, log=None,
                               on_step=list(on_step), weight_decay=0.05, optimizer=ADAMW)
    return model, res


def test_adamw_state_resumes_exactly(fw, tmp_path):
    ref_model, _ = _fit(fw, str(tmp_path / "ref"))

    def kill(state):
        if state.global_step == 5:
            raise Killed()
    with pytest.raises(Killed):
        _fit(fw, str(tmp_path / "run"), [kill])
    model, res = _fit(fw, str(tmp_path / "run"))
    assert res["resumed_from"] == 4 and res["global_step"] == 6         # mid-phase: steps 3-5 freeze one position
    a, b = params(fw, ref_model), params(fw, model)
    tol = 0 if fw.FRAMEWORK == "torch" else 1e-6
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=tol, err_msg=k)


def test_recipe_keys_configs_and_model_options():
    digits = recipe.read_yaml(os.path.join(ROOT, "modelzoo/vit/config/vit_tiny_digits_cpu.yaml"))
    assert {k: digits[k] for k in VIT_DEMO} == VIT_DEMO
    for name in ("vit_b_16_imagenet2012_train", "vit_b_16_imagenet2012_lrd"):
        cfg = recipe.namespace(**recipe.read_yaml(os.path.join(ROOT, f"modelzoo/vit/config/{name}.yaml")))
        assert (cfg.net_name, cfg.optimizer, cfg.lr_decay_mode, cfg.label_smooth_factor) == ("vit_b_16", "adamw",
                                                                                            "cosine", 0.1)
    cfg = demo_config("torch", "/tmp/x", model="vit_tiny", ratio=2.5)
    assert (cfg.net_name, cfg.patch_size, cfg.compression_ratio, cfg.optimizer) == ("vit_tiny", 8, 2.5, "adamw")
    from lrd_recipe.runtime import model_kwargs
    from lrd_torch.models import MODELS
    assert model_kwargs(cfg, MODELS) == {"num_classes": 10, "image_size": 32, "patch_size": 8, "depth": 4,
                                         "drop_rate": 0.0}
    assert model_kwargs(recipe.namespace(), MODELS) == {"num_classes": 10, "stem": "cifar", "width": 64}
    for bad, key in (({"optimizer": "adam"}, "optimizer"), ({"beta2": 1.0}, "beta2"), ({"eps": 0.0}, "eps"),
                     ({"compression_blocks": "lst:2"}, "compression_blocks")):
        with pytest.raises(ConfigError, match=key):
            recipe.namespace(**bad)
    with pytest.raises(ConfigError, match="--width applies to the ResNet demo"):
        demo_config("torch", "/tmp/x", model="vit_tiny", width=8)


def test_tiny_vit_pipeline_export_and_parity(fw, tmp_path):
    cfg = recipe.namespace(**{**VIT_DEMO, "framework": fw.FRAMEWORK, "output_path": str(tmp_path), "depth": 1,
                              "train_limit": 128, "eval_limit": 64, "epoch_size": 1, "finetune_epoch_size": 2,
                              "eval_batch_size": 64, "compression_ratio": 2.0, "compression_blocks": "last:1",
                              "file_format": "MINDIR" if fw.FRAMEWORK == "mindspore" else "ONNX",
                              "progress": "false", "resume": False})
    lines = []
    summary = pipeline.run(cfg, log=lines.append, extra=parity)
    assert summary["model"] == "vit_tiny" and summary["layers_decomposed"] == 6       # 4 attention + 2 MLP
    assert summary["params_compressed"] < summary["params_original"]
    assert summary["export"]["max_abs_diff"] < 1e-4
    assert summary["parity_max_abs_diff_decomposed"] < 1e-4 and summary["parity_max_abs_diff_finetuned"] < 1e-4
    plan = json.loads((tmp_path / "finetuned" / "plan.json").read_text())
    assert plan["meta"]["model_kwargs"]["patch_size"] == 8 and plan["config"]["blocks"] == "last:1"
    text = "\n".join(lines)
    assert "adamw" in text and "sequential freezing, phase 1" in text
