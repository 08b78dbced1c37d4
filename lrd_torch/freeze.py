"""Freezing factor layers in torch: ``requires_grad`` per phase (see :mod:`lrd_core.freezing`).

A parameter with ``requires_grad=False`` gets no weight gradient from autograd; its ``.grad``
stays None (the loop zeroes grads with ``set_to_none``), so ``torch.optim.SGD`` skips it
entirely: no momentum and no weight-decay update either.
"""
from __future__ import annotations

from typing import Iterable, List, Optional

from torch import nn

from lrd_core import freezing
from lrd_core.plan import Plan


def set_frozen(model: nn.Module, frozen: Iterable[str]) -> List[str]:
    """Freeze exactly the parameters named in ``frozen`` (all others trainable); returns them sorted."""
    frozen = set(frozen)
    params = dict(model.named_parameters())
    freezing.check_names(frozen, params)
    for name, p in params.items():
        p.requires_grad_(name not in frozen)
    return sorted(frozen)


def frozen_names(model: nn.Module) -> List[str]:
    """Names of the parameters that currently do not train."""
    return [n for n, p in model.named_parameters() if not p.requires_grad]


def freeze_phase(model: nn.Module, plan: Optional[Plan], freeze, phase: int) -> List[str]:
    """Apply ``freeze`` (policy name, dict or FreezeConfig) for ``phase``; returns the frozen names."""
    return set_frozen(model, freezing.frozen_parameters(plan, freeze, phase))


def unfreeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(True)
