"""``lrd bench model | layer | lite``: the command line of the benchmark engine :mod:`lrd_bench`.

* ``model``: original vs fixed modes vs ``auto`` for a ResNet or ViT — params, MACs, inference latency and
  throughput (batch 1 and B), training step, peak memory — as ratios measured side by side.
* ``layer``: time vs rank of one layer shape, original vs its factor chain (crossover and steps).
* ``lite``: MindIR files through MindSpore Lite (Ascend 310 inference).
"""
from __future__ import annotations

import os

from lrd_bench import BENCH_MODES, output
from lrd_core.errors import ConfigError
from lrd_core.options import add_option

from .common import add_architecture_args
from .common import device_type as _device


def add(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: `bench model` (modes vs auto), `bench layer` (time vs rank), "
                                     "`bench lite` (MindIR on MindSpore Lite / Ascend 310)")
    kinds = p.add_subparsers(dest="bench", required=True, metavar="KIND")
    _add_model(kinds)
    _add_layer(kinds)
    _add_lite(kinds)


def _common(p, framework=True) -> None:
    if framework:
        p.add_argument("--framework", default="mindspore", choices=("mindspore", "torch"),
                       help="framework that builds and times the networks")
    p.add_argument("--device", default="CPU", type=_device, help="CPU, GPU (CUDA) or Ascend")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (recorded in the result)")
    p.add_argument("--repeat", type=int, default=7,
                   help="timed rounds (median reported); bench model: per variant, each beside the original")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds (compilation, caches)")
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--markdown", default=None, help="also write a markdown table here")
    p.add_argument("--plot", default=None, help="also draw a PNG here")


def _add_model(kinds) -> None:
    p = kinds.add_parser("model", help="original vs compression modes vs auto on one device")
    _common(p)
    add_architecture_args(p)
    p.add_argument("--batch", type=int, default=8, help="batch B of the throughput and training-step timings")
    p.add_argument("--input-size", type=int, default=224, help="input height = width (a ViT is built for it)")
    p.add_argument("--modes", default="original,vanilla,mode3,auto",
                   help=f"comma-separated, from {','.join(BENCH_MODES)}")
    add_option(p, "ratio", help="per-layer PR ratio of every mode (and auto's estimate)")
    add_option(p, "final_dense_ratio")
    add_option(p, "exclude", help="layers no mode decomposes, searched anywhere in the name (e.g. "
                                  "'patch_embed\\.proj'); repeatable")
    add_option(p, "blocks", help="every mode only in these blocks: last:6, first:4")
    p.add_argument("--sequential", default="", metavar="MODES",
                   help="also time the training step of these modes with sequential freezing (each phase "
                        "interleaved with the original), e.g. all,auto")
    add_option(p, "rank_multiple")
    p.add_argument("--budget", type=float, default=None, help="auto: model-level parameter reduction to reach")
    p.add_argument("--objective", default="both", choices=("both", "infer", "train"), help="auto: phases to speed up")
    p.add_argument("--search-radius", type=int, default=1, help="auto: ranks tried each side of the estimate")
    p.add_argument("--latency-cache", default=None, metavar="PATH",
                   help="auto: latency cache (default $LRD_CACHE_DIR/latency.json or ~/.cache/lrd/latency.json)")
    p.add_argument("--cold", action="store_true",
                   help="auto: start from an empty latency cache (to time a cold search)")
    p.add_argument("--checkpoint", default=None, help="trained weights of --model (.ckpt, .pt/.pth or .npz)")
    p.add_argument("--eval", default=None, metavar="DATA",
                   help="also report each variant's top-1 accuracy on DATA (digits, a class-folder tree, CIFAR-10 "
                        "batches or an .npz), right after decomposition (no fine-tuning); needs --checkpoint")
    p.add_argument("--eval-limit", type=int, default=512, help="--eval: samples evaluated (a fixed subset)")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip training-step timings")
    p.add_argument("--memory", action="store_true",
                   help="also measure peak memory of inference and of a training step (one process per variant)")
    p.add_argument("--memory-repeat", type=int, default=1, help="fresh processes per variant (median reported)")
    p.set_defaults(func=run_model)


def _add_layer(kinds) -> None:
    p = kinds.add_parser("layer", help="time vs rank of one conv layer, original vs Tucker-2 / SVD chain")
    _common(p)
    p.add_argument("--cin", type=int, default=512, help="input channels of the layer")
    p.add_argument("--cout", type=int, default=512, help="output channels of the layer")
    p.add_argument("--kernel", type=int, default=3, help="3 -> Tucker-2 chain, 1 -> SVD chain")
    p.add_argument("--stride", type=int, default=1, help="stride of the layer")
    p.add_argument("--hw", default="14,7", help="input sizes, comma-separated")
    p.add_argument("--batch", type=int, default=8, help="batch of the timed inputs")
    p.add_argument("--ranks", default="16:512:16", help="START:STOP:STEP (inclusive) or a comma list")
    p.add_argument("--phases", default="infer,train", help="infer, train or both comma-separated")
    p.set_defaults(func=run_layer)


def _add_lite(kinds) -> None:
    p = kinds.add_parser("lite", help="MindIR inference through MindSpore Lite (Ascend 310 / CPU)")
    _common(p, framework=False)
    p.add_argument("--mindir", required=True, help="MindIR of the compressed network (from `lrd export`)")
    p.add_argument("--baseline", default=None, help="MindIR of the original network, timed interleaved")
    p.add_argument("--batch", type=int, default=1, help="batch of the MindIR inputs")
    p.add_argument("--input-size", type=int, default=224, help="input height = width")
    p.add_argument("--device-id", type=int, default=0, help="Ascend device to run on")
    p.set_defaults(func=run_lite)


def check_args(args, inputs=()) -> None:
    """Refuse, before anything is timed, counts that cannot work (batch 0, ...) and outputs that cannot be
    written, that name the same file twice or that are inputs (ConfigError / OutputError, one line)."""
    from lrd_core.io import check_output_file

    for key, low in (("batch", 1), ("repeat", 1), ("warmup", 0), ("threads", 1), ("input_size", 1),
                     ("memory_repeat", 1), ("search_radius", 0), ("cin", 1), ("cout", 1), ("kernel", 1),
                     ("stride", 1), ("device_id", 0)):
        value = getattr(args, key, None)
        if value is not None and value < low:
            raise ConfigError(f"--{key.replace('_', '-')} {value} must be at least {low}")
    outputs = [p for p in (args.out, getattr(args, "markdown", None), getattr(args, "plot", None)) if p]
    if len({os.path.abspath(p) for p in outputs}) < len(outputs):
        raise ConfigError("--out, --markdown and --plot must name different files")
    for path in outputs:
        check_output_file(path, inputs)


def run_model(args) -> int:
    from lrd_bench import model, report

    check_args(args, [args.latency_cache, args.checkpoint])
    if args.eval and args.eval_limit < 1:
        raise ConfigError(f"--eval-limit {args.eval_limit} must be at least 1")

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in BENCH_MODES]
    if unknown or not modes:
        raise ConfigError(f"--modes: unknown {unknown or 'empty'}; choose from {', '.join(BENCH_MODES)}")
    if "original" not in modes:
        modes = ["original"] + modes
    args.sequential = [m.strip() for m in (args.sequential or "").split(",") if m.strip()]
    return output.report(args, model.run(args, modes), report.model_markdown, report.model_plot)


def run_layer(args) -> int:
    from lrd_bench import layer, report

    check_args(args)
    from lrd_core.validate import check_input_size
    try:
        sizes = [int(v) for v in str(args.hw).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--hw {args.hw!r}: give input sizes as comma-separated integers, e.g. 14,7") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--hw {args.hw!r}: give positive input sizes, e.g. 14,7")
    check_input_size([layer.layer(args.cin, args.cout, args.kernel, args.stride, hw) for hw in sizes],
                     (args.batch, args.cin, max(sizes), max(sizes)))

    return output.report(args, layer.run(args), report.layer_markdown, report.layer_plot)


def run_lite(args) -> int:
    from lrd_bench import lite

    check_args(args, [args.mindir, args.baseline])

    result = lite.run(args)
    result["command"] = output.command_line()
    output.write_json(result, args.out)
    for row in result["results"]:
        print(f"{row['file']}: {row['median_ms']:.2f} ms at batch {result['batch']}"
              + (f" ({row['ratio']:.3f}x the baseline)" if row.get("ratio") is not None else ""))
    return 0
