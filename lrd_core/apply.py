"""The framework-neutral steps of ``plan`` / ``compress`` / ``rebuild``, run through a backend.

An adapter supplies a small backend object (see :class:`Backend`) and exposes thin public
functions over these; all decisions and numerics stay here and in the planner.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from .errors import MismatchError
from .factorize import skeleton
from .layers import LayerInfo, SubLayer
from .plan import Plan
from .planner import decompose, make_plan


class Backend(Protocol):
    """What an adapter implements (all functions work on native objects)."""

    def inspect(self, model, input_shape) -> List[LayerInfo]: ...
    def named_layers(self, model) -> List[Tuple[str, Any]]: ...
    def weight(self, layer) -> np.ndarray: ...
    def bias(self, layer) -> Optional[np.ndarray]: ...
    def build(self, subs: Sequence[SubLayer], like) -> Any: ...
    def replace(self, model, name: str, new) -> None: ...


def plan_model(backend: Backend, model, input_shape, meta=None, **options) -> Plan:
    """Inspect ``model`` and make a plan; weights are read only when a rank selector needs them."""
    layers = backend.inspect(model, input_shape)
    weights = {name: backend.weight(layer) for name, layer in backend.named_layers(model)}
    meta = dict(meta or {})
    meta.setdefault("input_shape", list(input_shape))
    return make_plan(layers, weights=weights, meta=meta, **options)


def _check_layers(plan: Plan, layers: Dict[str, Any], backend: Backend) -> None:
    planned = [lp.name for lp in plan.layers]
    extra = [n for n in layers if n not in set(planned)]
    missing = [n for n in planned if n not in layers]
    if extra or missing:
        detail = "; ".join(part for part in (
            f"in the model but not in the plan: {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}" if extra else "",
            f"in the plan but not in the model: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
            if missing else "") if part)
        raise MismatchError(f"the plan does not describe this model (layer names differ — {detail}); the plan was "
                            f"made for another model or the model was already compressed: re-plan with `lrd plan`")
    for lp in plan.decomposed():
        if lp.name not in layers:
            raise MismatchError(f"layer {lp.name} is in the plan but not in the model (was the model already "
                                f"compressed, or the plan made for another model?)")
        shape = tuple(backend.weight(layers[lp.name]).shape)
        if shape != lp.info.weight_shape:
            raise MismatchError(f"layer {lp.name}: model weight {shape} does not match the plan's "
                                f"{lp.info.weight_shape}; the plan was made for another model")


def compress_model(backend: Backend, model, plan: Plan, progress: Optional[Callable] = None):
    """Decompose the live weights of every planned layer and swap in the factor chains (in place)."""
    layers = dict(backend.named_layers(model))
    _check_layers(plan, layers, backend)
    todo = plan.decomposed()
    weights = {lp.name: backend.weight(layers[lp.name]) for lp in todo}
    biases = {lp.name: backend.bias(layers[lp.name]) for lp in todo}
    subs = decompose(plan, weights, biases, progress=progress)   # all numerics first: nothing swapped on error
    for lp in todo:
        backend.replace(model, lp.name, backend.build(subs[lp.name], like=layers[lp.name]))
    return model


def rebuild_model(backend: Backend, model, plan: Plan):
    """Swap in factor chains of the planned shapes without decomposing (weights to be loaded)."""
    layers = dict(backend.named_layers(model))
    _check_layers(plan, layers, backend)
    for lp in plan.decomposed():
        subs = skeleton(lp.info, lp.method, lp.ranks)
        backend.replace(model, lp.name, backend.build(subs, like=layers[lp.name]))
    return model
