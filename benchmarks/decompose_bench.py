"""Decomposition time of every planned ResNet-50 layer: lrd's factorizations vs tensorly, side by side.

Both run on the same weights and ranks in one process, interleaved (lrd, tensorly, lrd, ...), and
the median wall time of each full pass is reported with the mean relative reconstruction error.
Also reports the max abs difference between MindSpore and torch on the compressed ResNet-50.

    python benchmarks/decompose_bench.py --mode vanilla --ratio 3 --rank-multiple 32 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import lrd_mindspore  # noqa: F401  (sets the oneDNN ISA cap before mindspore loads)
import numpy as np
import tensorly as tl
from tensorly.decomposition import partial_tucker

import lrd_torch
from lrd_core.factorize import compose, factorize_layer


def lrd_pass(plan, weights):
    out = {}
    for lp in plan.decomposed():
        out[lp.name] = compose(factorize_layer(lp.info, lp.method, lp.ranks, weights[lp.name],
                                               tucker_iters=plan.config.tucker_iters))
    return out


def tensorly_pass(plan, weights):
    out = {}
    for lp in plan.decomposed():
        w = weights[lp.name]
        if lp.method == "tucker2":
            (core, factors), _ = partial_tucker(tl.tensor(w), rank=list(lp.ranks), modes=[0, 1], init="svd")
            out[lp.name] = tl.tenalg.multi_mode_dot(core, factors, modes=[0, 1])
        else:
            m = w.reshape(w.shape[0], -1)
            u, s, vt = tl.svd_interface(tl.tensor(m), n_eigenvecs=lp.ranks[0])
            out[lp.name] = ((u * s) @ vt).reshape(w.shape)
    return out


def rel_errors(approx, weights):
    return float(np.mean([np.linalg.norm(approx[k].reshape(weights[k].shape) - weights[k])
                          / np.linalg.norm(weights[k]) for k in approx]))


def parity(plan_kwargs, size=64, seed=0):
    import mindspore as ms
    import torch
    t_model = lrd_torch.models.resnet50(seed=seed).eval()
    rng = np.random.default_rng(seed)
    arrays = lrd_torch.state_to_numpy(t_model)
    for k, v in arrays.items():          # BatchNorm statistics of a trained net, roughly
        if k.endswith("running_var"):
            arrays[k] = rng.uniform(0.5, 1.5, v.shape).astype(v.dtype)
        elif k.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn3.bias")):
            arrays[k] = (0.1 * rng.standard_normal(v.shape)).astype(v.dtype)
    lrd_torch.load_numpy(t_model, arrays)
    m_model = lrd_mindspore.models.resnet50()
    lrd_mindspore.load_numpy(m_model, arrays)
    plan = lrd_torch.plan(t_model, input_shape=(1, 3, size, size), **plan_kwargs)
    lrd_torch.compress(t_model, plan)
    lrd_mindspore.compress(m_model, plan)
    x = np.random.default_rng(seed).standard_normal((4, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        a = t_model(torch.from_numpy(x)).numpy()
    m_model.set_train(False)
    b = m_model(ms.Tensor(x)).asnumpy()
    return float(np.abs(a - b).max()), float(np.abs(a).max())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", default="vanilla")
    p.add_argument("--ratio", type=float, default=3.0)
    p.add_argument("--rank-multiple", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    kw = dict(mode=args.mode, rank_selection="pr", ratio=args.ratio, rank_multiple=args.rank_multiple)
    model = lrd_torch.models.resnet50(seed=0)
    plan = lrd_torch.plan(model, input_shape=(1, 3, 224, 224), **kw)
    arrays = lrd_torch.state_to_numpy(model)
    weights = {lp.name: arrays[lp.name + ".weight"] for lp in plan.decomposed()}
    n_tucker = sum(lp.method == "tucker2" for lp in plan.decomposed())
    print(f"ResNet-50 {args.mode} PR {args.ratio}x q={args.rank_multiple}: {len(weights)} layers "
          f"({n_tucker} Tucker-2, {len(weights) - n_tucker} SVD)")
    times = {"lrd": [], "tensorly": []}
    errs = {}
    for k in range(args.repeats):
        for name, fn in (("lrd", lrd_pass), ("tensorly", tensorly_pass)):
            t0 = time.perf_counter()
            approx = fn(plan, weights)
            times[name].append(time.perf_counter() - t0)
            errs[name] = rel_errors(approx, weights)
            print(f"  run {k + 1} {name:<9} {times[name][-1]:6.2f} s  mean rel. error {errs[name]:.4f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    diff, scale = parity(kw)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "plan": kw, "layers": len(weights), "seconds_lrd": med["lrd"], "seconds_tensorly": med["tensorly"],
              "speedup": med["tensorly"] / med["lrd"], "rel_error_lrd": errs["lrd"],
              "rel_error_tensorly": errs["tensorly"], "ms_vs_torch_max_abs_diff": diff,
              "ms_vs_torch_logit_scale": scale}
    print(f"median: lrd {med['lrd']:.2f} s, tensorly partial_tucker/svd {med['tensorly']:.2f} s "
          f"-> {result['speedup']:.2f}x; MindSpore vs torch on the compressed net: max abs diff {diff:.2e} "
          f"(logits up to {scale:.2f})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
