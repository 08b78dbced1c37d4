"""Vision Transformer figures, both frameworks: the model benchmark at 224 and the digits recipe.

    python benchmarks/vit_bench.py model --model vit_tiny --threads 1            # ViT-Ti/16 at 224
    python benchmarks/vit_bench.py model --model vit_b_16 --threads 1 --repeat 3 # ViT-B/16 at 224
    python benchmarks/vit_bench.py digits --framework torch --out runs/vit_digits_torch.json

``model``: ``lrd bench model`` once per framework (each in its own process): original, ``attn``, ``mlp``,
``all`` at PR 2x and ``auto`` (timed on the device, verified on the whole network), plus the training
step of ``all`` and ``auto`` with sequential freezing (every phase timed interleaved with the original, the
ratio averaged over one cycle of phases). Writes ``results/<model>_cpu_<framework>.{json,md,png}``.

``digits``: the ``lrd demo --model vit_tiny`` recipe (AdamW, cosine, label smoothing; 4 blocks, 8x8
patches) -> accuracy of the original, right after decomposition and after fine-tuning with
sequential freezing; then, in one process, training steps of the original, of the compressed network
without freezing and of each sequential-freezing phase, interleaved in rounds (the trainer's own
AdamW step, MindSpore in GRAPH mode): the ratio original / mean phase step.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # see lrd_recipe/runtime.py


def model(args) -> int:
    os.makedirs(args.out_dir, exist_ok=True)
    tables = []
    for fw in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        stem = os.path.join(args.out_dir, f"{args.model}_cpu_{fw}")
        cmd = ["lrd", "bench", "model", "--framework", fw, "--model", args.model, "--device", "CPU",
               "--batch", str(args.batch), "--input-size", str(args.input_size), "--modes", args.modes,
               "--ratio", str(args.ratio), "--rank-multiple", str(args.rank_multiple), "--repeat", str(args.repeat),
               "--sequential", args.sequential, "--search-radius", str(args.search_radius), "--cold",
               "--out", stem + ".json", "--markdown", stem + ".md", "--plot", stem + ".png"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("$ " + " ".join(cmd), flush=True)
        t0 = time.time()
        code = subprocess.call(cmd)
        if code != 0:
            print(f"{fw}: lrd bench model failed (exit {code})", file=sys.stderr)
            return code
        with open(stem + ".md") as fh:
            tables.append(f"$ {' '.join(cmd)}\n# {time.time() - t0:.0f} s, load average "
                          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}\n\n" + fh.read())
    print("\n\n".join(tables))
    return 0


# ------------------------------------------------------------------------------------ digits
def _step_runners(rt, orig, comp, plan, x, y, cfg):
    """``{name: step()}``: the original, the compressed net unfrozen and each sequential phase."""
    from lrd_core import freezing
    from lrd_recipe.options import optimizer_options

    phases = {"original": (orig, None), "compressed": (comp, frozenset())}
    for k in range(freezing.cycle_length(plan, "sequential")):
        phases[f"phase{k}"] = (comp, freezing.frozen_parameters(plan, "sequential", k))
    opt_cfg = optimizer_options(cfg)
    if rt.name == "mindspore":
        import mindspore as ms
        from mindspore import nn
        from lrd_mindspore.train import PhaseSteps

        ms.set_context(mode=ms.GRAPH_MODE)
        steps = {id(net): PhaseSteps(net, nn.CrossEntropyLoss(label_smoothing=cfg.label_smooth_factor),
                                     np.full(100000, 1e-4, np.float32), cfg.momentum, cfg.weight_decay, opt_cfg)
                 for net in (orig, comp)}
        xt, yt = ms.Tensor(x), ms.Tensor(y)

        def cell_step(net, frozen):
            def go():
                cell = steps[id(net)].get(frozen or frozenset())     # sets this phase's requires_grad flags
                return float(cell(xt, yt)[0].asnumpy())
            return go
        return {name: cell_step(net, frozen) for name, (net, frozen) in phases.items()}
    import torch
    from lrd_torch import set_frozen
    from lrd_torch.optim import build_optimizer

    opts = {id(net): build_optimizer(net, opt_cfg, lr=1e-4) for net in (orig, comp)}
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()

    def make(net, frozen):
        def go():
            if frozen is not None:
                set_frozen(net, frozen)
            net.train()
            opt = opts[id(net)]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(xt), yt, label_smoothing=cfg.label_smooth_factor)
            loss.backward()
            opt.step()
            return loss.item()
        return go
    return {name: make(net, frozen) for name, (net, frozen) in phases.items()}


def digits(args) -> dict:
    from lrd_recipe import pipeline
    from lrd_recipe.demo import config
    from lrd_recipe.runtime import Runtime

    out = args.run_dir or tempfile.mkdtemp(prefix="lrd-vit-")
    cfg = config(args.framework, out, model="vit_tiny", ratio=args.ratio)
    cfg.progress, cfg.resume = "false", False
    t0 = time.perf_counter()
    summary = pipeline.run(cfg, log=print if args.verbose else (lambda *_: None), export=False)
    seconds = time.perf_counter() - t0
    rt = Runtime(cfg)
    train_src, _ = rt.sources()
    orig, comp = rt.model(), rt.model()
    plan = rt.fw.plan(comp, input_shape=rt.input_shape, **pipeline.plan_options(cfg))
    rt.fw.compress(comp, plan)
    x, y = train_src.x[:cfg.batch_size], train_src.y[:cfg.batch_size]
    run = _step_runners(rt, orig, comp, plan, x, y, cfg)
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
    phases = [v for k, v in med.items() if k.startswith("phase")]
    return {"framework": rt.name, "ratio": args.ratio, "batch": cfg.batch_size, "date": time.strftime("%Y-%m-%d %H:%M"),
            "accuracy_original": summary["accuracy_original"], "accuracy_decomposed": summary["accuracy_decomposed"],
            "accuracy_finetuned": summary["accuracy_finetuned"],
            "accuracy_loss_pp": 100 * (summary["accuracy_original"] - summary["accuracy_finetuned"]),
            "params_original": summary["params_original"], "params_compressed": summary["params_compressed"],
            "pipeline_seconds": round(seconds, 1), "step_ms": med,
            "speedup_sequential": med["original"] / statistics.mean(phases),
            "speedup_unfrozen": med["original"] / med["compressed"],
            "rounds": args.rounds, "steps_per_round": args.steps, "load_average": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("model")
    m.add_argument("--model", default="vit_tiny")
    m.add_argument("--frameworks", default="torch,mindspore")
    m.add_argument("--batch", type=int, default=8)
    m.add_argument("--input-size", type=int, default=224)
    m.add_argument("--modes", default="original,attn,mlp,all,auto")
    m.add_argument("--sequential", default="all,auto")
    m.add_argument("--ratio", type=float, default=2.0)
    m.add_argument("--rank-multiple", type=int, default=32)
    m.add_argument("--search-radius", type=int, default=1)
    m.add_argument("--threads", type=int, default=None)
    m.add_argument("--repeat", type=int, default=5)
    m.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    d = sub.add_parser("digits")
    d.add_argument("--framework", default="torch", choices=("torch", "mindspore"))
    d.add_argument("--ratio", type=float, default=3.0)
    d.add_argument("--rounds", type=int, default=5)
    d.add_argument("--steps", type=int, default=3)
    d.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    d.add_argument("--run-dir", default=None)
    d.add_argument("--verbose", action="store_true")
    d.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.what == "model":
        return model(args)
    if args.threads and args.framework == "torch":
        import torch
        torch.set_num_threads(args.threads)
    result = digits(args)
    print(json.dumps(result, indent=1))
    if args.out:
        from lrd_core.trainstate import write_json
        write_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
