"""Re-measure the peak memory of the variants of an ``lrd bench model`` result (its saved plans),
median of several fresh processes per variant, and rewrite its JSON and markdown::

    python benchmarks/memory_bench.py benchmarks/results/resnet50_cpu_torch.json --repeat 3
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import import_module

from lrd_bench.output import write_json, write_text
from lrd_bench.model import memory_rows
from lrd_bench.report import model_markdown
from lrd_core.plan import Plan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("result", help="JSON written by `lrd bench model`")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    with open(args.result) as fh:
        result = json.load(fh)
    if result["framework"] == "mindspore":
        import lrd_mindspore  # noqa: F401  (before mindspore)
    lat = import_module("lrd_" + result["framework"]).latency
    plans = [Plan.from_dict(result["plans"][m]) if m in result.get("plans", {}) else None for m in result["modes"]]
    shape = (result["batch"], 3, result["input_size"], result["input_size"])
    memory_rows(lat, result["model"], result.get("model_kwargs", {}), plans, result["results"], shape, result["device"], result.get("threads"),
                args.repeat)
    result["memory_command"] = " ".join(["python"] + sys.argv)
    write_json(result, args.result)
    write_text(model_markdown(result), os.path.splitext(args.result)[0] + ".md")
    print(model_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
