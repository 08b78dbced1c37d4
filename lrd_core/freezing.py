"""Freezing of factor layers during fine-tuning (framework-neutral phase logic).

A decomposed layer becomes a chain of factors, each with a *position*: ``first`` and ``last`` for
SVD, ``first``, ``core`` and ``last`` for Tucker-2 and CP-3, ``first``, ``core`` (both the Kx1 and the
1xK depthwise convs) and ``last`` for CP-4, ``first`` (basis filters) and ``last`` (the output mix or
``combine`` layer; its integer ``index`` is a buffer, never frozen or trained) for basis convolutions
(see :func:`lrd_core.factorize.skeleton`).
Policies (a registry, :data:`POLICIES`):

``none``
    Every parameter trains.
``sequential``
    Only one factor of every decomposed layer trains at a time; the trainable position cycles
    through the layer's own positions every ``every`` epochs (or steps). Phase ``k`` trains
    position ``positions[k % len(positions)]`` of each layer, so SVD layers alternate first/last
    while Tucker-2 layers cycle first/core/last (Hajimolahoseini et al. 2023, "sequential freezing").
``regular``
    The factors at ``frozen`` position(s) are frozen for the whole fine-tune.

Parameters outside decomposed layers (BatchNorm, undecomposed convs, the stem) always train.
Names are the canonical torch-style parameter names (``layer1.0.conv1.0.weight``), identical in
both adapters for conv/dense parameters. The adapters turn a phase's frozen-name set into
``requires_grad`` flags plus a per-phase optimizer / train step (MindSpore GRAPH mode needs one
compiled train cell per phase).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .errors import ConfigError
from .factorize import skeleton
from .plan import Plan

POSITIONS = ("first", "core", "last")
UNITS = ("epoch", "step")
POLICIES: Dict[str, Callable[["FreezeConfig", Dict[str, List[str]], int], FrozenSet[str]]] = {}


def register_policy(name: str):
    """Register ``fn(cfg, positions_by_layer, phase) -> set of frozen (layer, position) keys``."""
    def wrap(fn):
        POLICIES[name] = fn
        return fn
    return wrap


@dataclass(frozen=True)
class FreezeConfig:
    """How factor layers are frozen during fine-tuning.

    Parameters
    ----------
    policy : {'none', 'sequential', 'regular'}
    every : int
        Length of one sequential phase, in ``unit`` (>= 1).
    unit : {'epoch', 'step'}
    order : tuple of str
        Cycle order of the positions for ``sequential`` (each layer cycles through the positions
        it has, in this order).
    frozen : tuple of str
        Position(s) frozen throughout for ``regular``.
    """

    policy: str = "none"
    every: int = 1
    unit: str = "epoch"
    order: Tuple[str, ...] = POSITIONS
    frozen: Tuple[str, ...] = ("first",)

    def __post_init__(self):
        order = (self.order,) if isinstance(self.order, str) else tuple(self.order)
        frozen = (self.frozen,) if isinstance(self.frozen, str) else tuple(self.frozen)
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "frozen", frozen)
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown freeze policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if self.unit not in UNITS:
            raise ConfigError(f"freeze unit must be 'epoch' or 'step', got {self.unit!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"freeze 'every' must be a positive integer ({self.unit}s per phase), got {self.every!r}")
        for what, values in (("order", order), ("frozen", frozen)):
            bad = [p for p in values if p not in POSITIONS]
            if bad or not values or len(set(values)) != len(values):
                raise ConfigError(f"freeze {what} must list distinct positions from {POSITIONS}, got {values}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["order"], d["frozen"] = list(self.order), list(self.frozen)
        return d

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "FreezeConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - {"policy", "every", "unit", "order", "frozen"})
        if unknown:
            raise ConfigError(f"unknown freeze option(s) {unknown}; known: policy, every, unit, order, frozen")
        return cls(**d)


def as_freeze_config(value) -> FreezeConfig:
    """Accept a FreezeConfig, a dict of its fields, a policy name or None (= 'none')."""
    if value is None:
        return FreezeConfig()
    if isinstance(value, FreezeConfig):
        return value
    if isinstance(value, str):
        return FreezeConfig(policy=value)
    if isinstance(value, dict):
        return FreezeConfig.from_dict(value)
    raise ConfigError(f"freeze must be a policy name, a dict or a FreezeConfig, got {type(value).__name__}")


# ------------------------------------------------------------------------------------ factors
def factor_parameters(plan: Optional[Plan]) -> Dict[str, Tuple[str, str]]:
    """``{parameter name: (layer name, position)}`` for every factor of every decomposed layer."""
    out: Dict[str, Tuple[str, str]] = {}
    if plan is None:
        return out
    for lp in plan.decomposed():
        for i, sub in enumerate(skeleton(lp.info, lp.method, lp.ranks)):
            out[f"{lp.name}.{i}.weight"] = (lp.name, sub.position)
            if sub.has_bias:
                out[f"{lp.name}.{i}.bias"] = (lp.name, sub.position)
    return out


def positions_by_layer(plan: Optional[Plan]) -> Dict[str, List[str]]:
    """``{layer: [positions in chain order]}`` of the decomposed layers."""
    out: Dict[str, List[str]] = {}
    if plan is None:
        return out
    for lp in plan.decomposed():
        out[lp.name] = [s.position for s in skeleton(lp.info, lp.method, lp.ranks)]
    return out


# ------------------------------------------------------------------------------------ policies
@register_policy("none")
def _none(cfg: FreezeConfig, layers: Dict[str, List[str]], phase: int) -> FrozenSet[Tuple[str, str]]:
    return frozenset()


@register_policy("regular")
def _regular(cfg: FreezeConfig, layers: Dict[str, List[str]], phase: int) -> FrozenSet[Tuple[str, str]]:
    return frozenset((name, p) for name, positions in layers.items() for p in positions if p in cfg.frozen)


@register_policy("sequential")
def _sequential(cfg: FreezeConfig, layers: Dict[str, List[str]], phase: int) -> FrozenSet[Tuple[str, str]]:
    out = set()
    for name, positions in layers.items():
        cycle = [p for p in cfg.order if p in positions] or list(positions)
        trainable = cycle[phase % len(cycle)]
        out.update((name, p) for p in positions if p != trainable)
    return frozenset(out)


def phase_index(cfg: FreezeConfig, epoch: int, global_step: int) -> int:
    """Phase number of the step that starts at ``global_step`` in 0-based ``epoch``."""
    if cfg.policy != "sequential":
        return 0
    return (epoch if cfg.unit == "epoch" else global_step) // cfg.every


def frozen_parameters(plan: Optional[Plan], cfg, phase: int) -> FrozenSet[str]:
    """Names of the parameters frozen during ``phase``."""
    cfg = as_freeze_config(cfg)
    params = factor_parameters(plan)
    frozen_keys = POLICIES[cfg.policy](cfg, positions_by_layer(plan), phase)
    return frozenset(name for name, key in params.items() if key in frozen_keys)


def trainable_positions(plan: Optional[Plan], cfg, phase: int) -> Dict[str, List[str]]:
    """``{layer: [positions that train in phase]}`` (for logs and tests)."""
    cfg = as_freeze_config(cfg)
    layers = positions_by_layer(plan)
    frozen_keys = POLICIES[cfg.policy](cfg, layers, phase)
    return {name: [p for p in positions if (name, p) not in frozen_keys] for name, positions in layers.items()}


def cycle_length(plan: Optional[Plan], cfg) -> int:
    """Number of distinct phases before the pattern repeats (1 for none/regular)."""
    from math import lcm

    cfg = as_freeze_config(cfg)
    if cfg.policy != "sequential":
        return 1
    lengths = [len([p for p in cfg.order if p in ps] or ps) for ps in positions_by_layer(plan).values()]
    return lcm(*lengths) if lengths else 1


def describe_phase(plan: Optional[Plan], cfg, phase: int) -> str:
    """One line for logs, e.g. ``phase 1: training first x3, core x12, last x0 (15 layers)``."""
    cfg = as_freeze_config(cfg)
    if cfg.policy == "none" or plan is None or not plan.decomposed():
        return "no freezing"
    counts = {p: 0 for p in POSITIONS}
    train = trainable_positions(plan, cfg, phase)
    for positions in train.values():
        for p in positions:
            counts[p] += 1
    shown = ", ".join(f"{p} x{n}" for p, n in counts.items() if n)
    label = f"phase {phase}" if cfg.policy == "sequential" else "regular"
    return f"{cfg.policy} freezing, {label}: training {shown or 'no factor'} of {len(train)} decomposed layers"


def check_names(frozen: Sequence[str], available: Sequence[str]) -> None:
    """Raise if a frozen name is not a parameter of the model (plan made for another model)."""
    missing = sorted(set(frozen) - set(available))
    if missing:
        from .errors import MismatchError
        raise MismatchError(f"freezing: parameter(s) {missing[:3]} of the plan are not in the model; "
                            f"compress the model with this plan before fine-tuning it")
