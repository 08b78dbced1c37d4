"""``lrd eval``: top-1 accuracy of an original (+ checkpoint) or compressed model on a labelled dataset."""
from __future__ import annotations

import json
import os
import time

from lrd_core.errors import ConfigError, MismatchError

from .common import add_model_args, adapter, build_model, model_kwargs


def add(sub) -> None:
    p = sub.add_parser("eval", help="top-1 accuracy of an original or compressed model on a dataset (digits, a "
                                    "class-folder tree, CIFAR-10 batches or an .npz with x and y)")
    add_model_args(p)
    p.add_argument("--compressed", default=None, metavar="DIR",
                   help="a compressed-model directory from `lrd compress` (instead of --checkpoint)")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="digits (the embedded test split), a folder of class folders, a CIFAR-10 binary folder "
                        "(test_batch.bin) or an .npz with x (N, C, H, W) float32 and integer labels y")
    p.add_argument("--batch", type=int, default=256, help="evaluation batch size")
    p.add_argument("--limit", type=int, default=None, help="evaluate only N samples (a fixed shuffled subset)")
    p.add_argument("--seed", type=int, default=0, help="order of the --limit subset and of the digits split")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    p.set_defaults(func=run)


def _image_size(args, plan_meta: dict) -> int:
    if args.input_size is not None:
        return args.input_size
    shape = plan_meta.get("input_shape") or [1, 3, 224, 224]
    return int(shape[-1])


def load_model(fw, args):
    """The model to evaluate and its plan meta: built (+ checkpoint), or loaded from ``--compressed``."""
    if not args.compressed:
        return build_model(fw, args), {}
    from lrd_core.layout import PLAN_FILE
    from lrd_core.plan import Plan

    if args.checkpoint:
        raise ConfigError("--checkpoint goes with the original model; a --compressed directory holds its own weights")
    path = os.path.join(args.compressed, PLAN_FILE)
    if not os.path.isfile(path):
        raise MismatchError(f"{args.compressed} is not a compressed-model directory (no {PLAN_FILE}); make one with "
                            f"`lrd compress`")
    meta = Plan.from_json(path).meta
    kwargs = dict(meta.get("model_kwargs", {}), **model_kwargs(args, fw=fw))
    return fw.load(args.compressed, fw.models.create_model(args.model, **kwargs)), meta


def run(args) -> int:
    from lrd_data import ArrayData
    from lrd_data.sources import open_source, take

    for key, low in (("batch", 1), ("limit", 1)):
        value = getattr(args, key)
        if value is not None and value < low:
            raise ConfigError(f"--{key} {value} must be at least {low}")
    if args.out:
        from lrd_core.io import check_output_file
        check_output_file(args.out, [args.checkpoint, args.compressed, args.data])
    fw = adapter(args.framework)
    model, meta = load_model(fw, args)
    size = _image_size(args, meta)
    fw.inspect(model, input_shape=(1, 3, size, size))   # ConfigError when the input is too small for the net
    source, labelled = open_source(args.data, size, split="evaluation", seed=args.seed)
    if not labelled:
        raise ConfigError(f"--data {args.data!r} has no labels; accuracy needs labelled data (class folders, "
                          f"CIFAR-10 batches, digits or an .npz with y)")
    if args.limit is not None and args.limit < len(source):
        x, y = take(source, args.limit, seed=args.seed)
        source = ArrayData(x, y, int(max(y)) + 1)
    t0 = time.perf_counter()
    accuracy = fw.evaluate(model, source, batch_size=args.batch)
    n = len(source)
    what = f"compressed {args.compressed}" if args.compressed else (args.checkpoint or "untrained weights")
    print(f"{args.model} ({args.framework}, {what}): top-1 accuracy {accuracy:.4f} on {n} samples of {args.data} "
          f"at {size}x{size} ({time.perf_counter() - t0:.1f}s)")
    if args.out:
        from lrd_core.io import atomic_file
        with atomic_file(args.out, suffix=".json", inputs=[args.checkpoint, args.compressed]) as tmp:
            with open(tmp, "w") as fh:
                json.dump({"model": args.model, "framework": args.framework, "checkpoint": args.checkpoint,
                           "compressed": args.compressed, "data": args.data, "samples": n, "input_size": size,
                           "accuracy": float(accuracy)}, fh, indent=1)
    return 0
