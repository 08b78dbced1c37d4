"""``lrd compress``: decompose a model by a plan; write DIR/plan.json + weights."""
from __future__ import annotations

import os
import sys
import time

from lrd_core.errors import MismatchError
from lrd_core.frameworks import adapter
from lrd_core.io import check_output_dir
from lrd_core.layout import PLAN_FILE, WEIGHT_FILES
from lrd_core.plan import Plan

from .aware import add_aware_args
from .common import add_model_args, build_model, progress_printer


def add(sub) -> None:
    p = sub.add_parser("compress", help="decompose a model by a plan; write DIR/plan.json + weights")
    add_model_args(p)
    p.add_argument("--plan", required=True, help="plan.json from `lrd plan`")
    p.add_argument("--out", required=True, help="output folder (written all at once; a folder holding files lrd "
                                                  "did not write is refused)")
    p.add_argument("--force", action="store_true",
                   help="write into an existing folder beside other files (only lrd's own files are replaced)")
    add_aware_args(p, plan=False)      # data-aware plans: the calibration data, when its statistics are not cached
    p.set_defaults(func=run)


def load_plan_file(path: str) -> Plan:
    if os.path.isdir(path):
        raise MismatchError(f"plan {path} is a folder, not a plan.json file (`lrd plan --out` writes one)")
    if not os.path.isfile(path):
        raise MismatchError(f"plan file {path} does not exist; make one with `lrd plan`")
    return Plan.from_json(path)


def run(args) -> int:
    inputs = [args.plan, args.checkpoint]
    check_output_dir(args.out, inputs, args.force, writes=[PLAN_FILE, WEIGHT_FILES[args.framework]])
    plan = load_plan_file(args.plan)
    fw = adapter(args.framework)
    defaults = plan.meta.get("model_kwargs", {})
    model = build_model(fw, args, defaults)
    if plan.meta.get("checkpoint") and not args.checkpoint:
        print(f"warning: the plan was made from {plan.meta['checkpoint']} but no --checkpoint was given: "
              f"decomposing freshly initialised weights", file=sys.stderr)
    t0 = time.perf_counter()
    extra = {}
    if args.calibration:
        from lrd_data import sources
        shape = plan.meta.get("input_shape") or [1, 3, 224, 224]
        source, _ = sources.open_source(args.calibration, shape[-1], "calibration")
        extra["calibration"] = list(sources.batches(source, args.calibration_batch_size, args.calibration_batches))
    fw.compress(model, plan, progress=progress_printer(), **extra)
    seconds = time.perf_counter() - t0
    fw.save(model, plan, args.out, force=args.force, inputs=inputs)
    print(plan.summary())
    print(f"decomposed {len(plan.decomposed())} layers in {seconds:.1f}s; wrote {args.out}/plan.json and weights")
    return 0
