"""Is ``auto`` ever slower than the original? One auto plan per budget (one shared latency cache),
then every plan and the original timed interleaved in one process, per phase::

    python benchmarks/auto_budgets.py --framework torch --threads 1
    python benchmarks/auto_budgets.py --framework mindspore --device Ascend --budgets none,2,3
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import import_module

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--framework", default="torch", choices=("torch", "mindspore"))
    p.add_argument("--device", default="CPU")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--budgets", default="none,1.5,2,3,4,6,10")
    p.add_argument("--ratio", type=float, default=3.0)
    p.add_argument("--rank-multiple", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cache", default=None, help="latency cache (default: a fresh temporary one)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    fw = import_module("lrd_" + args.framework)
    lat = fw.latency
    lat.check_device(args.device)
    lat.set_threads(args.threads)
    cache = args.cache or os.path.join(tempfile.mkdtemp(prefix="lrd-budgets-"), "latency.json")
    model = fw.models.create_model(args.model, seed=0)
    size = args.input_size
    budgets = [None if b.strip().lower() == "none" else float(b) for b in args.budgets.split(",")]
    plans, rows = [], []
    for budget in budgets:
        t0 = time.time()
        plan = fw.plan(model, input_shape=(1, 3, size, size), mode="auto", device=args.device, budget=budget,
                       ratio=args.ratio, rank_multiple=args.rank_multiple, profile_batch=args.batch,
                       cache_path=cache, threads=args.threads)
        auto = plan.meta["auto"]
        plans.append(plan)
        rows.append({"budget": budget, "budget_met": auto.get("budget_met"), "decomposed": len(plan.decomposed()),
                     "params_reduction": auto["chosen"]["reduction"], "plan_seconds": round(time.time() - t0, 1),
                     "verify": auto.get("verify")})
        print(f"budget {budget}: {len(plan.decomposed())} layers, {auto['chosen']['reduction']:.2f}x params "
              f"({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    nets = [model] + [lat.with_plan(model, pl) for pl in plans]
    for phase, batch in (("infer", 1), ("infer", args.batch), ("train", args.batch)):
        res = lat.measure_latency(nets, (batch, 3, size, size), args.device, phase, warmup=1, repeat=args.repeat,
                                  threads=args.threads, num_classes=1000 if phase == "train" else None)
        for row, r in zip(rows, res[1:]):
            row[f"{phase}@{batch}"] = r.ratio
    slower = [r for r in rows if any(r[k] > 1.0 for k in r if "@" in k)]
    lines = [f"| budget | met | params x | layers | infer@1 | infer@{args.batch} | train@{args.batch} |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['budget'] or '-'} | {r['budget_met'] if r['budget'] else '-'} | "
                     f"{r['params_reduction']:.2f} | {r['decomposed']} | {r['infer@1']:.3f} | "
                     f"{r[f'infer@{args.batch}']:.3f} | {r[f'train@{args.batch}']:.3f} |")
    print("\n".join(lines))
    print(f"slower than the original in some phase: {len(slower)} of {len(rows)} plans")
    out = args.out or os.path.join(HERE, "results", f"auto_budgets_{args.model}_{args.device.lower()}_"
                                                    f"{args.framework}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"framework": args.framework, "device": args.device, "model": args.model, "batch": args.batch,
                   "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                   "rows": rows, "table": lines}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
