"""Ascend 310 inference: time MindIR files through MindSpore Lite, compressed vs original interleaved.

Needs only ``mindspore_lite`` (matching the MindSpore that exported the files), NumPy and this
repository on the 310 host; the files come from ``lrd export --format MINDIR``::

    python benchmarks/lite_infer.py --mindir resnet50_auto.mindir --baseline resnet50.mindir \
        --device Ascend --batch 1 --out results/lite_310.json

Without a usable ``mindspore_lite`` it stops with one line naming the fix (exit 2).
"""
from __future__ import annotations

import sys

from lrd_cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "lite"] + sys.argv[1:]))
