"""Reduced-order networks (RON, ASNet) on the digits model, beside the tensor methods.

    python benchmarks/reduce_bench.py --framework torch --out benchmarks/results/reduce_digits_torch

The model is the demo's CIFAR-stem ResNet-18 (width 32) on the embedded digits (32x32): trained here
with the demo's settings (2 epochs; cached in ``--weights``) or loaded from a run directory
(``--run runs/demo``: its ``original/`` weights). Accuracy is top-1 on the 450 test images; MACs and
parameters count the conv/dense layers (per image), as every lrd plan does.

``ron``: accuracy vs MAC reduction for RON alone at several FLOP budgets, and RON followed by
Tucker-2 or CP-3 (PR ``--tensor-ratio`` on every KxK conv of the reduced network), each before and
after a short fine-tune (``--finetune-epochs``, knowledge distillation from the original).
``asnet``: parameters, MACs and accuracy vs the cut layer and r, before and after the same
fine-tune, beside Tucker-2 and CP-3 of the whole network at several ratios (similar sizes).
Writes ``OUT.json``, ``OUT.md`` (the tables) and ``OUT_ron.png`` / ``OUT_asnet.png`` (with one part in
``--parts``: ``OUT_<part>.json`` / ``.md``, so the two parts can run side by side).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # see lrd_torch/backend.py

from lrd_core.reduce import with_reduction  # noqa: E402
from lrd_core.schedule import epoch_schedule  # noqa: E402
from lrd_data import load_digits  # noqa: E402

KW = dict(num_classes=10, stem="cifar", width=32)
SHAPE = (1, 3, 32, 32)
DISTILL = {"alpha": 0.5, "temperature": 2.0}


class Bench:
    def __init__(self, args):
        self.args = args
        self.fw = importlib.import_module(f"lrd_{args.framework}")
        self.train_mod = importlib.import_module(f"lrd_{args.framework}.train")
        if args.framework == "mindspore":
            import mindspore as ms
            ms.set_context(mode=ms.GRAPH_MODE)
        self.train, self.test = load_digits(size=32)
        self.original = self._original()
        self.weights = self.fw.state_to_numpy(self.original)
        self.calib_ron = self.train.take(args.ron_samples)
        self.calib_asnet = self.train.take(args.asnet_samples)

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def _original(self):
        fw, args = self.fw, self.args
        model = fw.models.resnet18(seed=0, **KW)
        if args.run:
            from lrd_core.layout import RUN_ORIGINAL, weights_in
            path = weights_in(os.path.join(args.run, RUN_ORIGINAL), args.framework)
            fw.load_checkpoint(model, path)
            self.log(f"original weights from {path}")
        elif args.weights and os.path.isfile(args.weights):
            fw.load_checkpoint(model, args.weights)
            self.log(f"original weights from {args.weights}")
        else:
            t0 = time.perf_counter()
            steps = len(self.train) // 64
            lr = epoch_schedule("linear", args.epochs, steps, 0.05, warmup_epochs=0.5)
            self.train_mod.fit(model, self.train, lr, args.epochs, batch_size=64, log=None, seed=0)
            self.log(f"trained the original for {args.epochs} epochs in {time.perf_counter() - t0:.0f}s")
            if args.weights:
                os.makedirs(os.path.dirname(os.path.abspath(args.weights)), exist_ok=True)
                fw.write_checkpoint(fw.state_to_numpy(model), args.weights)
        return model

    def fresh(self):
        model = self.fw.models.resnet18(**KW)
        self.fw.load_numpy(model, self.weights)
        return model

    def accuracy(self, model) -> float:
        return float(self.fw.evaluate(model, self.test))

    def finetune(self, model) -> float:
        epochs = self.args.finetune_epochs
        steps = len(self.train) // 64
        lr = epoch_schedule("linear", epochs, steps, self.args.finetune_lr, warmup_epochs=0.25)
        self.train_mod.fit(model, self.train, lr, epochs, batch_size=64, log=None, seed=1, teacher=self.original,
                           distill=DISTILL)
        return self.accuracy(model)

    def tensor(self, model, method: str, ratio: float):
        """Plan + compress KxK convs (Tucker-2 or CP-3) and 1x1/dense by SVD at PR ``ratio``; returns the plan."""
        extra = {"cp_iters": self.args.cp_iters} if method.startswith("cp") else {}
        plan = self.fw.plan(model, input_shape=SHAPE, mode="all", rank_selection="pr", ratio=ratio, rank_multiple=1,
                            conv_method=method, exclude=["conv1"], **extra)
        self.fw.compress(model, plan)
        return plan


def _row(name, params, macs, acc, acc_ft, base, seconds, **extra):
    return {"variant": name, "params": int(params), "macs": int(macs), "mac_reduction": base["macs"] / macs,
            "param_reduction": base["params"] / params, "accuracy": acc, "accuracy_finetuned": acc_ft,
            "seconds": round(seconds, 1), **extra}


def run_ron(b: Bench, base: dict) -> list:
    rows = []
    for budget in b.args.budgets:
        t0 = time.perf_counter()
        reduced, plan = b.fw.reduce(b.fresh(), "ron", calibration=b.calib_ron, flop_budget=budget, seed=0)
        t = plan.meta["reduction"]["totals"]
        seconds = time.perf_counter() - t0
        acc = b.accuracy(reduced)
        kept = {s["name"]: f"{len(s['kept'])}/{s['channels']}" for s in plan.meta["reduction"]["streams"]}
        rows.append(_row("RON", t["params_after"], t["macs_after"], acc, b.finetune(reduced), base, seconds,
                         budget=budget, kept=kept))
        b.log(f"RON budget {budget}: MACs /{rows[-1]['mac_reduction']:.2f}, acc {acc:.3f} -> "
              f"{rows[-1]['accuracy_finetuned']:.3f}")
        for method, label in (("tucker2", "RON + Tucker-2"), ("cp3", "RON + CP-3")):
            t0 = time.perf_counter()
            net, plan = b.fw.reduce(b.fresh(), "ron", calibration=b.calib_ron, flop_budget=budget, seed=0)
            tplan = with_reduction(b.tensor(net, method, b.args.tensor_ratio), plan)
            seconds = time.perf_counter() - t0
            tt = tplan.totals
            acc = b.accuracy(net)
            rows.append(_row(label, tt["params_after"], tt["macs_after"], acc, b.finetune(net), base, seconds,
                             budget=budget, decomposed=len(tplan.decomposed())))
            b.log(f"{label} budget {budget}: MACs /{rows[-1]['mac_reduction']:.2f}, acc {acc:.3f} -> "
                  f"{rows[-1]['accuracy_finetuned']:.3f}")
    return rows


def run_asnet(b: Bench, base: dict) -> list:
    rows = []
    for cut in b.args.cuts:
        for dim in b.args.dims:
            t0 = time.perf_counter()
            net, plan = b.fw.reduce(b.fresh(), "asnet", calibration=b.calib_asnet, cut=cut, dim=dim, seed=0)
            rec = plan.meta["reduction"]
            seconds = time.perf_counter() - t0
            acc = b.accuracy(net)
            t = rec["totals"]
            rows.append(_row(f"ASNet {cut} r={dim}", t["params_after"], t["macs_after"], acc, b.finetune(net), base,
                             seconds, cut=rec["cut"], dim=dim, features=rec["head"]["features"],
                             fit_residual=rec["head"]["residual"]))
            b.log(f"ASNet cut {cut} r={dim}: params /{rows[-1]['param_reduction']:.2f}, acc {acc:.3f} -> "
                  f"{rows[-1]['accuracy_finetuned']:.3f}")
    for method, label in (("tucker2", "Tucker-2"), ("cp3", "CP-3")):
        for ratio in b.args.tensor_ratios:
            t0 = time.perf_counter()
            net = b.fresh()
            plan = b.tensor(net, method, ratio)
            seconds = time.perf_counter() - t0
            acc = b.accuracy(net)
            t = plan.totals
            rows.append(_row(f"{label} PR {ratio:g}", t["params_after"], t["macs_after"], acc, b.finetune(net), base,
                             seconds, ratio=ratio))
            b.log(f"{label} PR {ratio:g}: params /{rows[-1]['param_reduction']:.2f}, acc {acc:.3f} -> "
                  f"{rows[-1]['accuracy_finetuned']:.3f}")
    return rows


def table(rows: list, base: dict) -> str:
    lines = ["| variant | params | MACs | params / | MACs / | accuracy | fine-tuned |", "|---|---|---|---|---|---|---|",
             f"| original | {base['params'] / 1e6:.3f}M | {base['macs'] / 1e6:.1f}M | 1.00 | 1.00 | "
             f"{base['accuracy']:.3f} | - |"]
    for r in rows:
        name = r["variant"] + (f" (budget {r['budget']:g})" if "budget" in r else "")
        lines.append(f"| {name} | {r['params'] / 1e6:.3f}M | {r['macs'] / 1e6:.1f}M | {r['param_reduction']:.2f} | "
                     f"{r['mac_reduction']:.2f} | {r['accuracy']:.3f} | {r['accuracy_finetuned']:.3f} |")
    return "\n".join(lines)


def plot(rows: list, base: dict, path: str, x_key: str, x_label: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    groups = {}
    for r in rows:
        key = r["variant"].split(" r=")[0].split(" PR ")[0]
        groups.setdefault(key, []).append(r)
    for k, (name, rs) in enumerate(groups.items()):
        rs = sorted(rs, key=lambda r: r[x_key])
        xs = [r[x_key] for r in rs]
        line, = ax.plot(xs, [r["accuracy_finetuned"] for r in rs], "o-", label=f"{name}, fine-tuned", color=f"C{k}")
        ax.plot(xs, [r["accuracy"] for r in rs], "x--", color=line.get_color(), alpha=0.6, label=f"{name}, before")
        if "dim" in rs[0]:
            for r in rs:
                ax.annotate(f"r={r['dim']}", (r[x_key], r["accuracy_finetuned"]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
    ax.axhline(base["accuracy"], color="k", lw=0.8, ls=":", label="original")
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (digits test)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", default="torch", choices=("torch", "mindspore"))
    p.add_argument("--out", required=True, help="output prefix (OUT.json, OUT.md, OUT_ron.png, OUT_asnet.png)")
    p.add_argument("--parts", default="ron,asnet")
    p.add_argument("--run", default=None, help="run directory of lrd demo/pipeline whose original/ weights to use")
    p.add_argument("--weights", default=None, help="cache of the trained original (written if missing)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--budgets", type=lambda s: [float(v) for v in s.split(",")], default=[0.6, 0.4, 0.25])
    p.add_argument("--cuts", type=lambda s: s.split(","), default=["layer2", "layer3", "layer4"])
    p.add_argument("--dims", type=lambda s: [int(v) for v in s.split(",")], default=[5, 20])
    p.add_argument("--tensor-ratio", type=float, default=2.0, help="PR ratio of Tucker-2/CP-3 after RON")
    p.add_argument("--tensor-ratios", type=lambda s: [float(v) for v in s.split(",")], default=[2.0, 4.0, 8.0])
    p.add_argument("--cp-iters", type=int, default=20, help="CPD iterations of CP-3 (plan cp_iters)")
    p.add_argument("--ron-samples", type=int, default=256)
    p.add_argument("--asnet-samples", type=int, default=512)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-lr", type=float, default=0.02)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    b = Bench(args)
    infos = b.fw.inspect(b.original, input_shape=SHAPE)
    from lrd_core.cost import layer_macs, layer_params
    base = {"params": sum(layer_params(i) for i in infos), "macs": sum(layer_macs(i) for i in infos),
            "accuracy": b.accuracy(b.original)}
    b.log(f"original: {base['params'] / 1e6:.3f}M params, {base['macs'] / 1e6:.1f}M MACs, accuracy "
          f"{base['accuracy']:.3f}")
    result = {"framework": args.framework, "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
              "model": "resnet18 cifar-stem width 32, digits 32x32", "original": base,
              "finetune": {"epochs": args.finetune_epochs, "lr_max": args.finetune_lr, "distill": DISTILL}}
    parts = args.parts.split(",")
    md = [f"original: {base['params'] / 1e6:.3f}M params, {base['macs'] / 1e6:.1f}M MACs, accuracy "
          f"{base['accuracy']:.3f}"]
    if "ron" in parts:
        result["ron"] = run_ron(b, base)
        plot(result["ron"], base, args.out + "_ron.png", "mac_reduction", "MAC reduction (original / reduced)",
             f"RON (+ Tucker-2/CP-3 PR {args.tensor_ratio:g}) on digits ResNet-18, {args.framework}")
        md += ["", "RON", "", table(result["ron"], base)]
    if "asnet" in parts:
        result["asnet"] = run_asnet(b, base)
        plot(result["asnet"], base, args.out + "_asnet.png", "param_reduction",
             "parameter reduction (original / reduced)", f"ASNet vs tensor methods on digits ResNet-18, "
                                                          f"{args.framework}")
        md += ["", "ASNet", "", table(result["asnet"], base)]
    result["seconds_total"] = round(time.perf_counter() - t0, 1)
    stem = args.out + (f"_{parts[0]}" if len(parts) == 1 else "")      # one part: OUT_ron.json / OUT_asnet.json
    with open(stem + ".json", "w") as fh:
        json.dump(result, fh, indent=1)
    with open(stem + ".md", "w") as fh:
        fh.write("\n".join(md) + "\n")
    print("\n".join(md))
    b.log(f"done in {result['seconds_total']:.0f}s; wrote {stem}.json/.md and PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
