"""Entry point of the ``lrd`` command. User errors print one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from lrd_core.errors import LRDError

COMMANDS = ("inspect", "plan", "compress", "reduce", "convert", "train", "export", "eval", "bench", "demo")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default (unless the text already states one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, argparse.SUPPRESS, [], False) or \
                not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the subcommands' parsers are of this class too).

    A word no option takes is an error of the (sub)command that got it, naming the closest option.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

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


class _LineFormatter(logging.Formatter):
    def format(self, record):
        text = record.getMessage()
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def setup_logging(level: int = logging.INFO) -> None:
    """Wire the ``lrd`` logger to stderr (one plain line per record; warnings prefixed ``warning:``)."""
    logger = logging.getLogger("lrd")
    for handler in list(logger.handlers):
        if getattr(handler, "_lrd_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._lrd_cli = True
    handler.setFormatter(_LineFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a multi-line framework message keeps its first line)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _os_error(exc: OSError) -> str:
    where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
    return f"{where}: {exc.strerror or one_line(exc)}" if where else one_line(exc)


def main(argv=None) -> int:
    """Run one ``lrd`` command; returns the exit status.

    0 on success; 2 on a usage or user error (one line on stderr: :class:`~lrd_core.errors.LRDError`,
    a file-system error); 130 when interrupted; 1 with a one-line ``internal error`` for anything
    else (set ``LRD_DEBUG=1`` to see the traceback instead).
    """
    os.environ.setdefault("GLOG_v", "3")
    setup_logging()
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LRDError as exc:
        print(f"lrd {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lrd {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lrd {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user; LRD_DEBUG=1 shows it
        if os.environ.get("LRD_DEBUG"):
            raise
        print(f"lrd {args.command}: internal error: {type(exc).__name__}: {one_line(exc)[:300]} (a bug in lrd, "
              f"please report it; LRD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
