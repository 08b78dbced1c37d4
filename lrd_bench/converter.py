"""The 310 path's conversion step: MindIR (from ``lrd export``) -> MindSpore Lite model through ``converter_lite``.

``converter_lite`` ships with the MindSpore Lite tools package (``tools/converter/converter/converter_lite``);
it is found on ``PATH`` or through ``$LRD_CONVERTER_LITE``. Run as
``python -m lrd_bench.converter --mindir net.mindir --out net_lite [--device Ascend]`` (writes ``net_lite.mindir``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import List

from lrd_core.errors import DeviceError, LRDError, MismatchError

from .lite import INSTALL

#: --optimize of converter_lite per target device
OPTIMIZE = {"Ascend": "ascend_oriented", "GPU": "gpu_oriented", "CPU": "general"}


def find_converter() -> str:
    """Path of ``converter_lite`` or a :class:`DeviceError` naming the fix."""
    path = os.environ.get("LRD_CONVERTER_LITE") or shutil.which("converter_lite")
    if not path or not os.path.isfile(path):
        raise DeviceError(f"converter_lite is not installed here; on the Ascend 310 host {INSTALL}, then put "
                          f"tools/converter/converter on PATH or set LRD_CONVERTER_LITE")
    return path


def command(tool: str, mindir: str, out: str, device: str = "Ascend") -> List[str]:
    """The ``converter_lite`` command line (MindIR in, MindIR Lite model ``out`` + ``.mindir`` out)."""
    if device not in OPTIMIZE:
        raise DeviceError(f"unknown device {device!r}; use one of {', '.join(OPTIMIZE)}")
    return [tool, "--fmk=MINDIR", f"--modelFile={mindir}", f"--outputFile={out}", "--saveType=MINDIR",
            f"--optimize={OPTIMIZE[device]}"]


def convert(mindir: str, out: str, device: str = "Ascend") -> str:
    """Convert ``mindir`` for MindSpore Lite on ``device``; returns the written file (``out`` + ``.mindir``)."""
    if not os.path.isfile(mindir):
        raise MismatchError(f"MindIR file {mindir} does not exist; make it with `lrd export --format MINDIR`")
    out = out[:-len(".mindir")] if out.endswith(".mindir") else out
    done = subprocess.run(command(find_converter(), mindir, out, device), capture_output=True, text=True)
    written = out + ".mindir"
    if done.returncode != 0 or not os.path.isfile(written):
        last = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1][:200]
        raise DeviceError(f"converter_lite failed on {mindir} (exit {done.returncode}: {last}); check that its "
                          f"version matches the MindSpore that exported the MindIR")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lrd_bench.converter", description=__doc__.splitlines()[0])
    p.add_argument("--mindir", required=True, help="MindIR from `lrd export --format MINDIR`")
    p.add_argument("--out", required=True, help="output name (converter_lite adds .mindir)")
    p.add_argument("--device", default="Ascend", choices=tuple(OPTIMIZE), help="target of the Lite model")
    args = p.parse_args(argv)
    try:
        print(f"wrote {convert(args.mindir, args.out, args.device)}")
    except LRDError as exc:
        print(f"converter: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
