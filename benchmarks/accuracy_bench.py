"""Accuracy-aware compression: the targets of the accuracy-aware issue, measured in one process each.

    python benchmarks/accuracy_bench.py digits --framework torch --out benchmarks/results/accuracy_digits_torch.json
    python benchmarks/accuracy_bench.py pareto --framework torch --run runs/acc_torch_ws
    python benchmarks/accuracy_bench.py resnet50 --framework torch --images 256
    python benchmarks/accuracy_bench.py auto-cold --framework torch --threads 1

``digits``: the demo recipe (ResNet-18 width 32 on digits, mode3 PR 2x, ranks x16, final dense 1.3x),
weight-space and data-aware from the same original weights: accuracy right after decomposition, after
BatchNorm re-calibration and after each fine-tuning epoch (epochs needed to reach the original).

``pareto``: the mode="pareto" plan at mode3's parameter count (budget = mode3's reduction) against mode3,
both data-aware and BatchNorm re-calibrated: test accuracy, and inference / training-step latency of the
two networks timed interleaved.

``resnet50``: calibration + data-aware planning of ResNet-50 at 224 on N images (random inputs: the time does
not depend on them), beside a plain forward pass over the same images.

``auto-cold``: the cold hardware-aware search of ResNet-50 with the default timing (``lrd_core.adaptive_timing``
mode "lean": the timed warm-up round kept as a provisional sample) against ``--compare`` ("sequential": the
earlier default, untimed warm-up and calibration calls; or "fixed" rounds), alternating, each with a fresh
latency cache; prints and stores per search the wall time, the layer timing, the whole-network check and the
time before the timing starts.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from importlib import import_module

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # see lrd_torch/backend.py


def _demo_config(framework: str, out: str, **kw):
    from lrd_recipe import config as recipe
    from lrd_recipe.demo import DEMO

    values = {**DEMO, "framework": framework, "output_path": out, "progress": "false", "resume": False,
              "eval_every_epoch": True}
    values.update(kw)
    return recipe.namespace(**values)


def _epochs_to(history, target):
    for h in history:
        if h.get("eval_accuracy", -1) >= target:
            return h["epoch"]
    return None


def digits(args) -> dict:
    from lrd_core.layout import RUN_ORIGINAL, WEIGHT_FILES
    from lrd_recipe import pipeline

    root = args.run or tempfile.mkdtemp(prefix="lrd-acc-")
    ws = pipeline.run(_demo_config(args.framework, os.path.join(root, "weight_space"),
                                   finetune_epoch_size=args.epochs, compare_data_aware=True), export=False)
    original = os.path.join(root, "weight_space", RUN_ORIGINAL, WEIGHT_FILES[args.framework])
    da = pipeline.run(_demo_config(args.framework, os.path.join(root, "data_aware"), epoch_size=0,
                                   pre_trained=original, finetune_epoch_size=args.epochs, data_aware=True),
                      export=False)
    target = ws["accuracy_original"]
    rows = {}
    for name, s in (("weight_space", ws), ("data_aware", da)):
        hist = s["runs"][1]["history"]
        rows[name] = {"decomposed": s["accuracy_decomposed"], "recalibrated": s["accuracy_recalibrated"],
                      "finetuned_per_epoch": [h.get("eval_accuracy") for h in hist],
                      "epochs_to_original": 0 if (s["accuracy_recalibrated"] or 0) >= target else _epochs_to(hist, target),
                      "params_compressed": s["params_compressed"]}
    out = {"framework": args.framework, "original": target, "params_original": ws["params_original"], **rows,
           "compare_data_aware": {k: ws.get(k) for k in ("accuracy_decomposed_data_aware_raw",
                                                         "accuracy_decomposed_data_aware")},
           "run": root}
    print(f"{args.framework}: original {target:.4f}")
    for name in ("weight_space", "data_aware"):
        r = rows[name]
        print(f"  {name:13s} decomposed {r['decomposed']:.4f}  BN re-calibrated {r['recalibrated']:.4f}  fine-tuned "
              f"per epoch {[round(a, 4) for a in r['finetuned_per_epoch']]}  epochs to the original "
              f"{r['epochs_to_original']}")
    return out


def pareto(args) -> dict:
    from lrd_core.layout import RUN_ORIGINAL, WEIGHT_FILES
    from lrd_data import load_digits
    from lrd_recipe.runtime import Runtime

    cfg = _demo_config(args.framework, tempfile.mkdtemp(prefix="lrd-pareto-"))
    rt = Runtime(cfg)
    fw, train = rt.fw, importlib_train(args.framework)
    tr, te = load_digits(size=32, seed=0)
    path = os.path.join(args.run, "weight_space", RUN_ORIGINAL, WEIGHT_FILES[args.framework])
    original = rt.model()
    fw.load_checkpoint(original, path)
    calib = [tr.x[i:i + 64] for i in range(0, 1024, 64)]
    valid = tr.take(len(tr))                        # sensitivity on training images, accuracy on the test split
    vx, vy = valid.x[-320:], valid.y[-320:]
    evaluate = lambda m: float((fw.predict(m, vx).argmax(1) == vy).mean())  # noqa: E731
    common = dict(input_shape=rt.input_shape, ratio=2.0, final_dense_ratio=1.3, rank_multiple=16, calibration=calib,
                  data_aware=True)
    mode3 = fw.plan(original, mode="mode3", **common)
    t = mode3.totals
    t0 = time.perf_counter()
    par = fw.plan(original, mode="pareto", budget=t["params_before"] / t["params_after"], budget_kind="params",
                  objective=args.objective, profile_batch=args.batch, evaluate=evaluate,
                  log=lambda line: print(line, file=sys.stderr), **common)
    seconds = time.perf_counter() - t0
    nets = {}
    for name, plan in (("mode3", mode3), ("pareto", par)):
        m = rt.model()
        fw.load_checkpoint(m, path)
        fw.compress(m, plan)
        train.recalibrate_bn(m, tr, batches=10, batch_size=64, seed=0)
        nets[name] = (m, plan, float((fw.predict(m, te.x).argmax(1) == te.y).mean()))
    lat = {}
    for phase, batch in (("infer", 1), ("infer", args.batch), ("train", args.batch)):
        res = fw.measure_latency([original, nets["mode3"][0], nets["pareto"][0]], (batch, 3, 32, 32), "CPU", phase,
                                 warmup=2, repeat=args.repeat, num_classes=10 if phase == "train" else None)
        lat[f"{phase}@{batch}"] = {"original_ms": res[0].median_ms, "mode3": res[1].ratio, "pareto": res[2].ratio}
    out = {"framework": args.framework, "budget": par.config.budget, "pareto_seconds": round(seconds, 1),
           "estimated": par.meta["pareto"]["estimated"], "measured": par.meta["pareto"]["measured"],
           "fixed_modes": par.meta["pareto"]["fixed_modes"], "race": par.meta["pareto"]["race"], "latency": lat}
    for name, (m, plan, acc) in nets.items():
        tt = plan.totals
        out[name] = {"accuracy": acc, "layers": len(plan.decomposed()), "params": tt["params_after"],
                     "reduction": tt["params_before"] / tt["params_after"],
                     "ranks": {lp.name: list(lp.ranks) for lp in plan.decomposed()}}
        print(f"  {name:7s} {len(plan.decomposed())} layers, {out[name]['reduction']:.3f}x params, test accuracy "
              f"{acc:.4f}, latency " + ", ".join(f"{k} {v[name]:.3f}x" for k, v in lat.items()))
    if args.plot:
        from lrd_bench.pareto_plot import plot_front
        plot_front(par.meta["pareto"], args.plot, title=f"ResNet-18 digits, {args.framework}: Pareto front at mode3's "
                                                        f"parameter count")
    return out


def importlib_train(framework: str):
    return import_module(f"lrd_{framework}.train")


def resnet50(args) -> dict:
    fw = import_module("lrd_" + args.framework)
    if args.framework == "mindspore":
        import mindspore as ms
        ms.set_context(mode=ms.PYNATIVE_MODE)
    model = fw.models.resnet50(num_classes=1000)
    x = np.random.default_rng(0).standard_normal((args.images, 3, 224, 224)).astype(np.float32)
    batches = [x[i:i + 32] for i in range(0, len(x), 32)]
    out = {"framework": args.framework, "images": args.images, "mode": args.mode, "ratio": args.ratio, "rounds": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for b in batches:
            fw.predict(model, b)
        forward = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = fw.plan(model, input_shape=(1, 3, 224, 224), mode=args.mode, ratio=args.ratio, rank_multiple=32,
                       calibration=batches, data_aware=True, calibration_cache=False, progress=False)
        total = time.perf_counter() - t0
        cal = plan.meta["calibration"]
        row = {"forward_s": round(forward, 1), "plan_s": round(total, 1), "statistics_s": cal["seconds"],
               "factorize_s": cal.get("seconds_factorize"), "kinds": cal["kinds"], "layers": len(plan.decomposed()),
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        out["rounds"].append(row)
        print(json.dumps(row), flush=True)
    return out


def auto_cold(args) -> dict:
    """The default timing (``adaptive_timing.MODE``, "lean") against ``--compare`` (the earlier default,
    "sequential", or "fixed" rounds), alternating, each search with a fresh latency cache."""
    from lrd_core import adaptive_timing

    fw = import_module("lrd_" + args.framework)
    model = fw.models.create_model("resnet50", seed=0)
    default, other = adaptive_timing.MODE, args.compare
    print(f"auto-cold {args.framework}: default timing {default!r} against {other!r}, {args.rounds} round(s) each, "
          f"threads {args.threads}", flush=True)
    rows = []
    for k in range(args.rounds):
        for mode in ((other, default) if k % 2 == 0 else (default, other)):
            adaptive_timing.MODE = mode
            cache = os.path.join(tempfile.mkdtemp(prefix="lrd-cold-"), "latency.json")
            stamps = []
            t0 = time.perf_counter()
            try:
                plan = fw.plan(model, input_shape=(1, 3, 224, 224), mode="auto", device="CPU", budget=args.budget,
                               ratio=3.0, rank_multiple=32, profile_batch=args.batch, cache_path=cache,
                               threads=args.threads, log=lambda line: stamps.append((time.perf_counter(), line)))
            finally:
                adaptive_timing.MODE = default
            end = time.perf_counter()
            auto = plan.meta["auto"]
            checks = [t for t, line in stamps if line.startswith("auto: whole-network check")]
            first = next((t for t, line in stamps if line.startswith("auto: timing ")), t0)
            row = {"timing_mode": mode, "default": mode == default, "seconds": round(end - t0, 1),
                   "profile_seconds": auto["profile"]["measure_seconds"],
                   "verify_seconds": round((checks[-1] if checks else end) - max(
                       [t for t, line in stamps if line.startswith("  ")] or [first]), 1),
                   "before_timing_seconds": round(first - t0, 1),
                   "variants": auto["profile"]["measured_variants"], "decomposed": len(plan.decomposed()),
                   "reduction": round(auto["chosen"]["reduction"], 3),
                   "verify": [v["ratios"] for v in auto.get("verify", [])]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    before = [r["seconds"] for r in rows if not r["default"]]
    after = [r["seconds"] for r in rows if r["default"]]
    out = {"framework": args.framework, "threads": args.threads, "default_mode": default, "compared_mode": other,
           "rows": rows, "before_median_s": float(np.median(before)), "after_median_s": float(np.median(after)),
           "ratio": float(np.median(after) / np.median(before)), "load_average": list(os.getloadavg())}
    print(f"auto-cold {args.framework}: {default} {out['after_median_s']:.1f} s (median) vs {other} "
          f"{out['before_median_s']:.1f} s: {out['ratio']:.2f}x; load average {os.getloadavg()[0]:.2f}", flush=True)
    return out


COMMANDS = {"digits": digits, "pareto": pareto, "resnet50": resnet50, "auto-cold": auto_cold}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=sorted(COMMANDS))
    p.add_argument("--framework", default="torch", choices=("torch", "mindspore"))
    p.add_argument("--run", default=None, help="digits: run directory (kept); pareto: the digits run to read")
    p.add_argument("--epochs", type=int, default=3, help="digits: fine-tuning epochs")
    p.add_argument("--images", type=int, default=256, help="resnet50: calibration images")
    p.add_argument("--mode", default="vanilla", help="resnet50: compression mode")
    p.add_argument("--ratio", type=float, default=3.0, help="resnet50: PR ratio per layer (the fc's rank must not "
                                                           "exceed the calibration images)")
    p.add_argument("--rounds", type=int, default=1, help="resnet50 / auto-cold: repetitions")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--budget", type=float, default=2.0, help="auto-cold: parameter budget")
    p.add_argument("--compare", default="sequential", choices=("sequential", "fixed"),
                   help="auto-cold: the timing the default (lean) is compared against")
    p.add_argument("--objective", default="both", help="pareto: timed phases")
    p.add_argument("--repeat", type=int, default=7, help="pareto: latency rounds")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--plot", default=None, help="pareto: PNG of the front")
    p.add_argument("--out", default=None, help="JSON result")
    args = p.parse_args(argv)
    if args.framework == "mindspore":
        import lrd_mindspore  # noqa: F401  (environment before mindspore loads)
        import mindspore as ms
        ms.set_device("CPU")
    result = dict(COMMANDS[args.command](args), date=time.strftime("%Y-%m-%d %H:%M"), command=" ".join(sys.argv))
    if args.out:
        from lrd_core.io import atomic_file
        with atomic_file(args.out, suffix=".json") as tmp:
            with open(tmp, "w") as fh:
                json.dump(result, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
