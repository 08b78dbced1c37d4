"""Multi-stage compression of a live model (the work is in :mod:`lrd_core.multistage`)."""
from __future__ import annotations

from typing import Dict, List

from .. import multistage as _core
from ..layers import SubLayer
from ..multistage import StageConfig
from ..plan import Plan
from ..registry import remember_plan
from . import checks


def read_chains(backend, model, plan: Plan) -> Dict[str, List[SubLayer]]:
    """The live factor chains of a model compressed by ``plan``."""
    checks.model(backend, model)
    return _core.read_chains(backend, model, checks.plan(plan))


def next_plan(backend, model, plan: Plan, config: StageConfig, stage: int) -> Plan:
    """The plan of ``stage`` (>= 2) from the model's current (fine-tuned) factors; ranks never grow."""
    return _core.next_plan(plan, read_chains(backend, model, plan), config, stage)


def recompress(backend, model, plan: Plan, new_plan: Plan, progress=None):
    """Re-decompose the chains whose ranks changed, in place (same layers, fewer channels)."""
    checks.model(backend, model)
    out = _core.recompress_model(backend, model, checks.plan(plan), checks.plan(new_plan), progress=progress)
    remember_plan(model, new_plan)
    return out


def compress_stage(backend, model, plan: Plan, config: StageConfig, stage: int, progress=None):
    """``(new_plan, changed)``: plan stage ``stage`` and apply it; ``changed`` lists re-decomposed layers."""
    new = next_plan(backend, model, plan, config, stage)
    changed = _core.changed_layers(plan, new)
    if changed:
        recompress(backend, model, plan, new, progress=progress)
    return new, changed
