"""The public functions of an adapter, written once against a :class:`~lrd_core.backend.Backend`.

Every function here takes the backend as its first argument; :func:`bind` returns them bound to one
backend with that argument removed from the signature, which is how ``lrd_torch`` and
``lrd_mindspore`` get the same names, signatures, defaults and behaviour.
"""
from __future__ import annotations

import functools
import inspect as _pyinspect
from types import SimpleNamespace
from typing import Callable

from . import evaluate, exporting, files, freeze, model, reduce, stages, state, timing
from .skip import fold_back

#: ``{public name: function(backend, ...)}`` bound into every adapter.
FUNCTIONS = {
    "inspect": model.inspect, "plan": model.plan, "compress": model.compress, "rebuild": model.rebuild,
    "build": model.build,
    "state_to_numpy": state.state_to_numpy, "load_numpy": state.load_numpy, "count_params": state.count_params,
    "read_checkpoint": files.read_checkpoint, "write_checkpoint": files.write_checkpoint,
    "load_checkpoint": files.load_checkpoint, "save": files.save, "load": files.load, "load_plan": files.load_plan,
    "measure_latency": timing.measure_latency, "with_plan": timing.with_plan, "peak_memory": timing.peak_memory,
    "export": exporting.export, "predict": evaluate.predict, "evaluate": evaluate.evaluate,
    "set_frozen": freeze.set_frozen, "frozen_names": freeze.frozen_names, "freeze_phase": freeze.freeze_phase,
    "unfreeze": freeze.unfreeze, "reduce": reduce.reduce, "fold_back": fold_back,
}
#: Functions grouped under ``lrd_X.multistage``.
MULTISTAGE = {"read_chains": stages.read_chains, "next_plan": stages.next_plan, "recompress": stages.recompress,
              "compress_stage": stages.compress_stage}
#: Functions grouped under ``lrd_X.latency`` (the hardware-aware search's building blocks).
LATENCY = {"check_device": timing.check_device, "count_params": state.count_params,
           "measure_latency": timing.measure_latency, "with_plan": timing.with_plan, "auto_plan": timing.auto_plan,
           "profiler": timing.profiler, "layer_timer": timing.layer_timer, "layer_module": timing.layer_module,
           "model_verifier": timing.model_verifier, "peak_memory": timing.peak_memory}


def bind_one(fn: Callable, backend) -> Callable:
    """``fn(backend, *args, **kw)`` as ``f(*args, **kw)`` with ``fn``'s name, docstring and signature
    (minus ``backend``)."""
    @functools.wraps(fn)
    def bound(*args, **kwargs):
        return fn(backend, *args, **kwargs)

    sig = _pyinspect.signature(fn)
    bound.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
    bound.__wrapped__ = None
    del bound.__wrapped__
    return bound


def bind(backend) -> SimpleNamespace:
    """Every public function bound to ``backend``, plus the ``multistage`` and ``latency`` groups."""
    ns = SimpleNamespace(**{name: bind_one(fn, backend) for name, fn in FUNCTIONS.items()})
    ns.multistage = SimpleNamespace(**{name: bind_one(fn, backend) for name, fn in MULTISTAGE.items()})
    ns.latency = SimpleNamespace(**{name: bind_one(fn, backend) for name, fn in LATENCY.items()})
    return ns


def install(namespace: dict, backend) -> list:
    """Put every bound function and group into an adapter module's ``namespace``; returns their names."""
    bound = vars(bind(backend))
    namespace.update(bound)
    return list(bound)


__all__ = ["bind", "install", "bind_one", "FUNCTIONS", "MULTISTAGE", "LATENCY"]
