"""Latency of layers and models (inference, training step), the hardware-aware search (``mode='auto'``)
and peak-memory probes, for any backend.

Run as ``python -m lrd_core.api.timing '<json>'`` it is the child process of a memory probe.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import json
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import latency as L
from .. import memory
from ..config import PlanConfig
from ..cost import layer_params
from ..errors import ConfigError
from ..factorize import skeleton
from ..latency_cache import LatencyCache, environment, layer_signature, variant_key
from ..layers import LayerInfo, SubLayer
from ..plan import Plan
from ..profile import Profiler
from . import checks
from ..adaptive_timing import adaptive_interleaved
from .model import layer_infos, rebuild
from .state import count_params


def check_device(backend, device: str = "CPU") -> str:
    """Select ``device`` (``CPU``, ``GPU``, ``Ascend``) for this framework; returns its canonical name.

    Raises
    ------
    DeviceError
        The device or the framework's build for it is not available here.
    """
    return backend.check_device(device)


def measure_latency(backend, target, input_shape, device: str = "CPU", mode: str = "infer", warmup: int = 2,
                    repeat: int = 9, threads: Optional[int] = None, num_classes: Optional[int] = None):
    """Median latency of a model or layer: inference, or one training step (forward, backward, SGD).

    Parameters
    ----------
    target : native model or list of native models
        A list is timed interleaved (A B C A B C ...); each result carries its paired ratio to the first.
    input_shape : tuple
        ``(N, C, H, W)`` (``(N, F)`` or ``(N, T, F)`` for a dense layer).
    device : {'CPU', 'GPU', 'Ascend'}
    mode : {'infer', 'train'}
        Training steps run on copies (the caller's weights stay as they are).
    threads : int, optional
        CPU threads while timing (None: the framework's current setting; the count used is reported).
    num_classes : int, optional
        Training uses a cross-entropy loss on random labels when given (a classifier), else the backward
        of a fixed output gradient.

    Returns
    -------
    LatencyResult or list of LatencyResult
    """
    if mode not in L.PHASES:
        raise ConfigError(f"mode must be one of {L.PHASES}, got {mode!r}")
    target_name = backend.check_device(device)
    single = isinstance(target, backend.model_type)
    models = [target] if single else list(target) if isinstance(target, (list, tuple)) else None
    if not models:
        raise ConfigError(f"measure_latency takes a {backend.name} model or a list of them, got "
                          f"{type(target).__name__}")
    for m in models:
        checks.model(backend, m)
    shape = checks.shape(input_shape, rank=0)
    if mode == "train":
        models = [backend.copy(m) for m in models]
    with backend.timing_scope(threads) as n:
        fns = backend.runners(models, shape, mode, target_name, num_classes=num_classes)
        try:
            timings = L.interleaved(fns, warmup, repeat)
        finally:
            backend.release(fns)         # MindSpore keeps compiled training cells alive otherwise
    out = L.results(timings, mode, shape[0], target_name.upper(), backend.name, n)
    return out[0] if single else out


# ------------------------------------------------------------------------------ layers for the search
def _random_subs(subs: List[SubLayer], seed: int) -> List[SubLayer]:
    rng = np.random.default_rng(seed)
    for s in subs:
        s.weight = rng.standard_normal(s.weight.shape, dtype=np.float32) * np.float32(0.05)
    return subs


def layer_module(backend, info: LayerInfo, method: str = "none", ranks=None, seed: int = 0):
    """A stand-alone original layer (``method='none'``) or its factor chain, with random weights."""
    if method == "none":
        subs = [SubLayer(info.kind, np.zeros(info.weight_shape, np.float32),
                         np.zeros(info.out_channels, np.float32) if info.has_bias else None,
                         info.stride, info.padding, info.dilation, info.groups)]
    else:
        subs = skeleton(info, method, ranks)
    return backend.build(_random_subs(subs, seed))


def layer_input_shape(info: LayerInfo, batch: int):
    """The input shape of a layer at ``batch``: (B, C, H, W); dense (B, F), or (B, T, F) on tokens."""
    if info.kind == "dense":
        tokens = getattr(info, "tokens", 1) or 1
        return (batch, info.in_channels) if tokens == 1 else (batch, tokens, info.in_channels)
    return (batch, info.in_channels) + tuple(info.input_hw)


def layer_timer(backend, device: str = "CPU", threads: Optional[int] = None, warmup: int = 2, repeat: int = 7):
    """The search's layer timer: ``timer(info, variants, "infer@8") -> [Timing]``, interleaved.

    The layers built for one layer shape are kept until another shape is timed, so the phases of a
    shape (the search times them one after another) reuse them instead of building them again.
    """
    target = backend.check_device(device)
    built: Dict[tuple, object] = {}

    def module(info: LayerInfo, method: str, ranks, seed: int):
        key = (layer_signature(info), variant_key(method, ranks))
        if built and next(iter(built))[0] != key[0]:
            built.clear()
        if key not in built:
            built[key] = layer_module(backend, info, method, ranks, seed=seed)
        return built[key]

    def timer(info: LayerInfo, variants, phase_key: str):
        phase, batch = L.parse_phase(phase_key)
        mods = [module(info, m, r, k) for k, (m, r) in enumerate(variants)]
        with backend.timing_scope(threads):
            fns = backend.runners(mods, layer_input_shape(info, batch), phase, target, input_grad=True)
            return adaptive_interleaved(fns, warmup=warmup, max_repeat=repeat)   # stops once the ratios settle
    return timer


def profiler(backend, device: str = "CPU", threads: Optional[int] = None, cache_path: Optional[str] = None,
             use_cache: bool = True, log=None) -> Profiler:
    """A cached :class:`~lrd_core.profile.Profiler` for this device, framework version and thread count."""
    target = backend.check_device(device)
    with backend.timing_scope(threads) as n:
        pass
    env = environment(target.upper(), backend.name, backend.version, n)
    return Profiler(layer_timer(backend, device, threads), LatencyCache(env, cache_path, memory=not use_cache), log)


def with_plan(backend, model, plan: Plan, seed: int = 0):
    """A copy of ``model`` with the plan's factor chains in place, filled with random weights (for
    timing and memory: no decomposition is computed)."""
    checks.model(backend, model)
    checks.plan(plan)
    variant = rebuild(backend, backend.copy(model), plan)
    rng = np.random.default_rng(seed)
    prefixes = tuple(lp.name + "." for lp in plan.decomposed())
    for name, t in backend.parameters(variant).items():
        if name.startswith(prefixes):
            backend.assign(t, rng.standard_normal(tuple(t.shape), dtype=np.float32) * np.float32(0.05))
    return variant


def model_verifier(backend, model, input_shape, device: str, phases: Sequence[str], threads=None,
                   repeat: int = 5, num_classes: Optional[int] = None):
    """``verify(plan) -> {phase: ratio}``: the compressed network against the original, interleaved."""
    def measure(*args, **kwargs):
        return measure_latency(backend, *args, **kwargs)

    def variant(m, plan):
        return with_plan(backend, m, plan)
    return L.plan_verifier(measure, variant, model, input_shape, device, phases, threads, repeat, num_classes)


def auto_plan(backend, model, input_shape=(1, 3, 224, 224), cache_path: Optional[str] = None,
              use_cache: bool = True, threads: Optional[int] = None, log=None, **options) -> Plan:
    """Hardware-aware plan: time the candidate layers on ``options['device']`` and choose.

    Keywords are the :class:`~lrd_core.PlanConfig` fields (``mode='auto'``, ``device``, ``budget``,
    ``objective``, ...) plus ``cache_path`` / ``use_cache`` (latency cache), ``threads`` and ``log``.
    """
    from ..search import search_plan
    from .verify import adaptive_verifier

    cfg = PlanConfig.from_kwargs(**options)
    backend.check_device(cfg.device)
    layers = layer_infos(backend, model, tuple(input_shape))
    weights = {name: backend.weight(layer) for name, layer in backend.named_layers(model)}
    fixed = count_params(backend, model) - sum(layer_params(l) for l in layers)
    prof = profiler(backend, cfg.device, threads, cache_path, use_cache, log)
    finals = [l for l in layers if l.role.is_final_dense]
    verify = None
    if cfg.verify:
        verify = adaptive_verifier(backend, model, input_shape, cfg.device,
                                   L.objective_phases(cfg.objective, cfg.profile_batch), threads,
                                   num_classes=finals[0].out_channels if finals else None)
    meta = {"framework": backend.name, "input_shape": list(input_shape), "framework_version": backend.version,
            "threads": int(prof.cache.env["threads"]) if str(prof.cache.env["threads"]).isdigit() else None}
    try:
        with quiet_collector():
            return search_plan(layers, cfg, prof, weights=weights, meta=meta, fixed_params=int(fixed),
                               verify=verify, log=log)
    finally:
        prof.cache.save()


@contextlib.contextmanager
def quiet_collector():
    """Objects alive now are left out of garbage collections until the block ends (``gc.freeze``).

    A framework may collect garbage before every graph compile (MindSpore does); the search builds and
    compiles hundreds of small networks, and each full collection walks every object of the process.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------------------ peak memory
def peak_memory(backend, model_name: str, model_kwargs: dict, plan: Optional[Plan], input_shape,
                device: str = "CPU", threads: Optional[int] = None, steps: int = 2) -> Dict[str, float]:
    """Peak memory (MiB above the imported framework) of inference and of training steps of a registered
    model, measured in a fresh process: ``{"infer_peak_mb", "train_peak_mb", "kind", "base_mb"}``."""
    if not isinstance(model_name, str) or not isinstance(model_kwargs, dict):
        raise ConfigError(f"peak_memory takes a registered model's name (str) and its keyword arguments (dict), got "
                          f"{type(model_name).__name__} and {type(model_kwargs).__name__}")
    if plan is not None:
        checks.plan(plan)
    input_shape = checks.shape(input_shape)
    backend.check_device(device)
    spec = {"framework": backend.name, "model": model_name, "model_kwargs": model_kwargs,
            "plan": None if plan is None else plan.to_dict(), "input_shape": list(input_shape), "device": device,
            "threads": threads, "steps": steps}
    return memory.run_child("lrd_core.api.timing", spec)


def _memory_child(spec: dict) -> dict:
    import gc

    adapter = importlib.import_module("lrd_" + spec["framework"])
    backend = adapter.BACKEND
    target = backend.check_device(spec["device"])
    with backend.timing_scope(spec.get("threads")):
        base = memory.rss_mb()
        model = adapter.models.create_model(spec["model"], **spec["model_kwargs"])
        if spec.get("plan"):
            rebuild(backend, model, Plan.from_dict(spec["plan"]))
        classes = spec["model_kwargs"].get("num_classes", 1000)
        probe = None if target.upper() == "CPU" else backend.device_memory()
        out = {"base_mb": base, "kind": "host RSS" if probe is None else "device allocated"}
        for phase in ("infer", "train"):
            run = backend.runners([model], spec["input_shape"], phase, target, num_classes=classes)[0]
            gc.collect()
            memory.reset_peak()
            if probe is not None:
                probe[0]()
            for _ in range(spec.get("steps", 2)):
                run()
            out[phase + "_peak_mb"] = probe[1]() if probe is not None else memory.peak_mb() - base
    return out


if __name__ == "__main__":
    print(json.dumps(_memory_child(json.loads(sys.argv[1]))))
