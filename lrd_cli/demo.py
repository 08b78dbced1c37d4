"""``lrd demo``: the demo recipe (:mod:`lrd_recipe.demo`) from the command line."""
from __future__ import annotations

from lrd_recipe.demo import DEMO, DEMOS


def add(sub) -> None:
    p = sub.add_parser("demo", help="train, decompose, fine-tune (sequential freezing), evaluate and export a small "
                                    "ResNet-18 or ViT-Tiny on the embedded digits data (a few minutes on 2 CPU cores)")
    p.add_argument("--model", default="resnet18", choices=tuple(DEMOS),
                   help="resnet18 (default; SGD recipe) or vit_tiny (4 blocks, 8x8 patches; AdamW, cosine recipe)")
    p.add_argument("--framework", default="mindspore", choices=("mindspore", "torch"),
                   help="mindspore (default, GRAPH mode) or torch")
    p.add_argument("--out", default="runs/demo", help="run directory (summary.json, curves.png, plans, checkpoints)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs of the original net (default {DEMO['epoch_size']}; ViT 15)")
    p.add_argument("--finetune-epochs", type=int, default=None,
                   help=f"fine-tuning epochs (default {DEMO['finetune_epoch_size']})")
    p.add_argument("--width", type=int, default=None, help=f"ResNet-18 base width (default {DEMO['width']}; "
                                                            f"64 = standard)")
    p.add_argument("--mode", default=None, help="compression mode (default mode3; ViT: all without the patch "
                                                 "embedding)")
    p.add_argument("--ratio", type=float, default=None, help="PR ratio (default 2; ViT 3)")
    p.add_argument("--rank-multiple", type=int, default=None, help="rank quantization (default 16)")
    p.add_argument("--freeze", default=None, choices=("none", "sequential", "regular"), help="default sequential")
    p.add_argument("--stages", type=int, default=1, help="compression stages (multi-stage when > 1)")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out instead of starting over")
    p.add_argument("--no-parity", dest="parity", action="store_false",
                   help="skip the check against the other framework")
    p.set_defaults(func=run)


def run(args) -> int:
    from lrd_recipe import demo, pipeline

    cfg = demo.config(args.framework, args.out, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
                      width=args.width, mode=args.mode, ratio=args.ratio, rank_multiple=args.rank_multiple,
                      freeze=args.freeze, stages=args.stages, seed=args.seed, resume=args.resume, model=args.model)
    pipeline.run(cfg, extra=demo.parity if args.parity else None)   # without --resume every run starts over
    return 0
