"""``inspect`` / ``plan`` / ``compress`` / ``rebuild`` / ``build`` over a backend."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence

from ..errors import ConfigError, LRDError, MismatchError
from .. import roles, validate
from ..factorize import skeleton
from ..layers import LayerInfo, SubLayer
from ..plan import Plan
from ..planner import decompose, make_plan
from ..registry import remember_plan
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
    if isinstance(x, (tuple, list)) or not hasattr(x, "shape"):
        x = checks.shape(x, "input_shape", rank=0)      # a shape, or a one-line error for anything else
    return layer_infos(backend, model, x)


def layer_infos(backend, model, example) -> "list[LayerInfo]":
    """Record one example pass and read every conv/dense layer's geometry: the LayerInfo list.

    Raises
    ------
    ModelRunError
        The model does not run on the example (a ConfigError and a RuntimeError, with the framework's
        first message line).
    ConfigError
        The input is too small for the network (:func:`lrd_core.validate.check_input_size`).
    """
    shape = tuple(int(v) for v in (example if isinstance(example, (tuple, list)) else example.shape))
    try:
        trace = backend.record(model, example)
    except LRDError:
        raise
    except Exception as exc:  # noqa: BLE001 - any framework failure on the example is an input problem
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise validate.ModelRunError(f"the model does not run on an input of shape {'x'.join(map(str, shape))} "
                                     f"({type(exc).__name__}: {first}); give the input size the model takes") from None
    infos = roles.layer_infos(trace, [(name, backend.geometry(layer)) for name, layer in backend.named_layers(model)])
    validate.check_input_size(infos, shape, fits=lambda side: _fits(backend, model, shape[:2] + (side, side)))
    return infos


def _fits(backend, model, shape) -> bool:
    """Whether the network takes an input of ``shape`` (for the size a too-small input's error suggests)."""
    try:
        trace = backend.record(model, shape)
        infos = roles.layer_infos(trace, [(n, backend.geometry(l)) for n, l in backend.named_layers(model)])
        validate.check_input_size(infos, shape)
    except Exception:  # noqa: BLE001 - any failure means this size does not fit
        return False
    return True


def plan(backend, model, input_shape=(1, 3, 224, 224), calibration=None, evaluate=None, progress=None,
         **options) -> Plan:
    """Make a :class:`~lrd_core.Plan` for ``model``.

    Keywords are the :class:`~lrd_core.PlanConfig` fields (``mode``, ``rank_selection``, ``ratio``,
    ``rank_multiple``, ...). ``mode="auto"`` times the candidate layers on ``device`` and keeps only
    faster ones; it also takes ``cache_path``, ``use_cache``, ``threads`` and ``log`` (see
    :func:`lrd_core.api.timing.auto_plan`).

    Accuracy-aware plans (:func:`lrd_core.api.aware.aware_plan`): ``calibration`` (NumPy batches
    ``(N, C, H, W)`` float32, an array of samples, an ``lrd_data`` ArrayData/Loader or a framework
    dataset) with ``data_aware=True`` (factors minimising each layer's output error; also
    ``sequential``, ``calibration_batches``, ``calibration_memory``, ``floor``, ``calibration_cache``)
    and/or ``rank_selection="error"`` (ranks allocated under ``budget``/``budget_kind``);
    ``mode="pareto"`` with ``evaluate=callable(model) -> metric``. ``progress``: a progress bar on
    stderr (None: when stderr is a terminal).
    """
    checks.model(backend, model)
    input_shape = checks.shape(input_shape, rank=0)
    from ..progress import scope
    from ..reports import warn_compressed
    warning = warn_compressed([name for name, _ in backend.named_layers(model)])
    with scope(progress):
        result = _plan(backend, model, input_shape, calibration, evaluate, progress, options)
    if warning:
        result.meta.setdefault("warnings", []).append(warning)
    return result


def _plan(backend, model, input_shape, calibration, evaluate, progress, options) -> Plan:
    from .aware import aware_plan, needs_aware
    if needs_aware(options, calibration, evaluate):
        return aware_plan(backend, model, input_shape, calibration=calibration, evaluate=evaluate,
                          progress=progress, **options)
    if options.get("mode") == "auto":
        from .timing import auto_plan
        return auto_plan(backend, model, input_shape, **options)
    layers = layer_infos(backend, model, input_shape)
    weights = {name: backend.weight(layer) for name, layer in backend.named_layers(model)}
    meta = {"framework": backend.name, "input_shape": list(input_shape)}
    return make_plan(layers, weights=weights, meta=meta, **options)


def check_layers(backend, plan: Plan, layers: Dict[str, Any], model=None) -> None:
    """The plan is valid (:func:`lrd_core.validate.check_plan`) and its layers are the model's conv/dense
    layers with the same weight shapes and, given ``model``, the same geometry, input sizes and roles as
    ``inspect`` reads at the plan's ``meta.input_shape`` (without one: the static geometry)."""
    validate.check_plan(plan)
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
    if model is not None:
        check_model_geometry(backend, plan, model)


def check_model_geometry(backend, plan: Plan, model) -> None:
    """Compare every planned layer with what ``inspect`` reads on ``model`` (MismatchError naming it); a
    plan of ``reduce`` describes the network before its reduction and is not compared."""
    if "reduction" in plan.meta:
        return
    shape = plan.meta.get("input_shape") if isinstance(plan.meta, dict) else None
    if shape:
        shape = checks.shape(shape, "the plan's meta.input_shape", rank=0)
        infos = roles.override_layers(layer_infos(backend, model, shape), plan.config.roles)
    else:
        infos = roles.layer_infos(None, [(n, backend.geometry(l)) for n, l in backend.named_layers(model)])
        static = {lp.name: lp.info.input_hw for lp in plan.layers}
        infos = [i if i.kind == "dense" else _at_size(i, backend, model, static.get(i.name)) for i in infos]
    validate.check_geometry(plan, infos, shape)


def _at_size(info: LayerInfo, backend, model, hw) -> LayerInfo:
    """A conv's geometry with its padding resolved at the plan's input size (``same`` padding)."""
    if hw is None:
        return info
    geometry = backend.geometry(dict(backend.named_layers(model))[info.name])
    pad = roles.resolve_padding(geometry.get("padding", 0), hw, geometry.get("kernel", 1), geometry.get("stride", 1),
                                geometry.get("dilation", 1))
    return dataclasses.replace(info, padding=pad, input_hw=hw)


def compress(backend, model, plan: Plan, progress: Optional[Callable] = None, calibration=None):
    """Decompose the planned layers of ``model`` in place and return it.

    All factorizations are computed before the first layer is swapped, so a failure leaves the
    model as it was. ``progress(k, n, name, seconds)`` is called after each layer. Data-aware layers
    take the plan's calibration statistics: from the plan itself (same process, same weights), from
    ``calibration`` data (the disk cache first) or from the disk cache entry the plan names.
    """
    checks.model(backend, model)
    checks.plan(plan)
    if "reduction" in plan.meta and not plan.decomposed():
        raise ConfigError("this plan was made by reduce (RON/ASNet) and records a reduced network, not a "
                          "decomposition: rebuild a saved reduced model with load(directory, model), or make a new "
                          "one with reduce(model, calibration=...)")
    layers = dict(backend.named_layers(model))
    check_layers(backend, plan, layers, model)
    todo = plan.decomposed()
    weights = {lp.name: backend.weight(layers[lp.name]) for lp in todo}
    biases = {lp.name: backend.bias(layers[lp.name]) for lp in todo}
    stats = done = None
    if any(lp.data_aware for lp in todo):          # data-aware factors: the plan's calibration statistics
        from .aware import plan_chains
        stats, done = plan_chains(backend, model, plan, calibration)
    subs = decompose(plan, weights, biases, progress=progress, stats=stats, done=done)
    for lp in todo:
        backend.replace(model, lp.name, backend.build(subs[lp.name], like=layers[lp.name]))
    remember_plan(model, plan)
    return model


def rebuild(backend, model, plan: Plan):
    """Replace the planned layers by factor chains of the right shapes (no decomposition; weights
    are to be loaded next, e.g. by ``load``). A plan of ``reduce`` first rebuilds the reduced network
    (ASNet: a new one, returned)."""
    checks.model(backend, model)
    checks.plan(plan)
    if "reduction" in plan.meta:
        from .reduce import rebuild_reduced
        model = rebuild_reduced(backend, model, plan)
        if not plan.decomposed():
            return model
    layers = dict(backend.named_layers(model))
    check_layers(backend, plan, layers, model)
    for lp in plan.decomposed():
        backend.replace(model, lp.name, backend.build(skeleton(lp.info, lp.method, lp.ranks), like=layers[lp.name]))
    remember_plan(model, plan)
    return model


def build(backend, subs: Sequence[SubLayer], like=None):
    """The native chain of a list of :class:`~lrd_core.layers.SubLayer` (e.g. from
    ``lrd_core.factorize.tucker2``)."""
    subs = list(subs) if isinstance(subs, (list, tuple)) else []
    if not subs or not all(isinstance(s, SubLayer) for s in subs):
        raise ConfigError("build takes a non-empty list of lrd_core.SubLayer (e.g. from lrd_core.factorize.svd)")
    return backend.build(subs, like=like)
