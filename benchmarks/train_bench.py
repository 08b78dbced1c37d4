"""Training-pipeline figures on the embedded digits data (CIFAR-stem ResNet-18), both frameworks.

    python benchmarks/train_bench.py accuracy --framework mindspore --out runs/bench_acc_ms.json
    python benchmarks/train_bench.py freeze-speed --framework torch --out runs/bench_freeze_torch.json

``accuracy``: train the original once (the demo's settings), then for mode3 PR 2x and 3x report the
accuracy right after decomposition, after BatchNorm re-calibration and after fine-tuning (also PR 2x
fine-tuned without re-calibration and without freezing, to show what each contributes).

``freeze-speed``: one compressed network, train steps with no freezing and with each sequential
freezing phase, measured interleaved in rounds in one process; the ratio is the mean phase step
time over the unfrozen step time (median of each).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # see lrd_torch/backend.py

from lrd_recipe import config as recipe, pipeline  # noqa: E402
from lrd_recipe.demo import DEMO  # noqa: E402


def _config(framework: str, out: str, **kw):
    values = {**DEMO, "framework": framework, "output_path": out, "progress": "false", "resume": False}
    values.update(kw)
    return recipe.namespace(**values)


def accuracy(args) -> dict:
    from lrd_recipe.runtime import Runtime

    out = tempfile.mkdtemp(prefix="lrd-bench-")
    cfg = _config(args.framework, out, width=args.width, finetune_epoch_size=args.finetune_epochs)
    rt = Runtime(cfg)
    log = print if args.verbose else (lambda *_: None)
    train_src, eval_src = rt.sources()
    t0 = time.perf_counter()
    model, orig = pipeline.train_original(rt, train_src, eval_src, log)
    weights = rt.fw.state_to_numpy(model)
    rows = []
    variants = [(2.0, 10, "sequential"), (3.0, 10, "sequential"), (2.0, 0, "sequential"), (2.0, 10, "none")]
    for ratio, recal, freeze in variants:
        cfg.compression_ratio, cfg.bn_recalibration_batches, cfg.freeze = ratio, recal, freeze
        cfg.output_path = os.path.join(out, f"pr{ratio:g}_recal{recal}_{freeze}")
        net = rt.model()
        rt.fw.load_numpy(net, weights)
        plan, dec = pipeline.decompose(rt, net, train_src, eval_src, log)
        ft = pipeline.finetune(rt, net, plan, train_src, eval_src, cfg.finetune_epoch_size, 1, log)
        t = plan.totals
        row = {"ratio": ratio, "bn_recalibration_batches": recal, "freeze": freeze,
               "accuracy_original": orig["accuracy"], "accuracy_decomposed": dec["accuracy_decomposed"],
               "accuracy_recalibrated": dec["accuracy_recalibrated"], "accuracy_finetuned": ft["accuracy_finetuned"],
               "params_ratio": t["params_before"] / t["params_after"], "macs_ratio": t["macs_before"] / t["macs_after"],
               "layers_decomposed": len(plan.decomposed())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"framework": args.framework, "width": args.width, "epochs": cfg.epoch_size,
            "finetune_epochs": cfg.finetune_epoch_size, "rows": rows, "seconds": time.perf_counter() - t0}


def _torch_step(rt, model, x, y):
    import torch

    opt = rt._bench_opt
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y).long())
    loss.backward()
    opt.step()
    return float(loss)


def freeze_speed(args) -> dict:
    from lrd_core import freezing
    from lrd_recipe.runtime import Runtime

    cfg = _config(args.framework, tempfile.mkdtemp(prefix="lrd-bench-"), width=args.width,
                  compression_ratio=args.ratio)
    rt = Runtime(cfg)
    train_src, _ = rt.sources()
    net = rt.model()
    plan = rt.fw.plan(net, input_shape=rt.input_shape, **pipeline.plan_options(cfg))
    rt.fw.compress(net, plan)
    x, y = train_src.x[:cfg.batch_size], train_src.y[:cfg.batch_size]
    n_phases = freezing.cycle_length(plan, "sequential")
    configs = {"none": frozenset()}
    for k in range(n_phases):
        configs[f"phase{k}"] = freezing.frozen_parameters(plan, "sequential", k)
    if rt.name == "mindspore":
        import mindspore as ms
        from mindspore import nn
        from lrd_mindspore.train import PhaseSteps

        steps = PhaseSteps(net, nn.CrossEntropyLoss(), np.full(100000, 0.01, np.float32), 0.9, 1e-4)
        cells = {name: steps.get(frozen) for name, frozen in configs.items()}
        xt, yt = ms.Tensor(x), ms.Tensor(y)
        run = {name: (lambda c=c: float(c(xt, yt)[0].asnumpy())) for name, c in cells.items()}
    else:
        from lrd_torch import set_frozen
        from lrd_torch.train import make_optimizer

        net.train()
        rt._bench_opt = make_optimizer(net, lr=0.01)

        def make(frozen):
            def go():
                set_frozen(net, frozen)
                return _torch_step(rt, net, x, y)
            return go
        run = {name: make(frozen) for name, frozen in configs.items()}
    for fn in run.values():                       # compile / warm up
        fn()
        fn()
    times = {name: [] for name in run}
    for _ in range(args.rounds):                  # interleaved rounds
        for name, fn in run.items():
            fn()
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - t) / args.steps)
    med = {name: 1000 * statistics.median(v) for name, v in times.items()}
    phases = [med[f"phase{k}"] for k in range(n_phases)]
    return {"framework": rt.name, "width": args.width, "ratio": args.ratio, "batch": cfg.batch_size,
            "step_ms": med, "sequential_over_none": statistics.mean(phases) / med["none"],
            "per_phase_ratio": {f"phase{k}": med[f"phase{k}"] / med["none"] for k in range(n_phases)},
            "phase_trains": {f"phase{k}": freezing.describe_phase(plan, "sequential", k) for k in range(n_phases)},
            "rounds": args.rounds, "steps_per_round": args.steps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("accuracy", "freeze-speed"))
    p.add_argument("--framework", default="mindspore", choices=("mindspore", "torch"))
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--ratio", type=float, default=2.0, help="freeze-speed: PR ratio")
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.threads and args.framework == "torch":
        import torch
        torch.set_num_threads(args.threads)
    result = (accuracy if args.what == "accuracy" else freeze_speed)(args)
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if args.out:
        from lrd_core.trainstate import write_json
        write_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
