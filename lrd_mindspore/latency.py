"""Latency of MindSpore layers and networks (inference and training step, GRAPH mode), the layer
timer of the hardware-aware search, and peak-memory probes. CPU, GPU and Ascend.

GRAPH mode compiles every cell once per input shape (~0.2 s for a layer, seconds for a network);
warm-up runs absorb it. Run as ``python -m lrd_mindspore.latency '<json>'`` it is the child
process of a memory probe.
"""
from __future__ import annotations

from . import _env  # noqa: F401  (oneDNN ISA cap before mindspore loads)

import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Dict, Optional, Sequence, Union  # noqa: E402

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import nn, ops  # noqa: E402

from lrd_core import latency as L  # noqa: E402
from lrd_core import memory  # noqa: E402
from lrd_core.errors import ConfigError, DeviceError  # noqa: E402
from lrd_core.factorize import skeleton  # noqa: E402
from lrd_core.latency_cache import LatencyCache, environment  # noqa: E402
from lrd_core.layers import LayerInfo, SubLayer  # noqa: E402
from lrd_core.plan import Plan  # noqa: E402
from lrd_core.profile import Profiler  # noqa: E402

from .apply import build, rebuild  # noqa: E402

FRAMEWORK = "mindspore"
_TARGETS = {"CPU": "CPU", "GPU": "GPU", "CUDA": "GPU", "ASCEND": "Ascend"}
_HOW = {"Ascend": "on an Ascend 910 host with CANN and the Ascend build of mindspore installed",
        "GPU": "on an NVIDIA GPU host with the GPU (CUDA) build of mindspore installed"}


def check_device(device: str = "CPU") -> str:
    """Select ``device`` for MindSpore (CPU, GPU, Ascend); a clear error when it is not here."""
    target = _TARGETS.get(str(device).upper())
    if target is None:
        raise DeviceError(f"unknown device {device!r}; use CPU, GPU or Ascend")
    if target != "CPU" and not ms.hal.is_available(target):
        raise DeviceError(f"MindSpore {ms.__version__} here has no {target} backend (no device or a CPU-only "
                          f"package); run {_HOW[target]}, or use --device CPU")
    current = ms.get_current_device().device_target
    if current != target:
        try:
            ms.set_device(target)
        except RuntimeError as exc:
            raise DeviceError(f"cannot switch MindSpore from {current} to {target} in this process ({exc}); call "
                              f"mindspore.set_device({target!r}) before anything else runs") from None
    return target


def set_threads(threads: Optional[int]) -> Optional[int]:
    """Cap MindSpore's CPU kernel threads once per process (later calls keep the first value)."""
    from mindspore._c_expression import RuntimeConf

    conf = RuntimeConf.get_instance()
    if threads and not conf.is_op_threads_num_configured():
        ms.device_context.cpu.op_tuning.threads_num(int(threads))
    return int(threads) if threads else None


class _Head(nn.Cell):
    """Returns one element of the output, so that reading it waits for the whole network cheaply."""

    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x):
        return self.net(x).reshape(-1)[0:1]


class _SumLoss(nn.Cell):
    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x):
        return self.net(x).sum()


class _LayerStep(nn.Cell):
    """Forward, gradients of the weights and of the input (as inside a network), momentum update."""

    def __init__(self, net, opt):
        super().__init__(auto_prefix=False)
        self.loss = _SumLoss(net)
        self.opt = opt
        self.weights = opt.parameters
        self.grad = ops.GradOperation(get_all=True, get_by_list=True)

    def construct(self, x):
        loss = self.loss(x)
        grads = self.grad(self.loss, self.weights)(x)
        self.opt(grads[1])
        return loss


def _graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)


def _fns(cells: Sequence[nn.Cell], shape, phase: str, seed: int = 0, num_classes: Optional[int] = None):
    rng = np.random.default_rng(seed)
    x = ms.Tensor(rng.standard_normal(tuple(shape)).astype(np.float32))
    fns = []
    for cell in cells:
        if phase == "infer":
            head = _Head(cell)
            head.set_train(False)
            fns.append(lambda h=head: h(x).asnumpy())
            continue
        opt = nn.Momentum(cell.trainable_params(), learning_rate=1e-4, momentum=0.9)
        if num_classes:
            y = ms.Tensor(rng.integers(0, num_classes, (shape[0],)).astype(np.int32))
            loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
            step = nn.TrainOneStepCell(nn.WithLossCell(cell, loss), opt)
            step.set_train(True)
            fns.append(lambda s=step: s(x, y).asnumpy())
        else:
            step = _LayerStep(cell, opt)
            step.set_train(True)
            fns.append(lambda s=step: s(x).asnumpy())
    return fns


def measure_latency(target: Union[nn.Cell, Sequence[nn.Cell]], input_shape, device: str = "CPU",
                    mode: str = "infer", warmup: int = 2, repeat: int = 9, threads: Optional[int] = None,
                    num_classes: Optional[int] = None):
    """Median latency of a network or layer in GRAPH mode, inference or one training step.

    Parameters
    ----------
    target : nn.Cell or list of nn.Cell
        A list is timed interleaved (A B C A B C ...); each result carries its paired ratio to the
        first cell.
    input_shape : tuple
    mode : {'infer', 'train'}
        Training steps (forward, backward, Momentum) run on copies of the cells.
    num_classes : int, optional
        Training uses softmax cross-entropy on random labels when given, else the gradient of the
        output sum (weights and input).

    Returns
    -------
    LatencyResult or list of LatencyResult
    """
    if mode not in L.PHASES:
        raise ConfigError(f"mode must be one of {L.PHASES}, got {mode!r}")
    target_name = check_device(device)
    set_threads(threads)
    cells = [target] if isinstance(target, nn.Cell) else list(target)
    if mode == "train":
        cells = [_copy(c) for c in cells]
    previous = ms.get_context("mode")
    _graph_mode()
    try:
        timings = L.interleaved(_fns(cells, input_shape, mode, num_classes=num_classes), warmup, repeat)
    finally:
        ms.set_context(mode=previous)
    out = L.results(timings, mode, int(input_shape[0]), target_name.upper(), FRAMEWORK, threads)
    return out[0] if isinstance(target, nn.Cell) else out


def _copy(cell: nn.Cell) -> nn.Cell:
    new = copy.deepcopy(cell)
    for name, p in new.parameters_and_names():
        p.name = name          # unique names for the optimizer of the copy
    return new


# ------------------------------------------------------------------------------ layers for the search
def layer_cell(info: LayerInfo, method: str = "none", ranks=None, seed: int = 0) -> nn.Cell:
    """A stand-alone original layer (``method='none'``) or its factor chain, random weights."""
    if method == "none":
        subs = [SubLayer(info.kind, np.zeros(info.weight_shape, np.float32),
                         np.zeros(info.out_channels, np.float32) if info.has_bias else None,
                         info.stride, info.padding, info.dilation, info.groups)]
    else:
        subs = skeleton(info, method, ranks)
    rng = np.random.default_rng(seed)
    for s in subs:
        s.weight = (0.05 * rng.standard_normal(s.weight.shape)).astype(np.float32)
    cell = build(subs)
    cell.update_parameters_name(f"v{seed}.")
    return cell


def layer_input_shape(info: LayerInfo, batch: int):
    if info.kind == "dense":
        return (batch, info.in_channels)
    return (batch, info.in_channels) + tuple(info.input_hw)


def layer_timer(device: str = "CPU", threads: Optional[int] = None, warmup: int = 2, repeat: int = 7):
    """The search's layer timer: ``timer(info, variants, "infer@8") -> [Timing]``, interleaved."""
    check_device(device)
    set_threads(threads)

    def timer(info: LayerInfo, variants, phase_key: str):
        phase, batch = L.parse_phase(phase_key)
        cells = [layer_cell(info, m, r, seed=k) for k, (m, r) in enumerate(variants)]
        previous = ms.get_context("mode")
        _graph_mode()
        try:
            return L.interleaved(_fns(cells, layer_input_shape(info, batch), phase), warmup=warmup, repeat=repeat)
        finally:
            ms.set_context(mode=previous)
    return timer


def profiler(device: str = "CPU", threads: Optional[int] = None, cache_path: Optional[str] = None,
             use_cache: bool = True, log=None) -> Profiler:
    """A cached :class:`~lrd_core.profile.Profiler` for this device and MindSpore version."""
    target = check_device(device)
    env = environment(target.upper(), FRAMEWORK, ms.__version__, threads)
    return Profiler(layer_timer(device, threads), LatencyCache(env, cache_path, memory=not use_cache), log)


def count_params(net: nn.Cell) -> int:
    """Number of trainable parameters (weights, biases, BatchNorm gamma/beta)."""
    return int(sum(int(np.prod(p.shape)) for p in net.trainable_params()))


def with_plan(net: nn.Cell, plan: Plan, seed: int = 0) -> nn.Cell:
    """A copy of ``net`` with the plan's factor chains in place, filled with random weights
    (for timing and memory: no decomposition is computed)."""
    variant = rebuild(_copy(net), plan)
    rng = np.random.default_rng(seed)
    prefixes = tuple(lp.name + "." for lp in plan.decomposed())
    for name, p in variant.parameters_and_names():
        if name.startswith(prefixes):
            p.set_data(ms.Tensor((0.05 * rng.standard_normal(tuple(p.shape))).astype(np.float32)))
    return variant


def model_verifier(net: nn.Cell, input_shape, device: str, phases: Sequence[str], threads=None,
                   repeat: int = 5, num_classes: Optional[int] = None):
    """``verify(plan) -> {phase: ratio}``: the compressed network against the original, interleaved."""
    return L.plan_verifier(measure_latency, with_plan, net, input_shape, device, phases, threads, repeat, num_classes)


# ------------------------------------------------------------------------------ mode="auto"
def auto_plan(net: nn.Cell, input_shape=(1, 3, 224, 224), cache_path: Optional[str] = None,
              use_cache: bool = True, threads: Optional[int] = None, log=None, **options) -> Plan:
    """Hardware-aware plan: time the candidate layers on ``options['device']`` and choose.

    Keywords are the :class:`~lrd_core.PlanConfig` fields (``mode='auto'``, ``device``, ``budget``,
    ``objective``, ...) plus ``cache_path`` / ``use_cache`` (latency cache), ``threads`` and ``log``.
    """
    from lrd_core.config import PlanConfig
    from lrd_core.search import search_plan

    from .inspect import inspect as inspect_net, named_layers, weight

    cfg = PlanConfig.from_kwargs(**options)
    check_device(cfg.device)
    set_threads(threads)
    layers = inspect_net(net, input_shape=input_shape)
    named = named_layers(net)
    weights = {name: weight(c) for name, c in named}
    conv_dense = sum(int(np.prod(p.shape)) for _, c in named for p in c.get_parameters(expand=False))
    fixed = sum(int(np.prod(p.shape)) for p in net.trainable_params()) - conv_dense
    prof = profiler(cfg.device, threads, cache_path, use_cache, log)
    finals = [l for l in layers if l.role.is_final_dense]
    verify = None
    if cfg.verify:
        verify = model_verifier(net, input_shape, cfg.device, L.objective_phases(cfg.objective, cfg.profile_batch),
                                threads, num_classes=finals[0].out_channels if finals else None)
    meta = {"framework": FRAMEWORK, "input_shape": list(input_shape), "mindspore_version": ms.__version__,
            "threads": threads}
    was_training = net.training
    try:
        return search_plan(layers, cfg, prof, weights=weights, meta=meta, fixed_params=int(fixed),
                           verify=verify, log=log)
    finally:
        prof.cache.save()
        net.set_train(was_training)


# ------------------------------------------------------------------------------ peak memory
def peak_memory(model_name: str, model_kwargs: dict, plan: Optional[Plan], input_shape, device: str = "CPU",
                threads: Optional[int] = None, steps: int = 2) -> Dict[str, float]:
    """Peak RSS (MiB above the imported framework) of inference and of training steps (GRAPH mode,
    compilation included), measured in a fresh process: ``{"infer_peak_mb", "train_peak_mb"}``."""
    check_device(device)
    spec = {"model": model_name, "model_kwargs": model_kwargs, "plan": None if plan is None else plan.to_dict(),
            "input_shape": list(input_shape), "device": device, "threads": threads, "steps": steps}
    return memory.run_child("lrd_mindspore.latency", spec)


def _memory_child(spec: dict) -> dict:
    import gc

    from . import models
    check_device(spec["device"])
    set_threads(spec.get("threads"))
    _graph_mode()
    base = memory.rss_mb()
    net = models.create_model(spec["model"], **spec["model_kwargs"])
    if spec.get("plan"):
        rebuild(net, Plan.from_dict(spec["plan"]))
    classes = spec["model_kwargs"].get("num_classes", 1000)
    host = spec["device"].upper() == "CPU"
    out = {"base_mb": base, "kind": "host RSS" if host else "device allocated"}
    for phase in ("infer", "train"):
        run = _fns([net], spec["input_shape"], phase, num_classes=classes)[0]
        gc.collect()
        memory.reset_peak()
        if not host:
            ms.runtime.reset_peak_memory_stats()
        for _ in range(spec.get("steps", 2)):
            run()
        if host:
            out[phase + "_peak_mb"] = memory.peak_mb() - base
        else:
            out[phase + "_peak_mb"] = ms.runtime.max_memory_allocated() / 2 ** 20
    return out


if __name__ == "__main__":
    print(json.dumps(_memory_child(json.loads(sys.argv[1]))))
