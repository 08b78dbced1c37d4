"""``lrd plan``: choose layers and ranks (fixed modes or the hardware-aware ``auto``); write plan.json."""
from __future__ import annotations

import sys
import time

from lrd_core.config import PlanConfig
from lrd_core.conv_methods import CONV_METHODS
from lrd_core.errors import ConfigError
from lrd_core.frameworks import adapter
from lrd_core.io import check_output_file
from lrd_core.modes import MODES
from lrd_core.options import add_option

from .aware import add_aware_args, aware_options, aware_runtime, draw, plot_path, report
from .common import add_model_args, build_model, device_type, input_shape, model_kwargs


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


def parse_role(text: str):
    """``--role NAME_OR_REGEX=stage:4,is_downsample:true`` -> (pattern, {field: value})."""
    if "=" not in text:
        raise ConfigError(f"--role takes NAME=field:value[,field:value...], e.g. 'blocks\\.7\\..*=stage:4', got {text!r}")
    name, spec = text.split("=", 1)
    fields = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition(":")
        if not sep:
            raise ConfigError(f"--role {text!r}: each item is field:value (stage:3, is_downsample:true, "
                              f"is_stem:false, is_final_dense:true)")
        low = value.strip().lower()
        fields[key.strip()] = (None if low in ("none", "null") else True if low == "true" else
                               False if low == "false" else int(low) if low.lstrip("-").isdigit() else value.strip())
    return name, fields


def add(sub) -> None:
    p = sub.add_parser("plan", help="choose layers and ranks; write plan.json and print the summary")
    add_model_args(p)
    add_option(p, "mode", choices=list(MODES))
    for name in ("include", "exclude", "blocks", "rank_selection", "ratio", "final_dense_ratio", "vbmf_weakening",
                 "energy", "rank_multiple", "rank_rounding"):
        add_option(p, name)
    p.add_argument("--rank", action="append", default=[], metavar="NAME=R[,R_IN]",
                   help="manual rank of a layer (name or regex); repeatable. An exact layer name wins over "
                        "patterns; two patterns matching one layer are an error. With --rank-selection manual only "
                        "these layers are decomposed; with pr/vbmf/energy they are decomposed too, at these ranks "
                        "(the plan notes the override) and the others by the selection")
    p.add_argument("--role", action="append", default=[], metavar="NAME=FIELD:VALUE[,...]",
                   help="override a layer's inferred role (name or regex), e.g. 'layer4\\..*=stage:4' or "
                        "'proj=is_downsample:true'; fields: stage, is_downsample, is_stem, is_final_dense; repeatable")
    add_method_args(p)
    add_auto_args(p)
    add_aware_args(p)
    p.add_argument("--out", required=True, help="where to write plan.json")
    p.set_defaults(func=run)


def add_method_args(p) -> None:
    """Factorization of KxK convs: Tucker-2, CP-3 / CP-4 (+ CPD-EPC) or basis convolutions."""
    g = p.add_argument_group("factorization of KxK convs (dense and 1x1 convs use SVD)")
    g.add_argument("--conv-method", default="tucker2", choices=CONV_METHODS,
                   help="tucker2 (default), cp3 (1x1, depthwise KxK, 1x1), cp4 (1x1, Kx1, 1xK, 1x1) or basis "
                        "(C' basis filters + output mix)")
    g.add_argument("--epc", action="store_true", help="CP: CPD-EPC, the least sensitive CPD at the same error")
    g.add_argument("--cp-iters", type=int, default=100, help="CP: maximum ALS iterations (default 100)")
    g.add_argument("--epc-iters", type=int, default=50, help="CP: maximum EPC sweeps (default 50)")
    g.add_argument("--basis-init", default="svd", choices=("svd", "qr"),
                   help="basis: truncated SVD or column-pivoted QR (keeps C' real filters)")
    g.add_argument("--basis-alpha", type=float, default=None,
                   help="basis: C' = alpha*Cout basis filters, with --basis-beta (alpha/beta variant)")
    g.add_argument("--basis-beta", type=float, default=None,
                   help="basis: beta*Cout outputs are sums of two basis outputs, the rest copies")
    g.add_argument("--basis-speedup", action="store_true",
                   help="basis: require alpha + beta < 1 (fewer training operations, seed 003)")
    g.add_argument("--auto-conv-methods", default="", metavar="M1,M2",
                   help="--mode auto: further KxK chains timed beside --conv-method, e.g. cp3,cp4")


def add_auto_args(p) -> None:
    """Options of the hardware-aware mode (``--mode auto``)."""
    g = p.add_argument_group("hardware-aware search (--mode auto)")
    g.add_argument("--device", default="CPU", type=device_type, help="where layers are timed: CPU, GPU or Ascend")
    g.add_argument("--budget", type=float, default=None,
                   help="model-level reduction to reach, e.g. 2 = half the parameters (or MACs)")
    g.add_argument("--budget-kind", default="params", choices=("params", "macs", "latency"),
                   help="latency (the layers' timed speed-up): --rank-selection error and --mode pareto only")
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


def plan_options(args) -> dict:
    options = dict(mode=args.mode, include=args.include, exclude=args.exclude, blocks=args.blocks,
                   rank_selection=args.rank_selection,
                   ratio=args.ratio, final_dense_ratio=args.final_dense_ratio, vbmf_weakening=args.vbmf_weakening,
                   energy=args.energy, rank_multiple=args.rank_multiple, rank_rounding=args.rank_rounding,
                   ranks=dict(_parse_rank(r) for r in args.rank), roles=dict(parse_role(r) for r in args.role),
                   conv_method=args.conv_method, epc=args.epc, cp_iters=args.cp_iters, epc_iters=args.epc_iters,
                   basis_init=args.basis_init, basis_alpha=args.basis_alpha, basis_beta=args.basis_beta,
                   basis_speedup=args.basis_speedup,
                   auto_conv_methods=[m for m in args.auto_conv_methods.split(",") if m])
    if args.mode == "auto":
        options.update(device=args.device, budget=args.budget, budget_kind=args.budget_kind,
                       objective=args.objective, profile_batch=args.profile_batch, margin=args.margin,
                       tie_tolerance=args.tie_tolerance, search_radius=args.search_radius, verify=args.verify)
    options.update(aware_options(args))
    return options


def auto_runtime(args) -> dict:
    """Keywords of ``plan(mode='auto')`` that are not plan options (cache, threads, progress)."""
    return dict(threads=args.threads, cache_path=args.latency_cache, use_cache=args.use_cache,
                log=lambda line: print(line, file=sys.stderr, flush=True))


def run(args) -> int:
    options = plan_options(args)
    PlanConfig.from_kwargs(**options)            # validate before building a model
    check_output_file(args.out, [args.checkpoint])
    if plot_path(args):
        check_output_file(plot_path(args), [args.checkpoint, args.out])
    fw = adapter(args.framework)
    model = build_model(fw, args)
    shape = input_shape(args, fw=fw)
    t0 = time.perf_counter()
    timed = args.mode in ("auto", "pareto") or options.get("budget_kind") == "latency"
    extra = dict(auto_runtime(args) if timed else {}, **aware_runtime(args, fw, model, shape))
    plan = fw.plan(model, input_shape=shape, **options, **extra)
    plan.meta.update({"model": args.model, "model_kwargs": model_kwargs(args, fw=fw), "checkpoint": args.checkpoint})
    print(plan.summary())
    report(args, plan)
    auto = plan.meta.get("auto")
    if auto:
        prof = auto.get("profile", {})
        print(f"auto on {auto['device']}: {prof.get('measured_variants', 0)} layer variants timed, "
              f"{prof.get('hits', 0)} cache hits ({prof.get('path')}); ranks searched in steps of "
              f"{auto.get('rank_step')}")
        if auto.get("budget") is not None and not auto.get("budget_met"):
            print(f"warning: budget {auto['budget']}x ({auto['budget_kind']}) not reached without slowing the "
                  f"network; reached {auto['chosen']['reduction']:.2f}x", file=sys.stderr)
    plan.to_json(args.out, inputs=[args.checkpoint])
    print(f"plan for {args.model} written to {args.out} ({time.perf_counter() - t0:.1f}s)")
    draw(args, plan)
    return 0
