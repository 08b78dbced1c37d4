"""Freezing factor layers through the framework's ``requires_grad`` flags (see :mod:`lrd_core.freezing`).

These helpers only set flags and name parameters. Making frozen parameters really stand still is
the trainer's part: torch's SGD skips parameters without a gradient (no momentum, no weight decay);
MindSpore's GRAPH mode needs one optimizer and train cell per freezing phase
(:class:`lrd_mindspore.train.PhaseSteps`).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from .. import freezing
from ..errors import ConfigError
from ..plan import Plan
from . import checks


def apply_frozen(backend, params: Dict[str, object], frozen: Iterable[str]) -> List[str]:
    """Freeze exactly ``frozen`` among ``params`` (``{name: parameter}``), the others trainable."""
    frozen = set(frozen)
    freezing.check_names(frozen, params)
    for name, p in params.items():
        backend.set_trainable(p, name not in frozen)
    return sorted(frozen)


def set_frozen(backend, model, frozen: Iterable[str]) -> List[str]:
    """Freeze exactly the parameters named in ``frozen`` (torch-style names; all others trainable).

    Returns
    -------
    list of str
        The frozen names, sorted.
    """
    checks.model(backend, model)
    if isinstance(frozen, (str, bytes)) or not hasattr(frozen, "__iter__"):
        raise ConfigError(f"frozen must be a list of parameter names, got {type(frozen).__name__}")
    frozen = list(frozen)
    if not all(isinstance(n, str) for n in frozen):
        raise ConfigError(f"frozen must be a list of parameter names (str), got {frozen[:3]!r}")
    return apply_frozen(backend, backend.parameters(model), frozen)


def frozen_names(backend, model) -> List[str]:
    """Names of the parameters that currently do not train."""
    checks.model(backend, model)
    return [k for k, p in backend.parameters(model).items() if not backend.is_trainable(p)]


def freeze_phase(backend, model, plan: Optional[Plan], freeze, phase: int) -> List[str]:
    """Apply ``freeze`` (policy name, dict or FreezeConfig) for ``phase``; returns the frozen names."""
    return set_frozen(backend, model, freezing.frozen_parameters(plan, freeze, phase))


def unfreeze(backend, model) -> None:
    """Make every parameter trainable again."""
    checks.model(backend, model)
    for p in backend.parameters(model).values():
        backend.set_trainable(p, True)
