"""``lrd reduce``: a reduced-order network (RON or ASNet) from calibration data; write DIR/plan.json + weights."""
from __future__ import annotations

import os
import time

import numpy as np

from lrd_core.api.state import check_finite
from lrd_core.errors import CalibrationError, ConfigError
from lrd_core.formats import read_npz
from lrd_core.frameworks import adapter
from lrd_core.io import check_output_dir
from lrd_core.reduce.report import summary

from .common import add_model_args, build_model, input_shape, model_kwargs


def _rank(text: str):
    name, sep, value = text.rpartition("=")
    try:
        r = int(value)
    except ValueError:
        raise ConfigError(f"--rank {text!r}: give R or LAYER=R with an integer R") from None
    return (name, r) if sep else ("", r)


def add(sub) -> None:
    p = sub.add_parser("reduce", help="reduced-order network (RON: kept channels by maxvol; ASNet: active subspace "
                                      "+ polynomial head) from calibration data; write DIR/plan.json + weights")
    add_model_args(p)
    p.add_argument("--method", required=True, choices=("ron", "asnet"),
                   help="ron (reduced-order network, maxvol) or asnet (active subspace + PCE head)")
    p.add_argument("--calibration", default="digits", metavar="SRC",
                   help="'digits' (the embedded data set, its training split; default) or a .npz with x (N, C, H, W) "
                        "float32 and optionally y (labels)")
    p.add_argument("--samples", type=int, default=512, help="calibration samples used (default 512)")
    ron = p.add_argument_group("RON")
    ron.add_argument("--layers", action="append", default=None, metavar="NAME",
                     help="producer layer of a stream to reduce (repeat; default: every stream but the output)")
    pick = ron.add_mutually_exclusive_group()
    pick.add_argument("--energy", type=float, default=None, help="activation energy kept per stream (default 0.95)")
    pick.add_argument("--rank", action="append", default=None, metavar="[LAYER=]R",
                      help="kept rank for every stream, or per producer layer (repeat)")
    pick.add_argument("--flop-budget", type=float, default=None,
                      help="fraction of the conv/dense MACs kept, e.g. 0.5")
    ron.add_argument("--tol", type=float, default=1.05, help="maxvol tolerance (default 1.05)")
    ron.add_argument("--max-rows", type=int, default=None, help="cap on kept channels per stream")
    asn = p.add_argument_group("ASNet")
    asn.add_argument("--cut", default=None, help="layer to cut before (the pre-model is everything before it)")
    asn.add_argument("--dim", type=int, default=10, help="active subspace dimension r (default 10)")
    asn.add_argument("--degree", type=int, default=2, help="Hermite PCE degree (default 2)")
    asn.add_argument("--ell", type=int, default=None, help="frequent-directions sketch rows")
    asn.add_argument("--ridge", type=float, default=0.0, help="ridge weight of the PCE fit")
    asn.add_argument("--gradients", default="auto", choices=("auto", "outputs", "loss"),
                     help="gradients of every output, or of the loss (needs labels); auto: loss when labels exist")
    ft = p.add_argument_group("fine-tune (knowledge distillation from the original)")
    ft.add_argument("--finetune-epochs", type=int, default=0,
                    help="epochs of fine-tuning on the labelled calibration source (digits: its whole training "
                         "split; .npz: x and y), default 0")
    ft.add_argument("--finetune-lr", type=float, default=0.005,
                    help="peak LR (linear warm-up and decay; default 0.005: 0.02 undid RON/ASNet on the digits "
                         "model, benchmarks/README.md)")
    ft.add_argument("--distill-alpha", type=float, default=0.5, help="weight of the distillation term")
    ft.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step")
    p.add_argument("--out", required=True, help="output folder (written all at once; a folder holding files lrd did "
                                                "not write is refused)")
    p.add_argument("--force", action="store_true",
                   help="write into an existing folder beside other files (only lrd's own files are replaced)")
    p.set_defaults(func=run)


def calibration(src: str, shape, samples: int):
    """``(ArrayData-like batches, labels?)`` of ``--calibration``: the digits training split or a .npz."""
    if samples < 1:
        raise ConfigError("--samples must be >= 1")
    if src == "digits":
        from lrd_data import load_digits
        train, _ = load_digits(size=shape[-1])
        return train.take(samples)
    if not src.endswith(".npz") or not os.path.isfile(src):
        raise ConfigError(f"--calibration {src!r}: use 'digits' or an existing .npz file with an array x")
    f = read_npz(src)   # MismatchError for a truncated, empty, random or pickled file
    if "x" not in f:
        raise CalibrationError(f"{src} holds no array 'x' (calibration inputs (N, C, H, W) float32)")
    x = np.asarray(f["x"])[:samples]
    y = np.asarray(f["y"])[:samples] if "y" in f else None
    return [(x[k:k + 64], None if y is None else y[k:k + 64]) for k in range(0, len(x), 64)]


def finetune(fw, args, reduced, original, shape) -> dict:
    """Fine-tune ``reduced`` with distillation from ``original``; returns what was done."""
    import importlib

    from lrd_core.schedule import epoch_schedule
    from lrd_data import ArrayData, load_digits

    if args.calibration == "digits":
        data, _ = load_digits(size=shape[-1])
    else:
        f = read_npz(args.calibration)
        if "y" not in f:
            raise ConfigError(f"--finetune-epochs needs labels: {args.calibration} holds no array 'y'")
        data = ArrayData(np.asarray(f["x"], np.float32), np.asarray(f["y"]), int(np.max(f["y"])) + 1)
    steps = max(len(data) // 64, 1)
    lr = epoch_schedule("linear", args.finetune_epochs, steps, args.finetune_lr, warmup_epochs=0.25)
    distill = {"alpha": args.distill_alpha, "temperature": args.temperature}
    train = importlib.import_module(f"lrd_{args.framework}.train")
    t0 = time.perf_counter()
    train.fit(reduced, data, lr, args.finetune_epochs, batch_size=min(64, len(data)), log=None, seed=args.seed,
              teacher=original, distill=distill)
    return {"epochs": args.finetune_epochs, "lr_max": args.finetune_lr, "distill": distill,
            "seconds": round(time.perf_counter() - t0, 1)}


def options(args) -> dict:
    if args.method == "ron":
        out = {"layers": args.layers, "tol": args.tol, "max_rows": args.max_rows, "seed": args.seed}
        if args.rank:
            pairs = [_rank(t) for t in args.rank]
            if len(pairs) == 1 and not pairs[0][0]:
                out["ranks"] = pairs[0][1]
            elif any(not name for name, _ in pairs):
                raise ConfigError("--rank: give one R for all streams, or LAYER=R for each")
            else:
                out["ranks"] = dict(pairs)
        elif args.flop_budget is not None:
            out["flop_budget"] = args.flop_budget
        elif args.energy is not None:
            out["energy"] = args.energy
        return out
    return {"cut": args.cut, "dim": args.dim, "degree": args.degree, "ell": args.ell, "ridge": args.ridge,
            "gradients": args.gradients, "seed": args.seed}


def run(args) -> int:
    inputs = [p for p in (args.checkpoint, args.calibration) if p and os.path.exists(p)]
    check_output_dir(args.out, inputs, args.force)
    fw = adapter(args.framework)
    model = build_model(fw, args)
    shape = input_shape(args, default=32 if args.calibration == "digits" else 224, fw=fw)
    data = calibration(args.calibration, shape, args.samples)
    t0 = time.perf_counter()
    reduced, plan = fw.reduce(model, method=args.method, calibration=data, input_shape=shape, **options(args))
    seconds = time.perf_counter() - t0
    if args.finetune_epochs > 0:
        plan.meta["finetune"] = finetune(fw, args, reduced, model, shape)
        check_finite(fw.state_to_numpy(reduced), f"the model after {args.finetune_epochs} fine-tuning epochs "
                                                 f"(lower --finetune-lr)")
    plan.meta.update({"model": args.model, "model_kwargs": model_kwargs(args, fw=fw), "checkpoint": args.checkpoint})
    fw.save(reduced, plan, args.out, force=args.force, inputs=inputs)
    print(summary(plan))
    print(f"reduced {args.model} by {args.method.upper()} in {seconds:.1f}s; wrote {args.out}/plan.json and weights")
    return 0
