"""``lrd convert``: checkpoints between torch (.pt), MindSpore (.ckpt) and NumPy (.npz), files or
compressed-model directories."""
from __future__ import annotations

import os

from lrd_core import formats
from lrd_core.api.state import check_finite
from lrd_core.errors import ConfigError
from lrd_core.io import atomic_dir, check_output_dir, check_output_file
from lrd_core.layout import PLAN_FILE, WEIGHT_FILES, compressed_dir_files
from lrd_core.plan import Plan


def add(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint between torch (.pt) and MindSpore (.ckpt)")
    p.add_argument("--src", required=True, help=".pt/.pth, .ckpt or .npz file, or a compressed-model directory")
    p.add_argument("--out", required=True, help="target file (.pt, .ckpt or .npz) or directory")
    p.add_argument("--to", choices=("torch", "mindspore"), default=None,
                   help="target framework when converting a directory")
    p.add_argument("--force", action="store_true",
                   help="write into an existing folder beside other files (only lrd's own files are replaced)")
    p.set_defaults(func=run)


def run(args) -> int:
    if os.path.isdir(args.src):
        if args.to is None:
            raise ConfigError("converting a directory needs --to torch or --to mindspore")
        check_output_dir(args.out, [args.src], args.force, writes=[PLAN_FILE, WEIGHT_FILES[args.to]])
        plan_path, src = compressed_dir_files(args.src, prefer=args.to)
        plan = Plan.from_json(plan_path)
        arrays = formats.read(src)
        check_finite(arrays, f"checkpoint {src}")
        with atomic_dir(args.out, inputs=[args.src], force=args.force) as tmp:
            plan.to_json(os.path.join(tmp, PLAN_FILE))
            formats.write(arrays, os.path.join(tmp, WEIGHT_FILES[args.to]))
    else:
        if args.to is not None:
            raise ConfigError("--to is for directories; for a file the --out suffix (.pt, .ckpt, .npz) names the format")
        formats.suffix_of(args.out)            # a bad output name fails before anything is read
        check_output_file(args.out, [args.src])
        arrays = formats.read(args.src)
        check_finite(arrays, f"checkpoint {args.src}")
        formats.write(arrays, args.out, inputs=[args.src])
    print(f"converted {len(arrays)} arrays: {args.src} -> {args.out}")
    return 0
