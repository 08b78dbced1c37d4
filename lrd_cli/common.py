"""Shared CLI plumbing: model options, model building (+ checkpoint), input sizes, progress lines."""
from __future__ import annotations

import argparse
from typing import Optional

from lrd_core.api.state import check_finite
from lrd_core.errors import ConfigError
from lrd_core.frameworks import FRAMEWORKS, adapter  # noqa: F401  (re-exported for the commands)
from lrd_core.model_options import select as select_model_options, takes as model_takes

#: model options of the command line (each passed only to builders that take it)
MODEL_KEYS = ("stem", "num_classes", "width", "patch_size", "depth")


def device_type(text: str) -> str:
    """argparse type of ``--device``: CPU, GPU (CUDA) or Ascend, any case."""
    names = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend"}
    if text.lower() not in names:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use CPU, GPU or Ascend")
    return names[text.lower()]


def add_model_args(p, checkpoint: bool = True) -> None:
    p.add_argument("--framework", default="mindspore", choices=FRAMEWORKS,
                   help="mindspore (default) or torch")
    add_architecture_args(p)
    p.add_argument("--input-size", type=int, default=None,
                   help="input height = width (default 224); a ViT is built for this image_size")
    if checkpoint:
        p.add_argument("--checkpoint", default=None,
                       help="trained weights: .ckpt (MindSpore), .pt/.pth (torch) or .npz; converted as needed")


def add_architecture_args(p) -> None:
    """``--model`` and the builder options of the registered networks (stem, classes, width, ViT patch/depth)."""
    p.add_argument("--model", required=True,
                   help="resnet18, resnet34, resnet50, resnet101, resnet152, vit_tiny, vit_small, vit_b_16")
    p.add_argument("--stem", default=None, choices=("imagenet", "cifar"),
                   help="imagenet (7x7 + max-pool, default) or cifar (3x3, no pool)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default 1000)")
    p.add_argument("--width", type=int, default=None, help="base channel width (default 64)")
    p.add_argument("--patch-size", type=int, default=None, help="ViT patch side (default 16; 4 for 32x32 images)")
    p.add_argument("--depth", type=int, default=None, help="ViT: number of transformer blocks (default 12)")


def model_kwargs(args, defaults: Optional[dict] = None, fw=None) -> dict:
    """Builder keywords from the command line over ``defaults``; with the adapter ``fw`` only the options
    the model takes (``--input-size`` becomes a ViT's ``image_size``; e.g. ``--stem`` for a ViT is an error)."""
    kw = dict(defaults or {})
    given = {key: getattr(args, key, None) for key in MODEL_KEYS}
    if fw is None:
        kw.update({k: v for k, v in given.items() if v is not None})
        return kw
    kw.update(select_model_options(fw.models.MODELS, args.model, given,
                                   {"image_size": getattr(args, "input_size", None)}, source="--{key}"))
    return kw


def build_model(fw, args, defaults: Optional[dict] = None):
    """The named model (+ checkpoint) in the chosen framework; NaN/Inf weights are refused."""
    model = fw.models.create_model(args.model, **model_kwargs(args, defaults, fw))
    path = getattr(args, "checkpoint", None)
    if path:
        fw.load_checkpoint(model, path)
        check_finite(fw.state_to_numpy(model), path)
    return model


def input_shape(args, default: int = 224, fw=None) -> tuple:
    """``(1, 3, S, S)`` of ``--input-size`` (``S`` >= 1). Whether the network can take ``S`` is checked on the
    model by ``inspect`` (:func:`lrd_core.validate.check_input_size`); a ViT also checks its own size when built."""
    size = getattr(args, "input_size", None)
    size = default if size is None else size
    if fw is not None and model_takes(fw.models.MODELS, args.model, "image_size") and size >= 1:
        return (1, 3, size, size)
    if size < 1:
        raise ConfigError(f"--input-size {size} is not a size; give a positive number of pixels, e.g. 224")
    return (1, 3, size, size)       # whether the network can take it is checked on the model (inspect)


def progress_printer(prefix: str = "  decomposing"):
    """A ``progress(k, n, name, seconds)`` callback: a tqdm bar (counters, ETA) when stderr is a terminal,
    quiet otherwise (the total time is printed by the command)."""
    from lrd_core.progress import bar, enabled

    state = {}

    def show(k: int, n: int, name: str, seconds: float) -> None:
        if not enabled():
            return
        if "bar" not in state:
            state["bar"] = bar(n, prefix.strip(), unit="layer")
        state["bar"].set_postfix_str(f"[{k}/{n}] {name}", refresh=False)
        state["bar"].update(1)
        if k >= n:
            state.pop("bar").close()
    return show
