"""``inspect`` / ``plan`` / ``compress`` / ``rebuild`` / ``build`` over a backend."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

from ..errors import ConfigError, MismatchError
from .. import roles
from ..factorize import skeleton
from ..layers import LayerInfo, SubLayer
from ..plan import Plan
from ..planner import decompose, make_plan
from . import checks


def inspect(backend, model, example_input_or_shape=None, input_shape: Optional[Sequence[int]] = None
            ) -> "list[LayerInfo]":
    """Describe every conv/dense layer of ``model``: geometry, input size and role.

    Parameters
    ----------
    model : native model
    example_input_or_shape : native tensor or tuple, optional
    input_shape : tuple, optional
        ``(N, C, H, W)``; a zero tensor of this shape is run through the model once (eval mode).

    Returns
    -------
    list of LayerInfo
        In definition order; roles (stem, stage, shortcut, final dense) come from the traced structure.
    """
    checks.model(backend, model)
    x = example_input_or_shape if example_input_or_shape is not None else input_shape
    if x is None:
        raise ConfigError("inspect needs an example input or input_shape=(N, C, H, W)")
    if isinstance(x, (tuple, list)):
        x = checks.shape(x, "input_shape", rank=0)
    return layer_infos(backend, model, x)


def layer_infos(backend, model, example) -> "list[LayerInfo]":
    """Record one example pass and read every conv/dense layer's geometry: the LayerInfo list."""
    trace = backend.record(model, example)
    return roles.layer_infos(trace, [(name, backend.geometry(layer)) for name, layer in backend.named_layers(model)])


def plan(backend, model, input_shape=(1, 3, 224, 224), **options) -> Plan:
    """Make a :class:`~lrd_core.Plan` for ``model``.

    Keywords are the :class:`~lrd_core.PlanConfig` fields (``mode``, ``rank_selection``, ``ratio``,
    ``rank_multiple``, ...). ``mode="auto"`` times the candidate layers on ``device`` and keeps only
    faster ones; it also takes ``cache_path``, ``use_cache``, ``threads`` and ``log`` (see
    :func:`lrd_core.api.timing.auto_plan`).
    """
    checks.model(backend, model)
    input_shape = checks.shape(input_shape, rank=0)
    if options.get("mode") == "auto":
        from .timing import auto_plan
        return auto_plan(backend, model, input_shape, **options)
    layers = layer_infos(backend, model, input_shape)
    weights = {name: backend.weight(layer) for name, layer in backend.named_layers(model)}
    meta = {"framework": backend.name, "input_shape": list(input_shape)}
    return make_plan(layers, weights=weights, meta=meta, **options)


def check_layers(backend, plan: Plan, layers: Dict[str, Any]) -> None:
    """The plan's layers are the model's conv/dense layers, with the same weight shapes."""
    planned = [lp.name for lp in plan.layers]
    extra = [n for n in layers if n not in set(planned)]
    missing = [n for n in planned if n not in layers]
    if extra or missing:
        def few(names):
            return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        detail = "; ".join(part for part in (
            f"in the model but not in the plan: {few(extra)}" if extra else "",
            f"in the plan but not in the model: {few(missing)}" if missing else "") if part)
        raise MismatchError(f"the plan does not describe this model (layer names differ — {detail}); the plan was "
                            f"made for another model or the model was already compressed: re-plan with `lrd plan`")
    for lp in plan.decomposed():
        shape = tuple(backend.weight(layers[lp.name]).shape)
        if shape != lp.info.weight_shape:
            raise MismatchError(f"layer {lp.name}: model weight {shape} does not match the plan's "
                                f"{lp.info.weight_shape}; the plan was made for another model")


def compress(backend, model, plan: Plan, progress: Optional[Callable] = None):
    """Decompose the planned layers of ``model`` in place and return it.

    All factorizations are computed before the first layer is swapped, so a failure leaves the
    model as it was. ``progress(k, n, name, seconds)`` is called after each layer.
    """
    checks.model(backend, model)
    checks.plan(plan)
    layers = dict(backend.named_layers(model))
    check_layers(backend, plan, layers)
    todo = plan.decomposed()
    weights = {lp.name: backend.weight(layers[lp.name]) for lp in todo}
    biases = {lp.name: backend.bias(layers[lp.name]) for lp in todo}
    subs = decompose(plan, weights, biases, progress=progress)
    for lp in todo:
        backend.replace(model, lp.name, backend.build(subs[lp.name], like=layers[lp.name]))
    return model


def rebuild(backend, model, plan: Plan):
    """Replace the planned layers by factor chains of the right shapes (no decomposition; weights
    are to be loaded next, e.g. by ``load``)."""
    checks.model(backend, model)
    checks.plan(plan)
    layers = dict(backend.named_layers(model))
    check_layers(backend, plan, layers)
    for lp in plan.decomposed():
        backend.replace(model, lp.name, backend.build(skeleton(lp.info, lp.method, lp.ranks), like=layers[lp.name]))
    return model


def build(backend, subs: Sequence[SubLayer], like=None):
    """The native chain of a list of :class:`~lrd_core.layers.SubLayer` (e.g. from
    ``lrd_core.factorize.tucker2``)."""
    subs = list(subs)
    if not subs or not all(isinstance(s, SubLayer) for s in subs):
        raise ConfigError("build takes a non-empty list of lrd_core.SubLayer (e.g. from lrd_core.factorize.svd)")
    return backend.build(subs, like=like)
