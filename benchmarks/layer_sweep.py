"""Time vs rank for one layer shape (default 3x3 512->512 at 14x14 and 7x7), original vs Tucker-2
(or SVD for ``--kernel 1``), in both frameworks; JSON, markdown and a PNG per framework marking the
crossover rank and the latency steps::

    python benchmarks/layer_sweep.py --device CPU --threads 1
    python benchmarks/layer_sweep.py --device Ascend --frameworks mindspore
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="CPU")
    p.add_argument("--frameworks", default="torch,mindspore")
    p.add_argument("--cin", type=int, default=512)
    p.add_argument("--cout", type=int, default=512)
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--hw", default="14,7")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ranks", default="16:512:16")
    p.add_argument("--phases", default="infer,train")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    p.add_argument("--tag", default="", help="suffix of the result file names (e.g. fine)")
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    for fw in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        tag = f"_{args.tag}" if args.tag else ""
        stem = os.path.join(args.out_dir, f"sweep_{args.cin}x{args.cout}_k{args.kernel}{tag}_{args.device.lower()}_{fw}")
        cmd = ["lrd", "bench", "layer", "--framework", fw, "--device", args.device, "--cin", str(args.cin),
               "--cout", str(args.cout), "--kernel", str(args.kernel), "--hw", args.hw, "--batch", str(args.batch),
               "--ranks", args.ranks, "--phases", args.phases, "--repeat", str(args.repeat),
               "--out", stem + ".json", "--markdown", stem + ".md", "--plot", stem + ".png"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("$ " + " ".join(cmd), flush=True)
        code = subprocess.call(cmd)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
