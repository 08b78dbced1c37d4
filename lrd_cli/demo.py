"""``lrd demo``: the training pipeline on the embedded digits data, a few minutes on 2 CPU cores.

Train a CIFAR-stem ResNet-18 (width 32) for 2 epochs -> decompose (mode3, PR 2x, final dense 1.3x,
ranks x16) -> accuracy right after decomposition and after BatchNorm re-calibration -> fine-tune
3 epochs with sequential freezing (one factor position per layer per epoch) -> evaluate -> export
MINDIR (MindSpore) or ONNX (torch) -> check that the other framework builds the same network from
the same plan and weights. The settings are ``modelzoo/resnet/config/resnet18_digits_cpu.yaml``.
"""
from __future__ import annotations

import os

import numpy as np

from . import recipe

OTHER = {"mindspore": "torch", "torch": "mindspore"}

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


def add(sub) -> None:
    p = sub.add_parser("demo", help="train, decompose, fine-tune (sequential freezing), evaluate and export a small "
                                    "ResNet-18 on the embedded digits data (a few minutes on 2 CPU cores)")
    p.add_argument("--framework", default="mindspore", choices=("mindspore", "torch"),
                   help="mindspore (default, GRAPH mode) or torch")
    p.add_argument("--out", default="runs/demo", help="run directory (summary.json, curves.png, plans, checkpoints)")
    p.add_argument("--epochs", type=int, default=DEMO["epoch_size"], help="training epochs of the original net")
    p.add_argument("--finetune-epochs", type=int, default=DEMO["finetune_epoch_size"], help="fine-tuning epochs")
    p.add_argument("--width", type=int, default=DEMO["width"], help="ResNet-18 base width (64 = standard)")
    p.add_argument("--mode", default=DEMO["compression_mode"])
    p.add_argument("--ratio", type=float, default=DEMO["compression_ratio"])
    p.add_argument("--rank-multiple", type=int, default=DEMO["rank_quantization"])
    p.add_argument("--freeze", default=DEMO["freeze"], choices=("none", "sequential", "regular"))
    p.add_argument("--stages", type=int, default=1, help="compression stages (multi-stage when > 1)")
    p.add_argument("--seed", type=int, default=DEMO["seed"])
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out instead of starting over")
    p.add_argument("--no-parity", dest="parity", action="store_false",
                   help="skip the check against the other framework")
    p.set_defaults(func=run)


def config(args):
    """The recipe config of a demo invocation."""
    return recipe.namespace(**{**DEMO, "framework": args.framework, "output_path": args.out,
                               "epoch_size": args.epochs, "finetune_epoch_size": args.finetune_epochs,
                               "width": args.width, "compression_mode": args.mode, "compression_ratio": args.ratio,
                               "rank_quantization": args.rank_multiple, "freeze": args.freeze, "stages": args.stages,
                               "seed": args.seed, "resume": args.resume,
                               "file_format": "MINDIR" if args.framework == "mindspore" else "ONNX"})


def run(args) -> int:
    from . import pipeline

    cfg = config(args)            # without --resume every training run starts over (old checkpoints removed)
    pipeline.run(cfg, extra=_parity if args.parity else None)
    return 0


def _parity(rt, model, plan, eval_src) -> dict:
    """The same plans in the other framework on converted weights must give the same outputs."""
    from .common import adapter

    other_name = OTHER[rt.name]
    print(f"parity: rebuilding both networks in {other_name} from the same weights and plans", flush=True)
    if other_name == "mindspore":
        import lrd_mindspore  # noqa: F401
        import mindspore as ms
        ms.set_context(mode=ms.GRAPH_MODE)
    other = adapter(other_name)
    other_train = __import__(f"lrd_{other_name}.train", fromlist=["predict"])
    out = rt.cfg.output_path
    probe = eval_src.x[:64]
    kw = rt.model_kwargs()
    # decomposed (before fine-tuning): original weights + stage-1 plan in both frameworks
    ours = rt.fw.load(os.path.join(out, "compressed"), rt.fw.models.resnet18(**kw))
    twin = other.models.resnet18(**kw)
    other.load_checkpoint(twin, os.path.join(out, "original", "model.ckpt" if rt.name == "mindspore" else "model.pt"))
    other.compress(twin, rt.fw.load_plan(os.path.join(out, "compressed")))
    d1 = float(np.abs(rt.train.predict(ours, probe) - other_train.predict(twin, probe)).max())
    # fine-tuned: the saved compressed directory reloaded in the other framework
    final = other.load(os.path.dirname(pipeline_plan_path(out, plan)), other.models.resnet18(**kw))
    d2 = float(np.abs(rt.train.predict(model, probe) - other_train.predict(final, probe)).max())
    print(f"  max |{rt.name} - {other_name}| on 64 test images: {d1:.1e} (decomposed), {d2:.1e} (fine-tuned)")
    return {"parity_framework": other_name, "parity_max_abs_diff_decomposed": d1, "parity_max_abs_diff_finetuned": d2}


def pipeline_plan_path(out: str, plan) -> str:
    stage = plan.meta.get("stage", 1)
    return os.path.join(out, "finetuned" if stage == 1 else f"stage{stage}", "plan.json")
