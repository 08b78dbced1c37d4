"""Multi-stage compression for the mindspore adapter (the work is in :mod:`lrd_core.multistage`)."""
from __future__ import annotations

from typing import Dict, List

from lrd_core import multistage as _core
from lrd_core.layers import SubLayer
from lrd_core.multistage import StageConfig
from lrd_core.plan import Plan

from .apply import BACKEND


def read_chains(model, plan: Plan) -> Dict[str, List[SubLayer]]:
    """The live factor chains of a model compressed by ``plan``."""
    return _core.read_chains(BACKEND, model, plan)


def next_plan(model, plan: Plan, config: StageConfig, stage: int) -> Plan:
    """The plan of ``stage`` (>= 2) from the model's current (fine-tuned) factors; ranks never grow."""
    return _core.next_plan(plan, read_chains(model, plan), config, stage)


def recompress(model, plan: Plan, new_plan: Plan, progress=None):
    """Re-decompose the chains whose ranks changed, in place (same layers, fewer channels)."""
    return _core.recompress_model(BACKEND, model, plan, new_plan, progress=progress)


def compress_stage(model, plan: Plan, config: StageConfig, stage: int, progress=None):
    """``(new_plan, changed)``: plan stage ``stage`` and apply it; ``changed`` lists re-decomposed layers."""
    new = next_plan(model, plan, config, stage)
    changed = _core.changed_layers(plan, new)
    if changed:
        recompress(model, plan, new, progress=progress)
    return new, changed
