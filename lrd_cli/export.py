"""``lrd export``: a compressed checkpoint + plan -> MindIR or ONNX, checked against the live network."""
from __future__ import annotations

import os

from lrd_core.errors import ConfigError, MismatchError

from lrd_core.frameworks import adapter
from lrd_core.io import check_output_file
from lrd_core.plan import Plan

from .common import input_shape


def add(sub) -> None:
    p = sub.add_parser("export", help="export a compressed model (DIR from `lrd compress`) to MindIR or ONNX; "
                                      "the file is reloaded and compared with the live network")
    p.add_argument("--framework", default="mindspore", choices=("mindspore", "torch"),
                   help="framework that runs the live network (MindIR always goes through MindSpore)")
    p.add_argument("--model", required=True, help="architecture the checkpoint was made from, e.g. resnet50")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--compressed", metavar="DIR", help="directory with plan.json + model.ckpt/.pt")
    src.add_argument("--original", action="store_true",
                     help="export the uncompressed model instead (the baseline of `lrd bench lite`)")
    p.add_argument("--checkpoint", default=None, help="with --original: weights (.ckpt/.pt/.npz)")
    p.add_argument("--format", required=True, type=str.upper, choices=("MINDIR", "ONNX"),
                   help="MINDIR (MindSpore, Ascend 310 via converter_lite) or ONNX")
    p.add_argument("--out", required=True, help="output file (.mindir / .onnx)")
    p.add_argument("--stem", default=None, choices=("imagenet", "cifar"),
                   help="imagenet or cifar stem (default: the plan's)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the plan's)")
    p.add_argument("--width", type=int, default=None, help="base channel width (default: the plan's)")
    p.add_argument("--input-size", type=int, default=None, help="input height = width (default: the plan's)")
    p.add_argument("--batch", type=int, default=1, help="batch of the exported input (static) / of the check")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--dynamic-batch", dest="dynamic_batch", action="store_true", default=None,
                       help="symbolic batch dimension (default for ONNX)")
    batch.add_argument("--static-batch", dest="dynamic_batch", action="store_false",
                       help="fixed batch dimension (default for MindIR)")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip reloading and comparing")
    p.set_defaults(func=run)


def _load(framework: str, args, plan_meta: dict):
    fw = adapter(framework)
    kwargs = dict(plan_meta.get("model_kwargs", {}))
    for key in ("stem", "num_classes", "width"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    model = fw.models.create_model(args.model, **kwargs)
    if args.compressed:
        return fw.load(args.compressed, model)
    if args.checkpoint:
        fw.load_checkpoint(model, args.checkpoint)
    return model


def run(args) -> int:
    if args.batch < 1:
        raise ConfigError("--batch must be >= 1")
    if args.checkpoint and args.compressed:
        raise ConfigError("--checkpoint goes with --original; a --compressed directory holds its own weights")
    check_output_file(args.out, [args.compressed, args.checkpoint])
    meta, plan_path = {}, None
    if args.compressed:
        plan_path = os.path.join(args.compressed, "plan.json")
        if not os.path.isfile(plan_path):
            raise MismatchError(f"{args.compressed} holds no plan.json: not a compressed-model directory "
                                f"(make one with `lrd compress`)")
        meta = Plan.from_json(plan_path).meta          # validated: a broken plan fails here, in one line
    shape = list(meta.get("input_shape") or input_shape(args))
    if args.input_size is not None:
        shape[2:] = list(input_shape(args)[2:])
    shape[0] = args.batch
    dynamic = args.dynamic_batch if args.dynamic_batch is not None else args.format == "ONNX"
    framework = "mindspore" if args.format == "MINDIR" else args.framework
    model = _load(framework, args, meta)
    report = adapter(framework).export(model, args.out, input_shape=tuple(shape), format=args.format,
                             dynamic_batch=dynamic, check=args.check)
    for note in report.get("workarounds", []):
        print(f"  workaround: {note}")
    checked = (f"; reloaded and compared at batch {report['checked_batches']}: max abs diff "
               f"{report['max_abs_diff']:.2e}") if args.check else "; not checked"
    source = f"plan {plan_path}" if plan_path else "uncompressed"
    print(f"exported {args.model} ({framework}, {source}) to {report['path']} as {report['format']} "
          f"({'dynamic' if dynamic else 'static'} batch, {report['bytes'] / 1e6:.1f} MB){checked}")
    return 0
