"""ResNet original vs compression modes vs ``auto`` in both frameworks, one device.

Runs ``lrd bench model`` once per framework (each in its own process, so thread settings and
compiled graphs never mix), then writes a combined JSON, a markdown table and one plot per
framework. Same code on every device::

    python benchmarks/model_bench.py --device CPU --threads 1            # this machine
    python benchmarks/model_bench.py --device GPU --frameworks torch,mindspore
    python benchmarks/model_bench.py --device Ascend --frameworks mindspore --batch 32
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="CPU")
    p.add_argument("--frameworks", default="torch,mindspore")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--modes", default="original,vanilla,mode1,mode2,mode3,mode4,mode5,auto")
    p.add_argument("--ratio", type=float, default=3.0)
    p.add_argument("--rank-multiple", type=int, default=32)
    p.add_argument("--budget", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--memory-repeat", type=int, default=3, help="fresh processes per variant for peak memory")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    p.add_argument("--tag", default=None, help="file name stem (default MODEL_DEVICE)")
    args = p.parse_args(argv)
    tag = args.tag or f"{args.model}_{args.device.lower()}"
    os.makedirs(args.out_dir, exist_ok=True)
    merged, tables = {"date": time.strftime("%Y-%m-%d %H:%M"), "runs": []}, []
    for fw in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        stem = os.path.join(args.out_dir, f"{tag}_{fw}")
        cmd = ["lrd", "bench", "model", "--framework", fw, "--model", args.model, "--device", args.device,
               "--batch", str(args.batch), "--input-size", str(args.input_size), "--modes", args.modes,
               "--ratio", str(args.ratio), "--rank-multiple", str(args.rank_multiple), "--budget", str(args.budget),
               "--repeat", str(args.repeat), "--out", stem + ".json", "--markdown", stem + ".md",
               "--plot", stem + ".png", "--memory", "--memory-repeat", str(args.memory_repeat), "--cold"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("$ " + " ".join(cmd), flush=True)
        t0 = time.time()
        code = subprocess.call(cmd)
        if code != 0:
            print(f"{fw}: lrd bench model failed (exit {code})", file=sys.stderr)
            return code
        with open(stem + ".json") as fh:
            run = json.load(fh)
        run.pop("plans", None)
        run["wall_seconds"] = round(time.time() - t0, 1)
        merged["runs"].append(run)
        with open(stem + ".md") as fh:
            tables.append(f"$ {' '.join(cmd)}\n\n" + fh.read())
    with open(os.path.join(args.out_dir, tag + ".json"), "w") as fh:
        json.dump(merged, fh, indent=1)
    with open(os.path.join(args.out_dir, tag + ".md"), "w") as fh:
        fh.write("\n\n".join(tables))
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
