"""Latency of torch layers and models (inference and training step), the layer timer of the
hardware-aware search, and peak-memory probes. CPU and CUDA.

Run as ``python -m lrd_torch.latency '<json>'`` it is the child process of a memory probe.
"""
from __future__ import annotations

import contextlib
import copy
import json
import sys
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from lrd_core import latency as L
from lrd_core import memory
from lrd_core.errors import ConfigError, DeviceError
from lrd_core.factorize import skeleton
from lrd_core.latency_cache import LatencyCache, environment
from lrd_core.layers import LayerInfo, SubLayer
from lrd_core.plan import Plan
from lrd_core.profile import Profiler

from .apply import build, rebuild

FRAMEWORK = "torch"
_DEVICES = {"CPU": "cpu", "GPU": "cuda", "CUDA": "cuda"}


def check_device(device: str = "CPU") -> torch.device:
    """The torch device for ``CPU`` / ``GPU`` (``CUDA``); a clear error when it is not here."""
    name = _DEVICES.get(str(device).upper() if str(device).upper() != "ASCEND" else "ASCEND")
    if str(device).upper() == "ASCEND":
        raise DeviceError("torch has no Ascend backend here; use --framework mindspore for Ascend 910/310")
    if name is None:
        raise DeviceError(f"unknown device {device!r}; use CPU or GPU")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("no CUDA device visible to torch (this is a CPU-only build or host); run on a GPU "
                          "host with a CUDA build of torch, or use --device CPU")
    return torch.device(name)


def set_threads(threads: Optional[int]) -> int:
    """Set torch's intra-op threads when given; return the count in use."""
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


@contextlib.contextmanager
def threads_scope(threads: Optional[int]):
    """Use ``threads`` intra-op threads inside the block, then restore the previous count."""
    previous = torch.get_num_threads()
    n = set_threads(threads)
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


def _sync(dev: torch.device):
    if dev.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _infer_fn(module: nn.Module, x: torch.Tensor, dev: torch.device):
    module.eval()
    sync = _sync(dev)

    def run():
        with torch.no_grad():
            module(x)
        sync()
    return run


def _train_fn(module: nn.Module, x: torch.Tensor, dev: torch.device, labels: Optional[torch.Tensor] = None,
              input_grad: bool = False):
    """One SGD-momentum step; cross-entropy when ``labels`` are given, else backward of a fixed
    output gradient (and the input gradient, as inside a network, with ``input_grad``)."""
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    sync = _sync(dev)
    xin = x.detach().clone().requires_grad_(input_grad)
    loss_fn = nn.CrossEntropyLoss()
    grad_out = []

    def run():
        opt.zero_grad(set_to_none=True)
        out = module(xin)
        if labels is not None:
            loss_fn(out, labels).backward()
        else:
            if not grad_out:
                grad_out.append(torch.ones_like(out) / out.numel())
            out.backward(grad_out[0])
        opt.step()
        sync()
    return run


def _fns(modules: Sequence[nn.Module], shape, phase: str, dev: torch.device, seed: int = 0,
         num_classes: Optional[int] = None, input_grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g).to(dev)
    if phase == "infer":
        return [_infer_fn(m, x, dev) for m in modules]
    labels = None
    if num_classes:
        labels = torch.randint(0, num_classes, (shape[0],), generator=g).to(dev)
    return [_train_fn(m, x, dev, labels, input_grad) for m in modules]


def measure_latency(target: Union[nn.Module, Sequence[nn.Module]], input_shape, device: str = "CPU",
                    mode: str = "infer", warmup: int = 2, repeat: int = 9, threads: Optional[int] = None,
                    num_classes: Optional[int] = None):
    """Median latency of a model or layer, inference or one training step (forward, backward, SGD).

    Parameters
    ----------
    target : nn.Module or list of nn.Module
        A list is timed interleaved (A B C A B C ...) and each result carries its paired ratio
        to the first module.
    input_shape : tuple
        ``(N, C, H, W)`` (or ``(N, F)`` for a dense layer).
    mode : {'infer', 'train'}
        Training steps run on copies of the modules (the caller's weights stay as they are).
    num_classes : int, optional
        Training uses a cross-entropy loss on random labels when given (a classifier), else the
        backward of a fixed output gradient.

    Returns
    -------
    LatencyResult or list of LatencyResult
    """
    if mode not in L.PHASES:
        raise ConfigError(f"mode must be one of {L.PHASES}, got {mode!r}")
    dev = check_device(device)
    modules = [target] if isinstance(target, nn.Module) else list(target)
    if mode == "train":     # real optimizer steps: never on the caller's weights
        modules = [copy.deepcopy(m) for m in modules]
    modules = [m.to(dev) for m in modules]
    with threads_scope(threads) as n:
        timings = L.interleaved(_fns(modules, input_shape, mode, dev, num_classes=num_classes), warmup, repeat)
    out = L.results(timings, mode, int(input_shape[0]), str(device).upper(), FRAMEWORK, n)
    return out[0] if isinstance(target, nn.Module) else out


# ------------------------------------------------------------------------------ layers for the search
def _random_subs(subs: List[SubLayer], seed: int) -> List[SubLayer]:
    rng = np.random.default_rng(seed)
    for s in subs:
        s.weight = (0.05 * rng.standard_normal(s.weight.shape)).astype(np.float32)
    return subs


def layer_module(info: LayerInfo, method: str = "none", ranks=None, seed: int = 0) -> nn.Module:
    """A stand-alone original layer (``method='none'``) or its factor chain, random weights."""
    if method == "none":
        subs = [SubLayer(info.kind, np.zeros(info.weight_shape, np.float32),
                         np.zeros(info.out_channels, np.float32) if info.has_bias else None,
                         info.stride, info.padding, info.dilation, info.groups)]
    else:
        subs = skeleton(info, method, ranks)
    return build(_random_subs(subs, seed))


def layer_input_shape(info: LayerInfo, batch: int):
    if info.kind == "dense":
        return (batch, info.in_channels)
    return (batch, info.in_channels) + tuple(info.input_hw)


def layer_timer(device: str = "CPU", threads: Optional[int] = None, warmup: int = 2, repeat: int = 7):
    """The search's layer timer: ``timer(info, variants, "infer@8") -> [Timing]``, interleaved."""
    dev = check_device(device)

    def timer(info: LayerInfo, variants, phase_key: str):
        phase, batch = L.parse_phase(phase_key)
        mods = [layer_module(info, m, r).to(dev) for m, r in variants]
        fns = _fns(mods, layer_input_shape(info, batch), phase, dev, input_grad=True)
        with threads_scope(threads):
            return L.interleaved(fns, warmup=warmup, repeat=repeat)
    return timer


def profiler(device: str = "CPU", threads: Optional[int] = None, cache_path: Optional[str] = None,
             use_cache: bool = True, log=None) -> Profiler:
    """A cached :class:`~lrd_core.profile.Profiler` for this device and torch version."""
    check_device(device)
    env = environment(device.upper(), FRAMEWORK, torch.__version__, threads or torch.get_num_threads())
    cache = LatencyCache(env, cache_path, memory=not use_cache)
    return Profiler(layer_timer(device, threads), cache, log)


def count_params(model: nn.Module) -> int:
    """Number of parameters (weights, biases, BatchNorm affine; no running statistics)."""
    return int(sum(p.numel() for p in model.parameters()))


def with_plan(model: nn.Module, plan: Plan, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with the plan's factor chains in place, filled with random weights
    (for timing and memory: no decomposition is computed)."""
    net = rebuild(copy.deepcopy(model), plan)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for lp in plan.decomposed():
            for p in net.get_submodule(lp.name).parameters():
                p.copy_(torch.from_numpy((0.05 * rng.standard_normal(tuple(p.shape))).astype(np.float32)))
    return net


def model_verifier(model: nn.Module, input_shape, device: str, phases: Sequence[str], threads=None,
                   repeat: int = 5, num_classes: Optional[int] = None):
    """``verify(plan) -> {phase: ratio}``: the compressed network against the original, interleaved."""
    return L.plan_verifier(measure_latency, with_plan, model, input_shape, device, phases, threads, repeat, num_classes)


# ------------------------------------------------------------------------------ mode="auto"
def auto_plan(model: nn.Module, input_shape=(1, 3, 224, 224), cache_path: Optional[str] = None,
              use_cache: bool = True, threads: Optional[int] = None, log=None, **options) -> Plan:
    """Hardware-aware plan: time the candidate layers on ``options['device']`` and choose.

    Keywords are the :class:`~lrd_core.PlanConfig` fields (``mode='auto'``, ``device``, ``budget``,
    ``objective``, ...) plus ``cache_path`` / ``use_cache`` (latency cache), ``threads`` and ``log``.
    """
    from lrd_core.config import PlanConfig
    from lrd_core.search import search_plan

    from .inspect import inspect as inspect_model, named_layers, weight

    cfg = PlanConfig.from_kwargs(**options)
    check_device(cfg.device)
    n = threads or torch.get_num_threads()
    layers = inspect_model(model, input_shape=input_shape)
    named = named_layers(model)
    weights = {name: weight(m) for name, m in named}
    conv_dense = sum(p.numel() for _, m in named for p in m.parameters(recurse=False))
    fixed = sum(p.numel() for p in model.parameters()) - conv_dense
    prof = profiler(cfg.device, threads, cache_path, use_cache, log)
    finals = [l for l in layers if l.role.is_final_dense]
    verify = None
    if cfg.verify:
        verify = model_verifier(model, input_shape, cfg.device, L.objective_phases(cfg.objective, cfg.profile_batch),
                                threads, num_classes=finals[0].out_channels if finals else None)
    meta = {"framework": FRAMEWORK, "input_shape": list(input_shape), "torch_version": torch.__version__,
            "threads": n}
    was_training = model.training
    try:
        return search_plan(layers, cfg, prof, weights=weights, meta=meta, fixed_params=int(fixed),
                           verify=verify, log=log)
    finally:
        prof.cache.save()
        model.train(was_training)


# ------------------------------------------------------------------------------ peak memory
def peak_memory(model_name: str, model_kwargs: dict, plan: Optional[Plan], input_shape, device: str = "CPU",
                threads: Optional[int] = None, steps: int = 2) -> Dict[str, float]:
    """Peak RSS (MiB above the imported framework) of inference and of training steps, measured in
    a fresh process: ``{"infer_peak_mb", "train_peak_mb"}``."""
    check_device(device)
    spec = {"model": model_name, "model_kwargs": model_kwargs, "plan": None if plan is None else plan.to_dict(),
            "input_shape": list(input_shape), "device": device, "threads": threads, "steps": steps}
    return memory.run_child("lrd_torch.latency", spec)


def _memory_child(spec: dict) -> dict:
    import gc

    from . import models
    set_threads(spec.get("threads"))
    dev = check_device(spec["device"])
    base = memory.rss_mb()
    model = models.create_model(spec["model"], **spec["model_kwargs"])
    if spec.get("plan"):
        rebuild(model, Plan.from_dict(spec["plan"]))
    model.to(dev)
    classes = spec["model_kwargs"].get("num_classes", 1000)
    out = {"base_mb": base, "kind": "host RSS" if dev.type == "cpu" else "CUDA allocated"}
    for phase in ("infer", "train"):
        run = _fns([model], spec["input_shape"], phase, dev, num_classes=classes)[0]
        gc.collect()
        memory.reset_peak()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(spec.get("steps", 2)):
            run()
        if dev.type == "cuda":
            out[phase + "_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            out[phase + "_peak_mb"] = memory.peak_mb() - base
    return out


if __name__ == "__main__":
    print(json.dumps(_memory_child(json.loads(sys.argv[1]))))

