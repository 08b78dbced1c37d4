"""The demo recipe: the training pipeline on the embedded digits data, a few minutes on 2 CPU cores.

Train a CIFAR-stem ResNet-18 (width 32) for 2 epochs -> decompose (mode3, PR 2x, final dense 1.3x,
ranks x16) -> accuracy right after decomposition and after BatchNorm re-calibration -> fine-tune
3 epochs with sequential freezing (one factor position per layer per epoch) -> evaluate -> export
MINDIR (MindSpore) or ONNX (torch) -> check that the other framework builds the same network from
the same plan and weights. The settings are ``modelzoo/resnet/config/resnet18_digits_cpu.yaml``.
"""
from __future__ import annotations

import os

import numpy as np

from lrd_core import layout as L
from lrd_core.frameworks import OTHER, adapter

from . import config as recipe

# Keep in sync with modelzoo/resnet/config/resnet18_digits_cpu.yaml (a test compares them).
DEMO = {
    "dataset": "digits", "image_size": 32, "net_name": "resnet18", "stem": "cifar", "width": 32, "class_num": 10,
    "batch_size": 64, "epoch_size": 2, "lr_decay_mode": "linear", "lr_init": 0.0, "lr_max": 0.05, "lr_end": 0.0,
    "warmup_epochs": 0.5, "momentum": 0.9, "weight_decay": 1e-4, "label_smooth_factor": 0.0,
    "compression_mode": "mode3", "rank_selection": "pr", "compression_ratio": 2.0, "final_dense_ratio": 1.3,
    "rank_quantization": 16, "bn_recalibration_batches": 10,
    "finetune_epoch_size": 3, "finetune_lr_decay_mode": "linear", "finetune_lr_max": 0.01,
    "finetune_warmup_epochs": 0.25, "freeze": "sequential", "freeze_every": 1, "freeze_unit": "epoch",
    "file_format": "MINDIR", "file_name": "resnet18_digits_lrd", "seed": 0,
}


def config(framework: str, out: str, epochs: int = DEMO["epoch_size"], finetune_epochs: int = DEMO["finetune_epoch_size"],
           width: int = DEMO["width"], mode: str = DEMO["compression_mode"], ratio: float = DEMO["compression_ratio"],
           rank_multiple: int = DEMO["rank_quantization"], freeze: str = DEMO["freeze"], stages: int = 1,
           seed: int = DEMO["seed"], resume: bool = False):
    """The recipe config of a demo run."""
    return recipe.namespace(**{**DEMO, "framework": framework, "output_path": out, "epoch_size": epochs,
                               "finetune_epoch_size": finetune_epochs, "width": width, "compression_mode": mode,
                               "compression_ratio": ratio, "rank_quantization": rank_multiple, "freeze": freeze,
                               "stages": stages, "seed": seed, "resume": resume,
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
    kw = rt.model_kwargs()
    # decomposed (before fine-tuning): original weights + stage-1 plan in both frameworks
    ours = rt.fw.load(os.path.join(out, L.RUN_COMPRESSED), rt.fw.models.resnet18(**kw))
    twin = other.models.resnet18(**kw)
    other.load_checkpoint(twin, os.path.join(out, L.RUN_ORIGINAL, L.WEIGHT_FILES[rt.name]))
    other.compress(twin, rt.fw.load_plan(os.path.join(out, L.RUN_COMPRESSED)))
    d1 = float(np.abs(rt.fw.predict(ours, probe) - other.predict(twin, probe)).max())
    # fine-tuned: the saved compressed directory reloaded in the other framework
    final = other.load(os.path.join(out, L.finetuned_dir(plan.meta.get("stage", 1))), other.models.resnet18(**kw))
    d2 = float(np.abs(rt.fw.predict(model, probe) - other.predict(final, probe)).max())
    print(f"  max |{rt.name} - {other_name}| on 64 test images: {d1:.1e} (decomposed), {d2:.1e} (fine-tuned)")
    return {"parity_framework": other_name, "parity_max_abs_diff_decomposed": d1, "parity_max_abs_diff_finetuned": d2}
