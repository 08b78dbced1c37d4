"""Every factorization side by side: Tucker-2, CP-3 (with and without CPD-EPC), CP-4, basis convolutions
(dense mix and the alpha/beta variant), and skip training, in either framework.

    python benchmarks/methods_bench.py table --framework torch --out runs/methods_torch.json
    python benchmarks/methods_bench.py epc --framework mindspore --out runs/epc_ms.json
    python benchmarks/methods_bench.py resnet50 --framework torch --out runs/r50_methods_torch.json
    python benchmarks/methods_bench.py skip --framework torch --out runs/skip_torch.json
    python benchmarks/methods_bench.py skipstep --framework torch --batch 64 --out runs/skipstep_torch.json
    python benchmarks/methods_bench.py ops --framework torch --out runs/ops_torch.json
    python benchmarks/methods_bench.py report runs/*.json          # markdown tables

``table``: the digits model of ``lrd demo`` (CIFAR-stem ResNet-18, width 32, 32x32) trained once, then
per method (mode3, PR ``--ratio``, ranks x16): params, MACs, latency of inference at batch 1 and 8 and of a
training step at batch 8 (all variants and the original interleaved in one process, ratios to the
original), accuracy right after decomposition, after BatchNorm re-calibration and after a short
fine-tune. ``epc``: CP-3 with EPC vs plain CP-3 vs Tucker-2 at the same per-layer PR target, fine-tuned
at a higher LR. ``resnet50``: latency of each method's chains at 224x224 (random weights, no
decomposition). ``skip``: plain training vs skip training (basis convolutions in ``--layers`` for the
first ``--skip`` epochs), alternated runs; time and final accuracy. ``skipstep``: the training step of the
skip network against the original, interleaved in one process, and the run time it implies. ``ops``: seed-003 operation counts
of basis convolutions against the measured time of the layer (inference = forward, train = forward +
backward), ratios to the original layer.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # see lrd_torch/backend.py

from lrd_recipe import config as recipe, pipeline  # noqa: E402
from lrd_recipe.demo import DEMO  # noqa: E402

METHODS = {
    "tucker2": dict(conv_method="tucker2"),
    "cp3": dict(conv_method="cp3"),
    "cp3+epc": dict(conv_method="cp3", epc=True),
    "cp4": dict(conv_method="cp4"),
    "basis": dict(conv_method="basis"),
    "basis a.5 b.25": dict(conv_method="basis", basis_alpha=0.5, basis_beta=0.25),
}
PHASES = (("infer", 1), ("infer", 8), ("train", 8))


def _runtime(framework: str, **kw):
    from lrd_recipe.runtime import Runtime

    values = {**DEMO, "framework": framework, "output_path": tempfile.mkdtemp(prefix="lrd-methods-"),
              "progress": "false", "resume": False, "eval_every_epoch": False, "freeze": "none"}
    values.update(kw)
    return Runtime(recipe.namespace(**values))


def _latency(rt, models, shape_hw, repeat: int, num_classes: int = 10) -> list:
    """Per model: {phase@batch: (ms, ratio to models[0])}, all models interleaved per phase."""
    out = [{} for _ in models]
    for phase, batch in PHASES:
        res = rt.fw.measure_latency(models, (batch, 3) + tuple(shape_hw), mode=phase, repeat=repeat,
                                    num_classes=num_classes)
        for k, r in enumerate(res):
            out[k][f"{phase}@{batch}"] = [round(r.median_ms, 3), round(r.ratio if r.ratio else 1.0, 4)]
    return out


def _plan_kw(ratio: float, method: dict, iters: int) -> dict:
    return {"compression_ratio": ratio, "cp_iters": iters, "epc_iters": max(10, iters // 2), **{
        k: v for k, v in method.items()}}


def _methods(rt, weights, train_src, eval_src, names, ratio, iters, epochs, lr, log) -> list:
    """Decompose a copy of the trained net by each method, evaluate, fine-tune; returns rows and nets."""
    rows, nets = [], []
    for name in names:
        cfg = rt.cfg
        for key, value in _plan_kw(ratio, METHODS[name], iters).items():
            setattr(cfg, key, value)
        cfg.basis_alpha, cfg.basis_beta = METHODS[name].get("basis_alpha", 0.0), METHODS[name].get("basis_beta", 0.0)
        cfg.epc = METHODS[name].get("epc", False)
        cfg.output_path = tempfile.mkdtemp(prefix=f"lrd-{name.split()[0]}-")
        cfg.finetune_lr_max = lr
        net = rt.model()
        rt.fw.load_numpy(net, weights)
        t0 = time.perf_counter()
        plan, dec = pipeline.decompose(rt, net, train_src, eval_src, log)
        seconds = time.perf_counter() - t0
        ft = pipeline.finetune(rt, net, plan, train_src, eval_src, epochs, 1, log)
        t = plan.totals
        cps = [lp.cp for lp in plan.decomposed() if lp.cp]
        row = {"method": name, "params": t["params_after"], "params_ratio": t["params_before"] / t["params_after"],
               "macs": t["macs_after"], "macs_ratio": t["macs_before"] / t["macs_after"],
               "layers": len(plan.decomposed()), "seconds_decompose": seconds,
               "accuracy_decomposed": dec["accuracy_decomposed"], "accuracy_recalibrated": dec["accuracy_recalibrated"],
               "accuracy_finetuned": ft["accuracy_finetuned"],
               "cp_error": [statistics.mean(c["error"][i] for c in cps) for i in (0, 1)] if cps else None,
               "cp_sensitivity_ratio": statistics.mean(c["sensitivity"][1] / c["sensitivity"][0] for c in cps)
               if cps else None}
        rows.append(row)
        nets.append(net)
        print(json.dumps(row), flush=True)
    return rows, nets


def table(args) -> dict:
    rt = _runtime(args.framework, width=args.width, epoch_size=args.epochs)
    log = print if args.verbose else (lambda *_: None)
    train_src, eval_src = rt.sources()
    t0 = time.perf_counter()
    model, orig = pipeline.train_original(rt, train_src, eval_src, log)
    weights = rt.fw.state_to_numpy(model)
    names = args.methods.split(",")
    rows, nets = _methods(rt, weights, train_src, eval_src, names, args.ratio, args.cp_iters, args.finetune_epochs,
                          args.finetune_lr, log)
    lat = _latency(rt, [model] + nets, (32, 32), args.repeat)
    for row, timing in zip(rows, lat[1:]):
        row["latency"] = timing
    return {"framework": args.framework, "width": args.width, "ratio": args.ratio, "accuracy_original": orig["accuracy"],
            "params_original": rows[0]["params"] * rows[0]["params_ratio"], "latency_original": lat[0],
            "rows": rows, "seconds": time.perf_counter() - t0}


def epc(args) -> dict:
    args.methods = "tucker2,cp3,cp3+epc"
    args.finetune_lr = args.epc_lr
    return table(args)


def resnet50(args) -> dict:
    import importlib

    from lrd_core import make_plan

    fw = importlib.import_module("lrd_" + args.framework)
    if args.framework == "mindspore":
        import mindspore as ms
        ms.set_context(mode=ms.GRAPH_MODE)
    model = fw.models.resnet50(num_classes=1000, seed=0)
    layers = fw.inspect(model, input_shape=(1, 3, 224, 224))
    variants, rows = [model], []
    for name in args.methods.split(","):
        options = dict(METHODS[name])
        options.pop("epc", None)                       # EPC changes weights, not the chains: same latency
        plan = make_plan(layers, mode="mode3", ratio=args.ratio, rank_multiple=32, final_dense_ratio=1.3, **options)
        variants.append(fw.with_plan(model, plan))
        t = plan.totals
        rows.append({"method": name, "params": t["params_after"] + fw.count_params(model) - t["params_before"],
                     "macs_ratio": t["macs_before"] / t["macs_after"], "layers": len(plan.decomposed())})
    rt = type("RT", (), {"fw": fw})
    lat = _latency(rt, variants, (224, 224), args.repeat, num_classes=1000)
    for row, timing in zip(rows, lat[1:]):
        row["latency"] = timing
    return {"framework": args.framework, "model": "resnet50", "ratio": args.ratio, "params_original":
            fw.count_params(model), "latency_original": lat[0], "rows": rows}


def _train_once(framework, skip: bool, args, log):
    kw = dict(width=args.width, epoch_size=args.epochs, eval_every_epoch=False)
    if skip:
        kw.update(basis_layers=args.layers.split(","), basis_skip_epochs=args.skip, basis_alpha=args.alpha,
                  basis_beta=args.beta, basis_speedup=True)
    rt = _runtime(framework, **kw)
    train_src, eval_src = rt.sources()
    t0 = time.perf_counter()
    model, info = pipeline.train_original(rt, train_src, eval_src, log)
    seconds = time.perf_counter() - t0
    fit = info["fit"]
    return {"seconds": seconds, "accuracy": info["accuracy"], "step_ms": fit["timing"]["step_ms"],
            "skip": fit.get("skip") and {k: v for k, v in fit["skip"].items() if k != "plan"}}


def skip(args) -> dict:
    log = print if args.verbose else (lambda *_: None)
    runs = {"plain": [], "skip": []}
    for _ in range(args.rounds):                    # alternated: plain, skip, plain, skip ...
        for kind in ("plain", "skip"):
            runs[kind].append(_train_once(args.framework, kind == "skip", args, log))
            print(kind, json.dumps(runs[kind][-1]), flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "accuracy")} for k, v in runs.items()}
    return {"framework": args.framework, "width": args.width, "epochs": args.epochs, "skip_epochs": args.skip,
            "layers": args.layers, "alpha": args.alpha, "beta": args.beta, "runs": runs, "median": med,
            "time_ratio": med["skip"]["seconds"] / med["plain"]["seconds"],
            "accuracy_delta_pp": 100 * (med["skip"]["accuracy"] - med["plain"]["accuracy"])}


def skipstep(args) -> dict:
    """Training-step time of the skip-training network (basis chains in ``--layers``) against the original,
    interleaved in one process (robust to the machine's load), and the training time it implies."""
    import importlib

    from lrd_core.skip import skip_plan_options

    fw = importlib.import_module("lrd_" + args.framework)
    if args.framework == "mindspore":
        import mindspore as ms
        ms.set_context(mode=ms.GRAPH_MODE)
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=args.width, seed=0)
    options = skip_plan_options(args.layers.split(","), 2.0, "svd", args.alpha, args.beta, True)
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), **options)
    variant = fw.with_plan(model, plan)
    res = fw.measure_latency([model, variant], (args.batch, 3, 32, 32), mode="train", repeat=args.repeat,
                             num_classes=10)
    ratio = res[1].median_ms / res[0].median_ms
    t = plan.totals
    return {"framework": args.framework, "width": args.width, "batch": args.batch, "layers": args.layers,
            "alpha": args.alpha, "beta": args.beta, "basis_layers": len(plan.decomposed()),
            "params_ratio_layers": t["params_before"] / t["params_after"],
            "step_ms": [res[0].median_ms, res[1].median_ms], "step_ratio": ratio,
            "implied_time_ratio": (args.skip * ratio + args.epochs - args.skip) / args.epochs,
            "epochs": args.epochs, "skip_epochs": args.skip}


def ops(args) -> dict:
    import importlib

    from lrd_core.cost import basis_op_counts
    from lrd_core.factorize.basis import combine_ranks
    from lrd_core.layers import LayerInfo

    fw = importlib.import_module("lrd_" + args.framework)
    if args.framework == "mindspore":
        import mindspore as ms
        ms.set_context(mode=ms.GRAPH_MODE)
    rows = []
    for cin, hw in ((64, 32), (128, 16), (256, 8)):
        info = LayerInfo(f"c{cin}", "conv2d", cin, cin, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(hw, hw))
        variants = [("none", None)]
        for frac in (0.25, 0.5):
            variants.append(("basis", (int(frac * cin),)))
        for a, b in ((0.5, 0.25), (0.25, 0.25), (0.5, 0.5)):
            variants.append(("basis", combine_ranks(info, a, b)))
        timer = fw.latency.layer_timer("CPU", repeat=args.repeat)
        timings = {p: timer(info, variants, f"{p}@{args.batch}") for p in ("infer", "train")}
        for k, (method, ranks) in enumerate(variants[1:], 1):
            if len(ranks) == 1:
                c = basis_op_counts((3, 3), (hw, hw), cin, cin, n_basis=ranks[0])
                fwd, bwd = c["forward"], c["backward"]
            else:
                c = basis_op_counts((3, 3), (hw, hw), cin, cin, alpha=ranks[0] / cin, beta=ranks[1] / cin)
                fwd, bwd = c["forward_ab"], c["backward_ab"]
            f0, b0 = c["forward_original"], c["backward_original"]
            rows.append({"layer": f"{cin}->{cin} 3x3 at {hw}x{hw}", "ranks": list(ranks),
                         "ops_forward_ratio": fwd / f0, "ops_train_ratio": (fwd + bwd) / (f0 + b0),
                         "time_infer_ratio": timings["infer"][k].median_ms / timings["infer"][0].median_ms,
                         "time_train_ratio": timings["train"][k].median_ms / timings["train"][0].median_ms})
            print(json.dumps(rows[-1]), flush=True)
    return {"framework": args.framework, "batch": args.batch, "rows": rows}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def report(paths) -> str:
    """Markdown tables of result files written by this script (any subcommand)."""
    lines = []
    for path in paths:
        with open(path) as fh:
            r = json.load(fh)
        lines += ["", f"`{os.path.basename(path)}` ({r['framework']}, {r['date']})", ""]
        if "rows" in r and r["rows"] and "accuracy_finetuned" in r["rows"][0]:
            lines += [f"original: {_pct(r['accuracy_original'])}, {r['params_original']:,.0f} params; latency "
                      + ", ".join(f"{k} {v[0]:.1f} ms" for k, v in r["latency_original"].items()), "",
                      "| method | layers | params | MACs | infer bs1 | infer bs8 | train bs8 | decomposed | "
                      "BN re-calibrated | fine-tuned | CP error / EPC sensitivity |", "|" + "---|" * 11]
            for x in r["rows"]:
                lat = x["latency"]
                cp = "-" if x["cp_error"] is None else f"{x['cp_error'][1]:.3f} / {x['cp_sensitivity_ratio']:.2f}x"
                lines.append(f"| {x['method']} | {x['layers']} | {x['params_ratio']:.2f}x fewer | "
                             f"{x['macs_ratio']:.2f}x fewer | " + " | ".join(f"{lat[k][1]:.2f}x" for k in
                                                                            ("infer@1", "infer@8", "train@8"))
                             + f" | {_pct(x['accuracy_decomposed'])} | {_pct(x['accuracy_recalibrated'])} | "
                             f"{_pct(x['accuracy_finetuned'])} | {cp} |")
        elif "rows" in r and r["rows"] and "latency" in r["rows"][0]:
            lines += ["| method | layers | params | MACs | infer bs1 | infer bs8 | train bs8 |", "|" + "---|" * 7,
                      "| original | - | {:.1f}M | 1.00x | ".format(r["params_original"] / 1e6)
                      + " | ".join(f"{v[0]:.0f} ms" for v in r["latency_original"].values()) + " |"]
            for x in r["rows"]:
                lines.append(f"| {x['method']} | {x['layers']} | {x['params'] / 1e6:.1f}M | {x['macs_ratio']:.2f}x "
                             f"fewer | " + " | ".join(f"{v[1]:.2f}x" for v in x["latency"].values()) + " |")
        elif "time_ratio" in r:
            m = r["median"]
            lines += ["| run | median wall time | median final accuracy |", "|---|---|---|",
                      f"| plain ({r['epochs']} epochs) | {m['plain']['seconds']:.1f} s | {_pct(m['plain']['accuracy'])} |",
                      f"| skip ({r['skip_epochs']} epochs basis, alpha {r['alpha']}, beta {r['beta']}) | "
                      f"{m['skip']['seconds']:.1f} s | {_pct(m['skip']['accuracy'])} |",
                      f"| skip / plain | {r['time_ratio']:.3f} | {r['accuracy_delta_pp']:+.2f} pp |"]
        elif "step_ratio" in r:
            lines += ["| network (batch {}) | training step | ratio |".format(r["batch"]), "|---|---|---|",
                      f"| original | {r['step_ms'][0]:.1f} ms | 1.00 |",
                      f"| {r['basis_layers']} layers as basis convs (alpha {r['alpha']}, beta {r['beta']}) | "
                      f"{r['step_ms'][1]:.1f} ms | {r['step_ratio']:.3f} |",
                      f"| implied {r['epochs']}-epoch run, {r['skip_epochs']} skipped | | {r['implied_time_ratio']:.3f} |"]
        elif "rows" in r:
            lines += ["| layer | C' or (C', pairs) | ops forward | ops fwd+bwd | time infer | time train |",
                      "|" + "---|" * 6]
            for x in r["rows"]:
                lines.append(f"| {x['layer']} | {tuple(x['ranks'])} | {x['ops_forward_ratio']:.2f} | "
                             f"{x['ops_train_ratio']:.2f} | {x['time_infer_ratio']:.2f} | {x['time_train_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["report"]:
        print(report(sys.argv[2:]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn in (("table", table), ("epc", epc), ("resnet50", resnet50), ("skip", skip), ("skipstep", skipstep),
                     ("ops", ops)):
        s = sub.add_parser(name)
        s.add_argument("--framework", default="torch", choices=("torch", "mindspore"))
        s.add_argument("--out", required=True)
        s.add_argument("--width", type=int, default=32)
        s.add_argument("--epochs", type=int, default=2 if not name.startswith("skip") else 4)
        s.add_argument("--ratio", type=float, default=3.0 if name == "resnet50" else 2.0)
        s.add_argument("--methods", default="tucker2,cp3,cp3+epc,cp4,basis,basis a.5 b.25")
        s.add_argument("--cp-iters", type=int, default=30)
        s.add_argument("--finetune-epochs", type=int, default=1 if name != "epc" else 2)
        s.add_argument("--finetune-lr", type=float, default=0.01)
        s.add_argument("--epc-lr", type=float, default=0.03)
        s.add_argument("--repeat", type=int, default=5)
        s.add_argument("--batch", type=int, default=8)
        s.add_argument("--layers", default=r"layer3\..*conv2,layer4\..*conv2")
        s.add_argument("--skip", type=int, default=2)
        s.add_argument("--alpha", type=float, default=0.5)
        s.add_argument("--beta", type=float, default=0.25)
        s.add_argument("--rounds", type=int, default=2)
        s.add_argument("--verbose", action="store_true")
        s.set_defaults(fn=fn)
    args = p.parse_args(argv)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    result = {"date": stamp, "command": " ".join(sys.argv), **args.fn(args)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1, default=float)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
