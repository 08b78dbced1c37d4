"""The demo recipe: the training pipeline on the embedded digits data, a few minutes on 2 CPU cores.

Train a CIFAR-stem ResNet-18 (width 32) for 2 epochs -> decompose (mode3, PR 2x, final dense 1.3x,
ranks x16) -> accuracy right after decomposition and after BatchNorm re-calibration, beside the same
ranks decomposed data-aware (16 calibration batches of the training data) -> fine-tune
3 epochs with sequential freezing (one factor position per layer per epoch) -> evaluate -> export
MINDIR (MindSpore) or ONNX (torch) -> check that the other framework builds the same network from
the same plan and weights. The settings are ``modelzoo/resnet/config/resnet18_digits_cpu.yaml``.

``model="vit_tiny"``: the ViT recipe on a 4-block ViT-Tiny (8x8 patches): AdamW, warm-up + cosine, label
smoothing, 15 epochs -> every attention/MLP layer at PR 3x (ranks x16) -> 3 epochs with sequential
freezing (``modelzoo/vit/config/vit_tiny_digits_cpu.yaml``).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from lrd_core import layout as L
from lrd_core.errors import ConfigError
from lrd_core.frameworks import OTHER, adapter
from lrd_core.registry import model_spec

from . import config as recipe

# Keep in sync with modelzoo/resnet/config/resnet18_digits_cpu.yaml (a test compares them).
DEMO = {
    "dataset": "digits", "image_size": 32, "net_name": "resnet18", "stem": "cifar", "width": 32, "class_num": 10,
    "batch_size": 64, "epoch_size": 2, "lr_decay_mode": "linear", "lr_init": 0.0, "lr_max": 0.05, "lr_end": 0.0,
    "warmup_epochs": 0.5, "momentum": 0.9, "weight_decay": 1e-4, "label_smooth_factor": 0.0,
    "compression_mode": "mode3", "rank_selection": "pr", "compression_ratio": 2.0, "final_dense_ratio": 1.3,
    "rank_quantization": 16, "bn_recalibration_batches": 10, "compare_data_aware": True, "calibration_batches": 16,
    "finetune_epoch_size": 3, "finetune_lr_decay_mode": "linear", "finetune_lr_max": 0.01,
    "finetune_warmup_epochs": 0.25, "freeze": "sequential", "freeze_every": 1, "freeze_unit": "epoch",
    "file_format": "MINDIR", "file_name": "resnet18_digits_lrd", "seed": 0,
}


# Keep in sync with modelzoo/vit/config/vit_tiny_digits_cpu.yaml (a test compares them): the ViT recipe
# (AdamW, warm-up + cosine, label smoothing) on a 4-block ViT-Tiny with 8x8 patches (16 tokens + class token).
VIT_DEMO = {
    "dataset": "digits", "image_size": 32, "net_name": "vit_tiny", "patch_size": 8, "depth": 4, "drop_rate": 0.0,
    "class_num": 10, "batch_size": 64, "epoch_size": 15, "optimizer": "adamw", "beta1": 0.9, "beta2": 0.999,
    "eps": 1e-8, "weight_decay": 0.05, "lr_decay_mode": "cosine", "lr_init": 0.0, "lr_max": 0.0015, "lr_end": 1e-5,
    "warmup_epochs": 1.0, "label_smooth_factor": 0.1,
    "compression_mode": "all", "exclude": ["patch_embed\\.proj"], "rank_selection": "pr", "compression_ratio": 3.0,
    "final_dense_ratio": 0.0, "rank_quantization": 16, "bn_recalibration_batches": 0,
    "finetune_epoch_size": 3, "finetune_lr_decay_mode": "cosine", "finetune_lr_max": 0.0002, "finetune_lr_end": 1e-6,
    "finetune_warmup_epochs": 0.0, "freeze": "sequential", "freeze_every": 1, "freeze_unit": "epoch",
    "file_format": "MINDIR", "file_name": "vit_tiny_digits_lrd", "seed": 0,
}
#: the demo settings of each model ``lrd demo --model`` takes
DEMOS = {"resnet18": DEMO, "vit_tiny": VIT_DEMO}


def config(framework: str, out: str, epochs: Optional[int] = None, finetune_epochs: Optional[int] = None,
           width: Optional[int] = None, mode: Optional[str] = None, ratio: Optional[float] = None,
           rank_multiple: Optional[int] = None, freeze: Optional[str] = None, stages: int = 1,
           seed: Optional[int] = None, resume: bool = False, model: str = "resnet18"):
    """The recipe config of a demo run of ``model`` (``resnet18`` or ``vit_tiny``); None keeps its demo setting."""
    if model not in DEMOS:
        raise ConfigError(f"lrd demo has no recipe for {model!r}; choose one of {', '.join(DEMOS)}")
    base = DEMOS[model]
    given = {"epoch_size": epochs, "finetune_epoch_size": finetune_epochs, "width": width, "compression_mode": mode,
             "compression_ratio": ratio, "rank_quantization": rank_multiple, "freeze": freeze, "seed": seed}
    if width is not None and "width" not in base:
        raise ConfigError(f"--width applies to the ResNet demo, not to {model}")
    return recipe.namespace(**{**base, **{k: v for k, v in given.items() if v is not None}, "framework": framework,
                               "output_path": out, "stages": stages, "resume": resume,
                               "file_format": "MINDIR" if framework == "mindspore" else "ONNX"})


def parity(rt, model, plan, eval_src) -> dict:
    """The same plans in the other framework on converted weights must give the same outputs."""
    other_name = OTHER[rt.name]
    print(f"parity: rebuilding both networks in {other_name} from the same weights and plans", flush=True)
    if other_name == "mindspore":
        import lrd_mindspore  # noqa: F401
        import mindspore as ms
        ms.set_context(mode=ms.GRAPH_MODE)
    other = adapter(other_name)
    out = rt.cfg.output_path
    probe = eval_src.x[:64]
    name, kw = model_spec(model) or (rt.cfg.net_name, rt.model_kwargs())    # how the run built its network
    # decomposed (before fine-tuning): original weights + stage-1 plan in both frameworks
    ours = rt.fw.load(os.path.join(out, L.RUN_COMPRESSED), rt.fw.models.create_model(name, **kw))
    twin = other.models.create_model(name, **kw)
    other.load_checkpoint(twin, os.path.join(out, L.RUN_ORIGINAL, L.WEIGHT_FILES[rt.name]))
    other.compress(twin, rt.fw.load_plan(os.path.join(out, L.RUN_COMPRESSED)))
    d1 = float(np.abs(rt.fw.predict(ours, probe) - other.predict(twin, probe)).max())
    # fine-tuned: the saved compressed directory reloaded in the other framework
    final = other.load(os.path.join(out, L.finetuned_dir(plan.meta.get("stage", 1))),
                       other.models.create_model(name, **kw))
    d2 = float(np.abs(rt.fw.predict(model, probe) - other.predict(final, probe)).max())
    print(f"  max |{rt.name} - {other_name}| on 64 test images: {d1:.1e} (decomposed), {d2:.1e} (fine-tuned)")
    return {"parity_framework": other_name, "parity_max_abs_diff_decomposed": d1, "parity_max_abs_diff_finetuned": d2}
