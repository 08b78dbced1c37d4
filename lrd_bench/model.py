"""``lrd bench model``: one network, original vs compression modes vs ``auto``, measured side by side.

Every phase (inference at batch 1 and B, training step at B) times the original beside one variant at a
time (:mod:`lrd_bench.timing`: the two interleaved round by round, the variant's compiled cells released
before the next one is built, a progress bar ticking per round), so each ratio compares runs made under
the same machine load and at most two networks are compiled at once. Peak memory is measured per
variant in a fresh process. The ``auto`` plan is searched on the same device first (cold cache),
then searched again to time the cached path.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List

from lrd_core import freezing
from lrd_core.cost import layer_macs
from lrd_core.errors import ConfigError
from lrd_core.model_options import select as select_model_options
from lrd_core.search import pick_best

from lrd_core.frameworks import adapter

from .timing import rounds, time_phase


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _kwargs(args, registry=None) -> dict:
    """Builder keywords of ``--model`` from the options given (a ViT takes ``--input-size`` as its
    ``image_size``, ``--patch-size``, ``--depth``; a ResNet ``--stem``, ``--width``)."""
    given = {key: getattr(args, key, None) for key in ("stem", "num_classes", "width", "patch_size", "depth")}
    if registry is None:
        return {k: v for k, v in given.items() if v is not None}
    return select_model_options(registry, args.model, given, {"image_size": getattr(args, "input_size", None)},
                                source="--{key}")


def _plans(fw, model, args, modes: List[str], shape) -> Dict:
    """``{mode: (plan or None, info)}``; auto is searched twice (cold, then from the cache)."""
    out = {"original": (None, {})}
    common = dict(ratio=args.ratio, final_dense_ratio=args.final_dense_ratio, rank_multiple=args.rank_multiple,
                  exclude=list(getattr(args, "exclude", None) or []), blocks=getattr(args, "blocks", None))
    for mode in modes:
        if mode == "original":
            continue
        if mode != "auto":
            out[mode] = (fw.plan(model, input_shape=shape, mode=mode, **common), {})
            continue
        cache = args.latency_cache
        if args.cold:
            cache = os.path.join(tempfile.mkdtemp(prefix="lrd-bench-cache-"), "latency.json")
        options = dict(mode="auto", device=args.device, budget=args.budget, objective=args.objective,
                       profile_batch=args.batch, search_radius=args.search_radius, **common)
        t0 = time.perf_counter()
        plan = fw.plan(model, input_shape=shape, cache_path=cache, threads=args.threads, log=_log, **options)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = fw.plan(model, input_shape=shape, cache_path=cache, threads=args.threads, **options)
        cached = time.perf_counter() - t0
        auto = plan.meta["auto"]
        info = {"search_seconds": round(cold, 2), "search_seconds_cached": round(cached, 2),
                "cache_hits_cached": again.meta["auto"]["profile"]["hits"],
                "cache_misses_cached": again.meta["auto"]["profile"]["misses"],
                "layer_variants_timed": auto["profile"]["measured_variants"], "cold": bool(args.cold),
                "cache_hits_first": auto["profile"]["hits"], "budget": auto["budget"],
                "budget_met": auto.get("budget_met"), "verify": auto.get("verify"),
                "cache": auto["profile"]["path"]}
        out[mode] = (plan, info)
    return out


def _phases(args) -> List[tuple]:
    phases = [("infer", args.batch)]
    if args.batch != 1:
        phases.append(("infer", 1))
    if args.train:
        phases.append(("train", args.batch))
    return phases


def run(args, modes: List[str]) -> dict:
    fw = adapter(args.framework)
    lat = adapter(args.framework).latency
    lat.check_device(args.device)
    kwargs = _kwargs(args, fw.models.MODELS)
    model = fw.models.create_model(args.model, seed=0, **kwargs)
    if getattr(args, "checkpoint", None):
        fw.load_checkpoint(model, args.checkpoint)
    frozen = [m for m in (getattr(args, "sequential", None) or []) if m not in modes or m == "original"]
    if frozen:
        raise ConfigError(f"--sequential {','.join(frozen)}: name compression modes that are also in --modes")
    if getattr(args, "sequential", None) and not args.train:
        raise ConfigError("--sequential times training steps: drop --no-train")
    size = args.input_size
    plans = _plans(fw, model, args, modes, (1, 3, size, size))
    nets = [model if plans[m][0] is None else lat.with_plan(model, plans[m][0]) for m in modes]
    classes = kwargs.get("num_classes", 1000)
    rows = []
    for mode, net in zip(modes, nets):
        plan, info = plans[mode]
        totals = plan.totals if plan is not None else None
        rows.append({"mode": mode, "params": lat.count_params(net),
                     "macs": int(totals["macs_after"]) if totals else None,
                     "decomposed": len(plan.decomposed()) if plan is not None else 0, **info})
    base_macs = sum(layer_macs(l) for l in fw.inspect(model, input_shape=(1, 3, size, size)))
    rows[0]["macs"] = base_macs
    for row in rows:
        row["params_reduction"] = rows[0]["params"] / row["params"]
        row["macs_reduction"] = (base_macs / row["macs"]) if base_macs and row["macs"] else None
    if getattr(args, "eval", None):
        accuracy_rows(fw, nets, rows, args.eval, size, args.eval_limit)
    sequential = freeze_variants(plans, getattr(args, "sequential", None) or [])
    seq_rows = time_phases(fw, model, nets, modes, rows, sequential, args, size, classes)
    if not args.train:                  # result.json keeps its keys: null when not measured
        for row in rows:
            row["train_ms"] = row["train_ratio"] = None
    if args.memory:
        memory_rows(lat, args.model, kwargs, [plans[m][0] for m in modes], rows, (args.batch, 3, size, size),
                    args.device, args.threads, args.memory_repeat)
    best = pick_best(rows[1:], args.budget, keys=[k for k in ("infer_ratio", "train_ratio") if rows[0].get(k) is not None])
    spread = [f"{r['mode']} {k[:-10]}" for r in rows[1:] for k in list(r) if k.endswith("_ratio_iqr")
              and r[k][1] - r[k][0] > SPREAD_WARNING * r[k.replace("_iqr", "")]]
    if spread:
        _log(f"warning: the per-round ratios spread widely (IQR over {SPREAD_WARNING:.0%} of the ratio) for "
             f"{', '.join(spread[:4])}{' ...' if len(spread) > 4 else ''}: the machine is busy; re-run with more "
             f"--repeat or on an idle machine")
    return {"device": args.device, "framework": args.framework, "model": args.model, "model_kwargs": kwargs,
            "batch": args.batch, "threads_requested": args.threads,
            "input_size": size, "threads": threads_used(args.framework, args.threads, args.device), "repeat": args.repeat, "ratio": args.ratio,
            "rank_multiple": args.rank_multiple, "budget": args.budget, "modes": modes,
            "framework_version": _version(args.framework), "date": time.strftime("%Y-%m-%d %H:%M"),
            "results": rows + seq_rows, "best": None if best is None else best["mode"],
            "plans": {m: p.to_dict() for m, (p, _) in plans.items() if p is not None}}


#: a warning is printed when a ratio's interquartile range over rounds is wider than this share of the ratio
SPREAD_WARNING = 0.15


def time_phases(fw, model, nets, modes, rows, sequential, args, size: int, classes: int) -> list:
    """Time every phase (the original beside one variant at a time, a bar ticking per round) into ``rows``;
    returns the ``<mode>+sequential`` rows."""
    from lrd_core.progress import bar

    backend = fw.BACKEND
    by_mode = dict(zip(modes, nets))
    plan = []
    for phase, batch in _phases(args):
        extra = [(mode, frozen) for mode, phases in sequential for frozen in phases] if phase == "train" else []
        plan.append((phase, batch, extra))
    total = sum(rounds(len(nets) - 1 + len(extra), args.repeat) for _, _, extra in plan)
    seq_rows: list = []
    with bar(total, "bench: interleaved timing", unit="round") as timing_bar:
        for phase, batch, extra in plan:
            timing_bar.set_postfix_str(f"{phase} bs{batch}", refresh=False)
            _log(f"timing {phase} at batch {batch}: original beside each of {', '.join(modes[1:]) or 'nothing'}"
                 + (f" and {len(extra)} sequential-freezing phases" if extra else "") + " in turn")
            own = (lambda n: (lambda: backend.copy(n))) if phase == "train" else (lambda n: (lambda: n))
            makers = [own(n) for n in nets[1:]]
            makers += [_frozen_maker(fw, backend, by_mode[mode], frozen) for mode, frozen in extra]
            base, pairs = time_phase(backend, nets[0], makers, (batch, 3, size, size), args.device, phase,
                                     warmup=args.warmup, repeat=args.repeat, threads=args.threads,
                                     num_classes=classes if phase == "train" else None,
                                     tick=lambda: timing_bar.update(1))
            key = phase + ("" if batch == args.batch else f"_bs{batch}")
            paired(rows[0], key, None, base.median_ms)
            for row, pair in zip(rows[1:], pairs):
                paired(row, key, pair, base.median_ms)
            if extra:
                seq_rows = freeze_rows(rows, sequential, pairs[len(nets) - 1:], base.median_ms)
            if phase == "infer":
                for row in rows:
                    row[key + "_throughput"] = 1000.0 * batch / row[key + "_ms"]
    return seq_rows


def _frozen_maker(fw, backend, net, frozen):
    def make():
        copy = backend.copy(net)
        fw.set_frozen(copy, frozen)
        return copy
    return make


def paired(row: dict, key: str, pair, base_ms: float) -> None:
    """Store one phase of one variant: the median of the per-round ratios to the original (timed in the same
    round), their IQR, and milliseconds from the same rounds (the original's median times the ratio, so the
    two agree; the variant's own median is kept as ``<key>_median_ms``). ``pair`` None: the original."""
    ratios = pair.round_ratios if pair is not None else []
    ratio = float(statistics.median(ratios)) if ratios else 1.0
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratio, ratio, ratio]
    row[key + "_ratio"] = ratio
    row[key + "_ratio_iqr"] = [round(float(q[0]), 4), round(float(q[2]), 4)]
    row[key + "_round_ratios"] = [round(float(x), 4) for x in ratios] if pair is not None else [1.0]
    row[key + "_median_ms"] = pair.variant.median_ms if pair is not None else base_ms
    row[key + "_ms"] = base_ms * ratio


def threads_used(framework: str, requested, device: str):
    """The CPU threads the timings ran with: ``requested`` or the framework's own count (None off the CPU)."""
    if requested:
        return int(requested)
    if device != "CPU":
        return None
    if framework == "torch":
        import torch
        return int(torch.get_num_threads())
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def accuracy_rows(fw, nets, rows, data: str, size: int, limit: int) -> None:
    """``row["accuracy"]``: top-1 of every variant on ``limit`` samples of ``data`` (no fine-tuning)."""
    from lrd_data import ArrayData
    from lrd_data.sources import open_source, take

    source, labelled = open_source(data, size, split="evaluation")
    if not labelled:
        raise ConfigError(f"--eval {data!r} has no labels; accuracy needs labelled data")
    x, y = take(source, min(limit, len(source)))
    subset = ArrayData(x, y, int(max(y)) + 1)
    for net, row in zip(nets, rows):
        _log(f"evaluating {row['mode']} on {len(y)} samples of {data}")
        row["accuracy"] = float(fw.evaluate(net, subset))


def freeze_variants(plans, modes) -> list:
    """``[(mode, [frozen parameter names of sequential-freezing phase k, ...])]`` for the decomposed ``modes``."""
    out = []
    for mode in modes:
        plan = plans[mode][0]
        if plan is None or not plan.decomposed():
            continue
        out.append((mode, [freezing.frozen_parameters(plan, "sequential", k)
                           for k in range(freezing.cycle_length(plan, "sequential"))]))
    return out


def freeze_rows(rows, sequential, pairs, base_ms: float) -> list:
    """One ``<mode>+sequential`` row per frozen mode: the training step averaged over its phases (each
    phase's ratio paired with the original round by round), params/MACs of the mode."""
    out, k = [], 0
    by_mode = {r["mode"]: r for r in rows}
    for mode, phases in sequential:
        got = pairs[k:k + len(phases)]
        k += len(phases)
        base = by_mode[mode]
        ratios = [float(statistics.median(p.round_ratios)) for p in got]
        out.append({"mode": f"{mode}+sequential", "params": base["params"], "macs": base["macs"],
                    "decomposed": base["decomposed"], "params_reduction": base["params_reduction"],
                    "macs_reduction": base["macs_reduction"], "freeze_phases": len(phases),
                    "train_ms": base_ms * statistics.mean(ratios), "train_ratio": statistics.mean(ratios),
                    "train_phase_ratios": ratios})
    return out


def memory_rows(lat, model: str, kwargs: dict, plans, rows, shape, device: str, threads=None,
                repeat: int = 1) -> None:
    """Peak memory of every variant (median of ``repeat`` fresh processes, variants interleaved)."""
    runs = [[] for _ in rows]
    for k in range(repeat):
        for i, (plan, row) in enumerate(zip(plans, rows)):
            _log(f"peak memory of {row['mode']} (fresh process {k + 1}/{repeat})")
            runs[i].append(lat.peak_memory(model, kwargs, plan, shape, device, threads))
    for row, got in zip(rows, runs):
        for key in ("infer_peak_mb", "train_peak_mb"):
            row[key] = float(statistics.median(g[key] for g in got))
        row["memory_kind"] = got[0].get("kind")
        row["memory_runs"] = len(got)
    for row in rows:
        row["train_peak_ratio"] = row["train_peak_mb"] / rows[0]["train_peak_mb"]
        row["infer_peak_ratio"] = row["infer_peak_mb"] / rows[0]["infer_peak_mb"]


def _version(framework: str) -> str:
    return adapter(framework).BACKEND.version
