"""Freezing factor layers in MindSpore (see :mod:`lrd_core.freezing`).

In GRAPH mode a compiled train step ignores later ``requires_grad`` changes, and momentum / weight
decay would still move a parameter whose gradient is zero. So every freezing phase gets its own
optimizer over only the trainable parameters and its own train cell, built once and cached
(:class:`lrd_mindspore.train.PhaseSteps`); the phase optimizers share one set of momentum buffers
and one step counter, so switching phases keeps the LR position and the momentum of every
parameter. The helpers here only set the ``requires_grad`` flags and name the parameters.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from mindspore import Parameter, nn

from lrd_core import freezing
from lrd_core.plan import Plan

from .state import named_parameters


def trainable_parameters(net: nn.Cell) -> Dict[str, Parameter]:
    """``{torch-style name: Parameter}`` of the parameters with ``requires_grad`` (optimizer candidates)."""
    return {k: p for k, p in named_parameters(net).items() if p.requires_grad}


def set_frozen(net: nn.Cell, frozen: Iterable[str], candidates: Optional[Dict[str, Parameter]] = None) -> List[str]:
    """Set ``requires_grad`` False on exactly the ``frozen`` names among ``candidates`` (default: all
    trainable-by-nature parameters, i.e. not BatchNorm moving statistics); returns them sorted."""
    frozen = set(frozen)
    params = candidates if candidates is not None else {
        k: p for k, p in named_parameters(net).items() if not k.endswith(("running_mean", "running_var"))}
    freezing.check_names(frozen, params)
    for name, p in params.items():
        p.requires_grad = name not in frozen
    return sorted(frozen)


def frozen_names(net: nn.Cell) -> List[str]:
    """Names of the (non-statistics) parameters that currently do not train."""
    return [k for k, p in named_parameters(net).items()
            if not p.requires_grad and not k.endswith(("running_mean", "running_var"))]


def freeze_phase(net: nn.Cell, plan: Optional[Plan], freeze, phase: int) -> List[str]:
    """Set the flags for ``phase`` of ``freeze``; returns the frozen names."""
    return set_frozen(net, freezing.frozen_parameters(plan, freeze, phase))


def unfreeze(net: nn.Cell) -> None:
    """Make every (non-statistics) parameter trainable again."""
    for k, p in named_parameters(net).items():
        if not k.endswith(("running_mean", "running_var")):
            p.requires_grad = True
