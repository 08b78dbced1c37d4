"""Writing benchmark results: JSON, markdown, the command line that made them."""
from __future__ import annotations

import json
import os
import sys

from lrd_core.io import atomic_file


def write_json(result: dict, path: str) -> None:
    with atomic_file(path, suffix=".json") as tmp:
        with open(tmp, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")


def write_text(text: str, path: str) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(text)


def command_line() -> str:
    """How this process was started (``lrd bench ...`` or the script's argv)."""
    return "lrd " + " ".join(sys.argv[1:]) if os.path.basename(sys.argv[0]) == "lrd" else " ".join(sys.argv)


def report(args, result: dict, markdown, plot=None) -> int:
    """Write the result JSON (and the markdown table / plot when ``args`` asks) and print the table."""
    result["command"] = command_line()
    write_json(result, args.out)
    if getattr(args, "markdown", None):
        write_text(markdown(result), args.markdown)
    if getattr(args, "plot", None) and plot is not None:
        plot(result, args.plot)
    print(markdown(result))
    return 0
