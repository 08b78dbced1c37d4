"""``lrd bench model``: one network, original vs compression modes vs ``auto``, measured side by side.

Every phase (inference at batch 1 and B, training step at B) times all variants interleaved in one
call, so each ratio compares runs made under the same machine load. Peak memory is measured per
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
    sequential = freeze_variants(fw, lat, model, plans, getattr(args, "sequential", None) or [])
    seq_rows: list = []
    for phase, batch in _phases(args):
        extra = [v for _, variants in sequential for v in variants] if phase == "train" else []
        _log(f"timing {phase} at batch {batch}: {', '.join(modes)} interleaved"
             + (f" with {len(extra)} sequential-freezing phases" if extra else ""))
        res = lat.measure_latency(nets + extra, (batch, 3, size, size), args.device, phase, warmup=args.warmup,
                                  repeat=args.repeat, threads=args.threads,
                                  num_classes=classes if phase == "train" else None)
        if extra:
            seq_rows = freeze_rows(rows, sequential, res[len(nets):])
            res = res[:len(nets)]
        key = {"infer": "infer", "train": "train"}[phase] + ("" if batch == args.batch else f"_bs{batch}")
        for row, r in zip(rows, res):
            row[key + "_ms"] = r.median_ms
            row[key + "_ratio"] = 1.0 if row is rows[0] else r.ratio
            if phase == "infer":
                row[key + "_throughput"] = r.throughput
    if not args.train:                  # result.json keeps its keys: null when not measured
        for row in rows:
            row["train_ms"] = row["train_ratio"] = None
    if args.memory:
        memory_rows(lat, args.model, kwargs, [plans[m][0] for m in modes], rows, (args.batch, 3, size, size),
                    args.device, args.threads, args.memory_repeat)
    best = pick_best(rows[1:], args.budget, keys=[k for k in ("infer_ratio", "train_ratio") if rows[0].get(k) is not None])
    return {"device": args.device, "framework": args.framework, "model": args.model, "model_kwargs": kwargs,
            "batch": args.batch,
            "input_size": size, "threads": args.threads, "repeat": args.repeat, "ratio": args.ratio,
            "rank_multiple": args.rank_multiple, "budget": args.budget, "modes": modes,
            "framework_version": _version(args.framework), "date": time.strftime("%Y-%m-%d %H:%M"),
            "results": rows + seq_rows, "best": None if best is None else best["mode"],
            "plans": {m: p.to_dict() for m, (p, _) in plans.items() if p is not None}}


def freeze_variants(fw, lat, model, plans, modes) -> list:
    """``[(mode, [network frozen as sequential-freezing phase k, ...])]`` for the decomposed ``modes``."""
    out = []
    for mode in modes:
        plan = plans[mode][0]
        if plan is None or not plan.decomposed():
            continue
        variants = []
        for k in range(freezing.cycle_length(plan, "sequential")):
            net = lat.with_plan(model, plan)
            fw.set_frozen(net, freezing.frozen_parameters(plan, "sequential", k))
            variants.append(net)
        out.append((mode, variants))
    return out


def freeze_rows(rows, sequential, results) -> list:
    """One ``<mode>+sequential`` row per frozen mode: the training step averaged over its phases (each
    phase's ratio measured interleaved with the original), params/MACs of the mode."""
    out, k = [], 0
    by_mode = {r["mode"]: r for r in rows}
    for mode, variants in sequential:
        got = results[k:k + len(variants)]
        k += len(variants)
        base = by_mode[mode]
        out.append({"mode": f"{mode}+sequential", "params": base["params"], "macs": base["macs"],
                    "decomposed": base["decomposed"], "params_reduction": base["params_reduction"],
                    "macs_reduction": base["macs_reduction"], "freeze_phases": len(variants),
                    "train_ms": statistics.mean(r.median_ms for r in got),
                    "train_ratio": statistics.mean(r.ratio for r in got),
                    "train_phase_ratios": [r.ratio for r in got]})
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
