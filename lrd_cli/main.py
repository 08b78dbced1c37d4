"""Entry point of the ``lrd`` command. User errors print one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from lrd_core.errors import LRDError

COMMANDS = ("inspect", "plan", "compress", "convert", "train", "export", "bench", "demo")


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the subcommands' parsers are of this class too).

    A word no option takes is an error of the (sub)command that got it, naming the closest option.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            from lrd_recipe.config import unknown_option_message
            self.error(unknown_option_message(extras, list(self._option_string_actions)))
        return namespace, extras


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="lrd", description="Hardware-aware low-rank decomposition of CNNs "
                                "(MindSpore first, PyTorch twin).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:                   # one module per command, each with add(subparsers)
        importlib.import_module(f"lrd_cli.{name}").add(sub)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("GLOG_v", "3")
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LRDError as exc:
        print(f"lrd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"lrd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lrd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
