"""``lrd inspect | plan | compress | convert``."""
from __future__ import annotations

import argparse
import os
import sys
import time

from lrd_core.config import PlanConfig
from lrd_core.errors import ConfigError, MismatchError
from lrd_core.modes import FIXED_MODES, MODES
from lrd_core.plan import Plan

from .common import adapter, add_model_args, build_model, input_shape, progress_printer


# ---------------------------------------------------------------------------------------- inspect
def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="list the conv/dense layers, their roles and the modes that pick them")
    add_model_args(p, checkpoint=False)
    p.set_defaults(func=run_inspect)


def run_inspect(args) -> int:
    fw = adapter(args.framework)
    model = build_model(fw, args)
    layers = fw.inspect(model, input_shape=input_shape(args))
    modes = list(FIXED_MODES)
    header = ["layer", "kind", "in->out", "kernel/stride", "input", "block", "role"] + modes
    rows = []
    for l in layers:
        role = "stem" if l.role.is_stem else "downsample" if l.role.is_downsample else \
            "final dense" if l.role.is_final_dense else ""
        if l.groups != 1:
            role = (role + " grouped").strip()
        rows.append([l.name, l.kind, f"{l.in_channels}->{l.out_channels}",
                     f"{l.kernel[0]}x{l.kernel[1]}/{l.stride[0]}" if l.kind == "conv2d" else "-",
                     f"{l.input_hw[0]}x{l.input_hw[1]}" if l.kind == "conv2d" else "-",
                     "-" if l.role.block is None else str(l.role.block), role]
                    + ["x" if MODES[m](l) else "." for m in modes])
    counts = ["", "", "", "", "", "", "selected:"] + [str(sum(MODES[m](l) for l in layers)) for m in modes]
    widths = [max(len(r[c]) for r in [header] + rows + [counts]) for c in range(len(header))]
    for r in [header] + rows + [counts]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


# ---------------------------------------------------------------------------------------- plan
def _parse_rank(text: str):
    if "=" not in text:
        raise ConfigError(f"--rank takes NAME=R or NAME=R_OUT,R_IN, got {text!r}")
    name, value = text.split("=", 1)
    parts = value.split(",")
    try:
        ranks = [int(v) for v in parts]
    except ValueError:
        raise ConfigError(f"--rank {text!r}: ranks must be integers") from None
    return name, (ranks[0] if len(ranks) == 1 else tuple(ranks))


def add_plan(sub) -> None:
    p = sub.add_parser("plan", help="choose layers and ranks; write plan.json and print the summary")
    add_model_args(p)
    p.add_argument("--mode", default="vanilla", choices=list(MODES),
                   help="compression mode (default vanilla); auto times layers on --device and keeps faster ones")
    p.add_argument("--include", action="append", default=[], metavar="RE", help="also decompose these layers")
    p.add_argument("--exclude", action="append", default=[], metavar="RE", help="never decompose these layers")
    p.add_argument("--rank-selection", default="pr", choices=("pr", "vbmf", "energy", "manual"))
    p.add_argument("--ratio", type=float, default=2.0, help="per-layer parameter reduction for PR (> 1)")
    p.add_argument("--final-dense-ratio", type=float, default=None, help="milder ratio for the classifier")
    p.add_argument("--vbmf-weakening", type=float, default=0.8)
    p.add_argument("--energy", type=float, default=0.95)
    p.add_argument("--rank-multiple", type=int, default=1, help="rank quantization step q (e.g. 32)")
    p.add_argument("--rank-rounding", default="nearest", choices=("nearest", "up", "down"))
    p.add_argument("--rank", action="append", default=[], metavar="NAME=R[,R_IN]",
                   help="manual rank of a layer (name or regex); repeatable")
    add_auto_args(p)
    p.add_argument("--out", required=True, help="where to write plan.json")
    p.set_defaults(func=run_plan)


def add_auto_args(p) -> None:
    """Options of the hardware-aware mode (``--mode auto``)."""
    g = p.add_argument_group("hardware-aware search (--mode auto)")
    g.add_argument("--device", default="CPU", type=_device, help="where layers are timed: CPU, GPU or Ascend")
    g.add_argument("--budget", type=float, default=None,
                   help="model-level reduction to reach, e.g. 2 = half the parameters (or MACs)")
    g.add_argument("--budget-kind", default="params", choices=("params", "macs"))
    g.add_argument("--objective", default="both", choices=("both", "infer", "train"),
                   help="phases that must get faster (default both: inference bs 1 and B, training step)")
    g.add_argument("--profile-batch", type=int, default=8, help="batch size B of the timed layers")
    g.add_argument("--margin", type=float, default=0.05, help="a layer must be this much faster on average over the phases, and no more "
                   "than this slower in any (default 0.05)")
    g.add_argument("--tie-tolerance", type=float, default=0.03,
                   help="ranks this close in time count as equal; the larger is kept")
    g.add_argument("--search-radius", type=int, default=1, help="ranks tried each side of the estimate (steps of q)")
    g.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip timing the whole network at the end")
    g.add_argument("--threads", type=int, default=None, help="CPU threads while timing (recorded in the plan)")
    g.add_argument("--latency-cache", default=None, metavar="PATH",
                   help="latency cache file (default $LRD_CACHE_DIR/latency.json or ~/.cache/lrd/latency.json)")
    g.add_argument("--no-cache", dest="use_cache", action="store_false", help="time everything afresh")


def _device(text: str) -> str:
    """argparse type of ``--device``."""
    names = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend"}
    if text.lower() not in names:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use CPU, GPU or Ascend")
    return names[text.lower()]


def plan_options(args) -> dict:
    options = dict(mode=args.mode, include=args.include, exclude=args.exclude, rank_selection=args.rank_selection,
                   ratio=args.ratio, final_dense_ratio=args.final_dense_ratio, vbmf_weakening=args.vbmf_weakening,
                   energy=args.energy, rank_multiple=args.rank_multiple, rank_rounding=args.rank_rounding,
                   ranks=dict(_parse_rank(r) for r in args.rank))
    if args.mode == "auto":
        options.update(device=args.device, budget=args.budget, budget_kind=args.budget_kind,
                       objective=args.objective, profile_batch=args.profile_batch, margin=args.margin,
                       tie_tolerance=args.tie_tolerance, search_radius=args.search_radius, verify=args.verify)
    return options


def auto_runtime(args) -> dict:
    """Keywords of ``plan(mode='auto')`` that are not plan options (cache, threads, progress)."""
    return dict(threads=args.threads, cache_path=args.latency_cache, use_cache=args.use_cache,
                log=lambda line: print(line, file=sys.stderr, flush=True))


def run_plan(args) -> int:
    options = plan_options(args)
    PlanConfig.from_kwargs(**options)            # validate before building a model
    fw = adapter(args.framework)
    model = build_model(fw, args)
    shape = input_shape(args)
    t0 = time.perf_counter()
    extra = auto_runtime(args) if args.mode == "auto" else {}
    plan = fw.plan(model, input_shape=shape, **options, **extra)
    plan.meta.update({"model": args.model, "model_kwargs": _model_meta(args), "checkpoint": args.checkpoint})
    print(plan.summary())
    auto = plan.meta.get("auto")
    if auto:
        prof = auto.get("profile", {})
        print(f"auto on {auto['device']}: {prof.get('measured_variants', 0)} layer variants timed, "
              f"{prof.get('hits', 0)} cache hits ({prof.get('path')})")
        if auto.get("budget") is not None and not auto.get("budget_met"):
            print(f"warning: budget {auto['budget']}x ({auto['budget_kind']}) not reached without slowing the "
                  f"network; reached {auto['chosen']['reduction']:.2f}x", file=sys.stderr)
    plan.to_json(args.out)
    print(f"plan for {args.model} written to {args.out} ({time.perf_counter() - t0:.1f}s)")
    return 0


def _model_meta(args) -> dict:
    return {k: getattr(args, k) for k in ("stem", "num_classes", "width") if getattr(args, k, None) is not None}


# ---------------------------------------------------------------------------------------- compress
def add_compress(sub) -> None:
    p = sub.add_parser("compress", help="decompose a model by a plan; write DIR/plan.json + weights")
    add_model_args(p)
    p.add_argument("--plan", required=True, help="plan.json from `lrd plan`")
    p.add_argument("--out", required=True, help="output directory (written all at once)")
    p.set_defaults(func=run_compress)


def load_plan_file(path: str) -> Plan:
    if not os.path.isfile(path):
        raise MismatchError(f"plan file {path} does not exist; make one with `lrd plan`")
    return Plan.from_json(path)


def run_compress(args) -> int:
    plan = load_plan_file(args.plan)
    fw = adapter(args.framework)
    defaults = plan.meta.get("model_kwargs", {})
    model = build_model(fw, args, defaults)
    if plan.meta.get("checkpoint") and not args.checkpoint:
        print(f"warning: the plan was made from {plan.meta['checkpoint']} but no --checkpoint was given: "
              f"decomposing freshly initialised weights", file=sys.stderr)
    t0 = time.perf_counter()
    fw.compress(model, plan, progress=progress_printer())
    seconds = time.perf_counter() - t0
    fw.save(model, plan, args.out)
    print(plan.summary())
    print(f"decomposed {len(plan.decomposed())} layers in {seconds:.1f}s; wrote {args.out}/plan.json and weights")
    return 0


# ---------------------------------------------------------------------------------------- convert
def add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint between torch (.pt) and MindSpore (.ckpt)")
    p.add_argument("--src", required=True, help=".pt/.pth, .ckpt or .npz file, or a compressed-model directory")
    p.add_argument("--out", required=True, help="target file (.pt, .ckpt or .npz) or directory")
    p.add_argument("--to", choices=("torch", "mindspore"), default=None,
                   help="target framework when converting a directory")
    p.set_defaults(func=run_convert)


def _write_arrays(arrays, path: str) -> None:
    if path.endswith(".ckpt"):
        adapter("mindspore").write_checkpoint(arrays, path)
    elif path.endswith((".pt", ".pth")):
        adapter("torch").write_checkpoint(arrays, path)
    elif path.endswith(".npz"):
        import numpy as np
        from lrd_core.io import atomic_file
        with atomic_file(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    else:
        raise ConfigError(f"--out {path}: use a .pt, .pth, .ckpt or .npz file name")


def _read_arrays(path: str):
    fw = "mindspore" if path.endswith(".ckpt") else "torch"
    return adapter(fw).read_checkpoint(path)


def run_convert(args) -> int:
    if os.path.isdir(args.src):
        from lrd_core.io import atomic_dir
        if args.to is None:
            raise ConfigError("converting a directory needs --to torch or --to mindspore")
        src = next((os.path.join(args.src, n) for n in ("model.ckpt", "model.pt") if
                    os.path.isfile(os.path.join(args.src, n))), None)
        if src is None or not os.path.isfile(os.path.join(args.src, "plan.json")):
            raise MismatchError(f"{args.src} is not a compressed-model directory (plan.json + model.ckpt/.pt)")
        arrays = _read_arrays(src)
        plan = Plan.from_json(os.path.join(args.src, "plan.json"))
        with atomic_dir(args.out) as tmp:
            plan.to_json(os.path.join(tmp, "plan.json"))
            _write_arrays(arrays, os.path.join(tmp, "model.ckpt" if args.to == "mindspore" else "model.pt"))
    else:
        arrays = _read_arrays(args.src)
        _write_arrays(arrays, args.out)
    print(f"converted {len(arrays)} arrays: {args.src} -> {args.out}")
    return 0
