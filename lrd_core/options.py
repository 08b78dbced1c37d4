"""One vocabulary for the plan options: the API keyword, the command-line flag, the recipe YAML key and the
documentation of every knob come from :data:`OPTIONS`.

* API: the keyword of ``lrd_X.plan`` / :class:`lrd_core.config.PlanConfig` (``rank_multiple``).
* CLI: ``--rank-multiple`` (dashes, documented); ``--rank_multiple`` still works with a deprecation line.
* Recipe YAML / ModelZoo flags: the API keyword (``rank_multiple: 16``); the recipe's older keys
  (``rank_quantization``, ``compression_ratio``, ``compression_mode``) still work with a deprecation line.
* Values: ``evbmf`` is the name of the Bayesian rank selection; ``vbmf`` is kept as its alias.

Defaults here are the command-line and recipe defaults (device-friendly: ranks in multiples of
:data:`DEVICE_RANK_MULTIPLE`, the cube unit of Ascend and the vector width of the CPU kernels); the API
(``PlanConfig``) keeps ``rank_multiple=1`` so that numerical calls on tiny layers stay exact.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from .errors import ConfigError

log = logging.getLogger("lrd")

#: rank quantization step of the command line and the recipe (ranks like 48, 96, 128 rather than 39, 149)
DEVICE_RANK_MULTIPLE = 16
#: one default per-layer parameter-reduction ratio of PR in every command
DEFAULT_RATIO = 2.0

#: value aliases: option -> {accepted spelling: value stored}
VALUE_ALIASES: Dict[str, Dict[str, str]] = {"rank_selection": {"evbmf": "vbmf"},
                                            "stage_rank_selection": {"evbmf": "vbmf"}}
#: rank selections as documented (``evbmf``; ``vbmf`` accepted)
RANK_SELECTION_CHOICES = ("pr", "evbmf", "vbmf", "energy", "manual", "error")


@dataclass(frozen=True)
class Option:
    """One plan knob: API keyword ``name``; ``flag`` without the dashes (default: ``name`` with dashes);
    ``recipe_old``: older recipe YAML keys (deprecated)."""

    name: str
    type: object
    default: object
    help: str
    choices: Tuple[str, ...] = ()
    recipe_old: Tuple[str, ...] = ()
    metavar: Optional[str] = None
    repeat: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: Dict[str, Option] = {o.name: o for o in (
    Option("mode", str, "vanilla", "compression mode: which layers are decomposed (vanilla, mode1..mode5, all, "
           "auto = keep only layers that are faster on --device, pareto)", recipe_old=("compression_mode",)),
    Option("rank_selection", str, "pr", "how ranks are chosen: pr (parameter-reduction ratio), evbmf (Bayesian "
           "estimate from the trained weights; alias vbmf), energy, manual or error (least output error under "
           "--budget)", choices=RANK_SELECTION_CHOICES),
    Option("ratio", float, DEFAULT_RATIO, "per-layer parameter reduction of pr (> 1): a layer keeps about "
           "1/ratio of its parameters", recipe_old=("compression_ratio",)),
    Option("final_dense_ratio", float, None, "milder ratio for the final classifier (None = --ratio)"),
    Option("rank_multiple", int, DEVICE_RANK_MULTIPLE, "round ranks to a multiple of this (16 suits Ascend's cube "
           "unit and CPU vectors; 1 = exact ranks)", recipe_old=("rank_quantization",)),
    Option("rank_rounding", str, "nearest", "rounding of ranks to --rank-multiple", choices=("nearest", "up", "down")),
    Option("vbmf_weakening", float, 0.8, "evbmf: R = R_full - w * (R_full - R_evbmf), w in [0, 1]"),
    Option("energy", float, 0.95, "energy: fraction of squared singular values kept, in (0, 1]"),
    Option("include", str, [], "also decompose layers whose name contains this regular expression (searched "
           "anywhere: 'layer4' selects stage 4; an exact layer name selects that layer only); repeatable",
           metavar="RE", repeat=True),
    Option("exclude", str, [], "never decompose layers whose name contains this regular expression (same "
           "matching as --include); repeatable", metavar="RE", repeat=True),
    Option("blocks", str, None, "only the mode's layers in these blocks (transformer blocks, else stages): "
           "'last:6', 'first:4' or '1-3,7'", metavar="SPEC"),
)}


def normalize_value(name: str, value):
    """A value in its stored spelling (``evbmf`` -> ``vbmf`` for ``rank_selection``)."""
    if isinstance(value, str):
        return VALUE_ALIASES.get(name, {}).get(value, value)
    return value


def warn_deprecated(old: str, new: str) -> None:
    """One line on the ``lrd`` logger (stderr from the CLI) for an old spelling still accepted."""
    log.warning("%s is deprecated; use %s", old, new)


class _Deprecated(argparse.Action):
    """A hidden old flag spelling: stores like the new one and prints one deprecation line."""

    def __init__(self, option_strings, dest, new=None, base=None, **kw):
        self.new, self.base = new, base
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(option_string, self.new)
        if isinstance(self.base, argparse._AppendAction):
            items = list(getattr(namespace, self.dest, None) or [])
            setattr(namespace, self.dest, items + [values])
        else:
            setattr(namespace, self.dest, values)


def add_option(p, name: str, default=argparse.SUPPRESS, help: Optional[str] = None, **kw):
    """Register the flag of schema option ``name`` on parser/group ``p`` (default and help from the schema
    unless given); its underscore spelling is a hidden alias with a deprecation line."""
    o = OPTIONS[name]
    default = o.default if default is argparse.SUPPRESS else default
    args = dict(default=list(default) if isinstance(default, list) else default, help=help or o.help)
    if o.repeat:
        args.update(action="append", metavar=o.metavar)
    else:
        args.update(type=o.type, metavar=o.metavar)
    if o.choices:
        args["choices"] = o.choices
    args.update(kw)
    action = p.add_argument(o.flag, dest=name, **args)
    if "_" in name:
        extra = {k: v for k, v in args.items() if k in ("type", "choices", "metavar")}
        p.add_argument("--" + name, dest=name, action=_Deprecated, new=o.flag, base=action,
                       default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)
    return action


def add_deprecated_flag(p, old: str, new_action) -> None:
    """A hidden old flag ``old`` for an existing action (same dest), with a deprecation line."""
    extra = {k: getattr(new_action, k) for k in ("type", "choices", "metavar") if getattr(new_action, k, None)}
    p.add_argument(old, dest=new_action.dest, action=_Deprecated, new=new_action.option_strings[0],
                   base=new_action, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)


def recipe_aliases() -> Dict[str, str]:
    """``{old recipe key: API keyword}`` of every renamed recipe key."""
    return {old: o.name for o in OPTIONS.values() for old in o.recipe_old}


def markdown_table(names: Optional[Sequence[str]] = None) -> str:
    """The README's option table: flag, recipe key / API keyword, default, help, old spellings."""
    rows = ["| flag | API keyword / recipe key | default | meaning | old spellings |",
            "|---|---|---|---|---|"]
    for name in names or list(OPTIONS):
        o = OPTIONS[name]
        old = ", ".join(["--" + name] * ("_" in name) + list(o.recipe_old)
                        + (["vbmf"] if name == "rank_selection" else []))
        default = "(none)" if o.default in (None, []) else o.default
        rows.append(f"| `{o.flag}` | `{name}` | {default} | {o.help} | {old or '-'} |")
    return "\n".join(rows)


def check_value(name: str, value) -> None:
    """ConfigError naming the option when ``value`` is not one of its choices."""
    o = OPTIONS[name]
    if o.choices and value not in o.choices:
        raise ConfigError(f"{name} {value!r}: choose one of {', '.join(o.choices)}")
