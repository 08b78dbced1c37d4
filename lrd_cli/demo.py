"""``lrd demo``: train -> compress -> fine-tune -> evaluate on the embedded digits data, then check
that the same plan applied in the other framework on the converted weights gives the same outputs."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from lrd_core.io import atomic_file
from lrd_core.schedule import linear

from .common import adapter

OTHER = {"mindspore": "torch", "torch": "mindspore"}


def add(sub) -> None:
    p = sub.add_parser("demo", help="train, compress, fine-tune and evaluate a small ResNet-18 on the "
                                    "embedded digits data (a few minutes on 2 CPU cores)")
    p.add_argument("--framework", default="mindspore", choices=("mindspore", "torch"))
    p.add_argument("--out", default="runs/demo", help="output directory (summary.json, plan.json, compressed/)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs of the original net")
    p.add_argument("--finetune-epochs", type=int, default=1, help="fine-tuning epochs after decomposition")
    p.add_argument("--width", type=int, default=32, help="ResNet-18 base width (64 = standard)")
    p.add_argument("--mode", default="mode3")
    p.add_argument("--ratio", type=float, default=2.0)
    p.add_argument("--rank-multiple", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _fw_tools(name: str):
    fw = adapter(name)
    if name == "mindspore":
        import mindspore as ms
        ms.set_context(mode=ms.GRAPH_MODE)
        from lrd_mindspore import train
    else:
        from lrd_torch import train
    return fw, train


def _count_params(fw, model) -> int:
    from lrd_core.naming import is_num_batches
    return int(sum(v.size for k, v in fw.state_to_numpy(model).items() if not is_num_batches(k)))


def run(args) -> int:
    from lrd_data import load_digits

    t_start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    train_data, test_data = load_digits(size=32, seed=args.seed)
    fw, tr = _fw_tools(args.framework)
    batch = 64
    steps = len(train_data) // batch
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=args.width, seed=args.seed)
    log(f"[1/5] training ResNet-18 (width {args.width}, CIFAR stem) on digits 32x32 in {args.framework}: "
        f"{args.epochs} epochs x {steps} steps")
    tr.fit(model, train_data, linear(steps * args.epochs, 0.05, warmup_steps=steps // 2), args.epochs,
           batch_size=batch, seed=args.seed, log=log)
    acc_orig = tr.evaluate(model, test_data)
    original = fw.state_to_numpy(model)
    params_orig = _count_params(fw, model)
    log(f"      accuracy {acc_orig:.4f}")

    log(f"[2/5] planning {args.mode}, PR {args.ratio}x, ranks x{args.rank_multiple}")
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode=args.mode, rank_selection="pr", ratio=args.ratio,
                   final_dense_ratio=1.3, rank_multiple=args.rank_multiple)
    plan.meta.update({"model": "resnet18", "model_kwargs": {"num_classes": 10, "stem": "cifar", "width": args.width}})
    t0 = time.perf_counter()
    fw.compress(model, plan)
    seconds_decompose = time.perf_counter() - t0
    acc_dec = tr.evaluate(model, test_data)
    log(plan.summary())
    log(f"      decomposed {len(plan.decomposed())} layers in {seconds_decompose:.2f}s; accuracy {acc_dec:.4f}")

    other_name = OTHER[args.framework]
    log(f"[3/5] parity: same plan in {other_name} on the converted weights")
    other, other_tr = _fw_tools(other_name)
    twin = other.models.resnet18(num_classes=10, stem="cifar", width=args.width)
    other.load_numpy(twin, original)
    other.compress(twin, plan)
    probe = test_data.x[:64]
    diff_decomposed = float(np.abs(tr.predict(model, probe) - other_tr.predict(twin, probe)).max())
    log(f"      max |{args.framework} - {other_name}| on 64 test images: {diff_decomposed:.2e}")

    log(f"[4/5] fine-tuning {args.finetune_epochs} epoch(s) at a lower peak LR")
    tr.fit(model, train_data, linear(steps * args.finetune_epochs, 0.01, warmup_steps=steps // 4),
           args.finetune_epochs, batch_size=batch, seed=args.seed + 1, log=log)
    acc_ft = tr.evaluate(model, test_data)
    log(f"      accuracy {acc_ft:.4f}")

    log(f"[5/5] saving to {args.out}/compressed and reloading it in {other_name}")
    os.makedirs(args.out, exist_ok=True)
    compressed_dir = os.path.join(args.out, "compressed")
    fw.save(model, plan, compressed_dir)
    plan_path = plan.to_json(os.path.join(args.out, "plan.json"))
    reloaded = other.load(compressed_dir, other.models.resnet18(num_classes=10, stem="cifar", width=args.width))
    diff_finetuned = float(np.abs(tr.predict(model, probe) - other_tr.predict(reloaded, probe)).max())
    t = plan.totals
    summary = {
        "framework": args.framework, "model": "resnet18", "width": args.width, "data": "digits 32x32",
        "plan": os.path.abspath(plan_path), "compressed_dir": os.path.abspath(compressed_dir),
        "accuracy_original": acc_orig, "accuracy_decomposed": acc_dec, "accuracy_finetuned": acc_ft,
        "params_original": params_orig, "params_compressed": _count_params(fw, model),
        "macs_original": t["macs_before"], "macs_compressed": t["macs_after"],
        "layers_decomposed": len(plan.decomposed()), "seconds_decompose": seconds_decompose,
        "parity_framework": other_name, "parity_max_abs_diff_decomposed": diff_decomposed,
        "parity_max_abs_diff_finetuned": diff_finetuned,
        "seconds_total": time.perf_counter() - t_start,
    }
    with atomic_file(os.path.join(args.out, "summary.json"), suffix=".json") as tmp:
        with open(tmp, "w") as fh:
            json.dump(summary, fh, indent=1)
    _print_table(summary)
    return 0


def _print_table(s: dict) -> None:
    rows = [("", "original", "compressed", "ratio"),
            ("accuracy", f"{s['accuracy_original']:.4f}",
             f"{s['accuracy_finetuned']:.4f} (right after decomposition {s['accuracy_decomposed']:.4f})", ""),
            ("params", f"{s['params_original']:,}", f"{s['params_compressed']:,}",
             f"{s['params_original'] / s['params_compressed']:.2f}x"),
            ("MACs (conv+dense)", f"{s['macs_original']:,}", f"{s['macs_compressed']:,}",
             f"{s['macs_original'] / s['macs_compressed']:.2f}x")]
    w = [max(len(r[c]) for r in rows) for c in range(4)]
    print()
    for r in rows:
        print("  ".join(v.ljust(x) for v, x in zip(r, w)))
    print(f"decomposition {s['seconds_decompose']:.2f}s, total {s['seconds_total']:.0f}s; "
          f"{s['framework']} vs {s['parity_framework']}: max abs diff {s['parity_max_abs_diff_decomposed']:.1e} "
          f"(decomposed), {s['parity_max_abs_diff_finetuned']:.1e} (fine-tuned, reloaded)")
