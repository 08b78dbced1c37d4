"""Accuracy-aware options of ``lrd plan`` (and ``lrd compress``): calibration data, data-aware
factorization, ``--rank-selection error`` and ``--mode pareto`` (parsing, data and printing only)."""
from __future__ import annotations

import os

from lrd_core.errors import ConfigError


def add_aware_args(p, plan: bool = True) -> None:
    """``--calibration`` and friends; with ``plan`` also the planning options."""
    g = p.add_argument_group("accuracy-aware compression (calibration data)")
    g.add_argument("--calibration", default=None, metavar="DATA",
                   help="calibration data: digits, a dataset folder (class folders or CIFAR-10 batches), an image "
                        "folder or a .npz file with x (N, C, H, W) float32")
    g.add_argument("--calibration-batches", type=int, default=None, metavar="N", help="use the first N batches")
    g.add_argument("--calibration-batch-size", type=int, default=32, metavar="B", help="images per batch (32)")
    g.add_argument("--no-calibration-cache", dest="calibration_cache", action="store_false",
                   help="recompute the statistics (default: cached under $LRD_CACHE_DIR or ~/.cache/lrd)")
    if not plan:
        return
    g.add_argument("--data-aware", action="store_true",
                   help="SVD / Tucker-2 factors that minimise each layer's output error on the calibration data")
    g.add_argument("--sequential", action="store_true",
                   help="take each layer's statistics with the earlier layers already compressed (slower)")
    g.add_argument("--floor", type=float, default=None, help="covariance floor relative to the largest eigenvalue "
                   "(default 1e-3)")
    g.add_argument("--calibration-memory", type=float, default=2048.0, metavar="MIB",
                   help="cap of the kept statistics; larger patch statistics fall back to channel ones (2048)")
    g.add_argument("--evaluation", default=None, metavar="DATA",
                   help="--mode pareto: labelled data whose accuracy is the metric (default: the held-out part of "
                        "--calibration; without labels: agreement with the original model's top-1)")
    g.add_argument("--evaluation-samples", type=int, default=512, metavar="N", help="--mode pareto: samples (512)")
    g.add_argument("--pareto-ratios", default="", metavar="R1,R2",
                   help="--mode pareto: per-layer PR ratios of the candidate ranks (default: --ratio x 0.75,1,1.5)")
    g.add_argument("--pareto-max-error", type=float, default=0.6,
                   help="--mode pareto: candidates with a larger relative output error are not evaluated (0.6)")
    g.add_argument("--plot", default=None, metavar="PNG",
                   help="--mode pareto: where to draw the front (default: next to --out, .png)")


def aware_options(args) -> dict:
    """PlanConfig fields of the accuracy-aware options (budget and timing fields when they need them)."""
    out = dict(data_aware=args.data_aware, sequential=args.sequential, floor=args.floor,
               calibration_batches=args.calibration_batches, calibration_memory=args.calibration_memory,
               pareto_max_error=args.pareto_max_error,
               pareto_ratios=[float(v) for v in args.pareto_ratios.split(",") if v.strip()] if args.pareto_ratios
               else [])
    if args.rank_selection == "error" or args.mode == "pareto":
        out.update(budget=args.budget, budget_kind=args.budget_kind, device=args.device, objective=args.objective,
                   profile_batch=args.profile_batch)
    return out


def aware_runtime(args, fw, model, shape) -> dict:
    """``calibration`` / ``evaluate`` / ``progress`` / ``calibration_cache`` keywords of ``fw.plan``."""
    from lrd_data import sources

    out = {}
    if args.calibration:
        source, _ = sources.open_source(args.calibration, shape[-1], "calibration")
        out["calibration"] = list(sources.batches(source, args.calibration_batch_size, args.calibration_batches))
        out["calibration_cache"] = args.calibration_cache
    if args.mode == "pareto":
        out["evaluate"] = evaluation(args, fw, model, shape)
    return out


def evaluation(args, fw, model, shape):
    """The metric of ``--mode pareto``: accuracy on labelled evaluation data, else top-1 agreement with
    the original model on the evaluation inputs."""
    from lrd_data import sources

    if not (args.evaluation or args.calibration):
        raise ConfigError("--mode pareto evaluates candidate layers: give --evaluation DATA (or --calibration)")
    spec = args.evaluation or args.calibration
    source, labelled = sources.open_source(spec, shape[-1], "evaluation")
    x, y = sources.take(source, args.evaluation_samples)
    if labelled:
        return lambda m: float((fw.predict(m, x).argmax(1) == y).mean())
    reference = fw.predict(model, x).argmax(1)
    return lambda m: float((fw.predict(m, x).argmax(1) == reference).mean())


def plot_path(args):
    """Where ``--mode pareto`` draws its front (None for other modes)."""
    if args.mode != "pareto":
        return None
    return args.plot or os.path.splitext(args.out)[0] + ".png"


def report(args, plan) -> None:
    """Print the calibration / allocation / Pareto lines of a plan."""
    cal = plan.meta.get("calibration")
    if cal:
        print(f"calibration: {cal['samples']} samples in {cal['batches']} batches, statistics {cal.get('kinds')}, "
              f"cache {cal.get('cache')} ({cal.get('seconds', 0):.1f}s)")
    alloc = plan.meta.get("error_allocation")
    if alloc:
        print(f"error allocation: {alloc['budget_kind']} budget {alloc['budget']}x reached {alloc['reached']:.2f}x, "
              f"summed {alloc['error_kind']} error {alloc['error']:.4f} over {alloc['candidates']} layers")
    par = plan.meta.get("pareto")
    if par:
        est, meas = par["estimated"], par["measured"]
        ratios = meas.get("latency_ratios") or {}
        print(f"pareto: {par['evaluations']} evaluations, baseline {par['baseline']:.4f}; chosen: drop "
              f"{est['drop']:.4f} estimated / {meas['drop']:.4f} measured, latency {est['latency_ratio']:.3f}x "
              f"estimated / " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()) + " measured, "
              f"{par['size']} {1 / est['size_ratio']:.2f}x fewer")


def draw(args, plan) -> None:
    """Draw the Pareto front of a ``--mode pareto`` plan (after the plan is written)."""
    par, path = plan.meta.get("pareto"), plot_path(args)
    if par and path:
        from lrd_bench.pareto_plot import plot_front
        plot_front(par, path, title=f"{args.model}: Pareto front ({par['budget_kind']} budget {par['budget']}x)")
        print(f"front drawn to {path}")
