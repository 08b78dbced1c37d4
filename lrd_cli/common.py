"""Shared CLI plumbing: model options, model building (+ checkpoint), input sizes, progress lines."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from lrd_core.api.state import check_finite
from lrd_core.errors import ConfigError
from lrd_core.frameworks import FRAMEWORKS, adapter  # noqa: F401  (re-exported for the commands)


def device_type(text: str) -> str:
    """argparse type of ``--device``: CPU, GPU (CUDA) or Ascend, any case."""
    names = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend"}
    if text.lower() not in names:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use CPU, GPU or Ascend")
    return names[text.lower()]


def add_model_args(p, checkpoint: bool = True) -> None:
    p.add_argument("--framework", default="mindspore", choices=FRAMEWORKS,
                   help="mindspore (default) or torch")
    p.add_argument("--model", required=True, help="resnet18, resnet34, resnet50, resnet101, resnet152")
    p.add_argument("--stem", default=None, choices=("imagenet", "cifar"),
                   help="imagenet (7x7 + max-pool, default) or cifar (3x3, no pool)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default 1000)")
    p.add_argument("--width", type=int, default=None, help="base channel width (default 64)")
    p.add_argument("--input-size", type=int, default=None, help="input height = width (default 224)")
    if checkpoint:
        p.add_argument("--checkpoint", default=None,
                       help="trained weights: .ckpt (MindSpore), .pt/.pth (torch) or .npz; converted as needed")


def model_kwargs(args, defaults: Optional[dict] = None) -> dict:
    kw = dict(defaults or {})
    for key in ("stem", "num_classes", "width"):
        value = getattr(args, key, None)
        if value is not None:
            kw[key] = value
    return kw


def build_model(fw, args, defaults: Optional[dict] = None):
    """The named model (+ checkpoint) in the chosen framework; NaN/Inf weights are refused."""
    model = fw.models.create_model(args.model, **model_kwargs(args, defaults))
    path = getattr(args, "checkpoint", None)
    if path:
        fw.load_checkpoint(model, path)
        check_finite(fw.state_to_numpy(model), path)
    return model


def input_shape(args, default: int = 224) -> tuple:
    size = getattr(args, "input_size", None)
    size = default if size is None else size
    if size < 32:
        raise ConfigError(f"--input-size {size} is too small; use at least 32 (ResNets downsample by 32)")
    return (1, 3, size, size)


def progress_printer(prefix: str = "  decomposing"):
    def show(k: int, n: int, name: str, seconds: float) -> None:
        print(f"{prefix} [{k:>3}/{n}] {name:<28} {seconds * 1000:7.0f} ms", file=sys.stderr, flush=True)
    return show
