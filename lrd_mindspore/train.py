"""Training and evaluation for MindSpore: ``ms.train.Model`` with callbacks, GRAPH-mode train steps,
factor freezing, resumable checkpoints, data parallelism.

``fit`` drives ``ms.train.Model`` (non-sink mode; sinking: :mod:`lrd_mindspore.sink`) over a network
that dispatches every step to the compiled train cell of the current freezing phase
(:class:`PhaseSteps`: one optimizer over the phase's trainable parameters + one ``TrainStep`` per
phase, cached; all phase optimizers share the momentum buffers and the step counter that indexes the
LR array). Options, logs and checkpoint layout match :mod:`lrd_torch.train`.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, nn, ops
from mindspore.train import Callback, Model

from lrd_core import freezing
from lrd_core.api.freeze import apply_frozen
from lrd_core.distill import as_distill_config, check_teacher
from lrd_core.distributed import DistContext
from lrd_core.errors import ConfigError, MismatchError
from lrd_core.layout import OPTIMIZER_FILES, PLAN_FILE, WEIGHT_FILES
from lrd_core.optim import optimizer_config
from lrd_core.plan import Plan
from lrd_core.trainstate import Monitor, TrainState, read_state, resume_or_start, resume_text
from lrd_core.trainstate import save_training_checkpoint as save_training_checkpoint_dir
from lrd_data import Loader
from lrd_data.loader import train_loader
from lrd_mindspore import evaluate, load_checkpoint, predict, state_to_numpy, write_checkpoint  # noqa: F401

from . import distributed as D
from .backend import BACKEND
from .optim import SAVED as OPT_SAVED, STATE as OPT_STATE, build_optimizer
from .data import from_loader

WEIGHTS, OPTIMIZER = WEIGHT_FILES["mindspore"], OPTIMIZER_FILES["mindspore"]


# ------------------------------------------------------------------------------------ evaluation
def _batch_norms(net: nn.Cell):
    return [c for _, c in net.cells_and_names() if isinstance(c, (nn.BatchNorm2d, nn.BatchNorm1d))]


def recalibrate_bn(net: nn.Cell, data, batches: int = 20, batch_size: int = 64, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's moving statistics as the exact average over ``batches`` batches.

    MindSpore's BatchNorm momentum is fixed in the compiled op, so each batch's statistics are
    recovered from the update ``new = (1 - c) old + c batch`` and averaged here. Returns the
    number of batches used.
    """
    loader = data if isinstance(data, Loader) else Loader(data, batch_size, shuffle=True, seed=seed)
    bns = _batch_norms(net)
    sums = [[np.zeros(b.moving_mean.shape, np.float64), np.zeros(b.moving_variance.shape, np.float64)] for b in bns]
    was = net.training
    net.set_train(True)
    used = 0
    try:
        for x, _ in loader.epoch_batches(0):
            if used >= batches:
                break
            old = [(b.moving_mean.asnumpy().astype(np.float64), b.moving_variance.asnumpy().astype(np.float64))
                   for b in bns]
            net(ms.Tensor(x))
            for b, (m0, v0), acc in zip(bns, old, sums):
                c = float(b.momentum)
                acc[0] += (b.moving_mean.asnumpy() - (1 - c) * m0) / c
                acc[1] += (b.moving_variance.asnumpy() - (1 - c) * v0) / c
            used += 1
    finally:
        net.set_train(was)
    if used:
        for b, (m, v) in zip(bns, sums):
            b.moving_mean.set_data(ms.Tensor((m / used).astype(np.float32)))
            b.moving_variance.set_data(ms.Tensor(np.maximum(v / used, 0).astype(np.float32)))
    return used


# ------------------------------------------------------------------------------------ train cells
class WithLoss(nn.Cell):
    """``(loss, logits)`` of a network on a batch."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell):
        super().__init__(auto_prefix=False)
        self.net, self.loss_fn = net, loss_fn

    def construct(self, x, y):
        logits = self.net(x)
        return self.loss_fn(logits, y), logits


class TrainStep(nn.Cell):
    """One optimizer step; gradients only for the optimizer's parameters. Returns (loss, #correct)."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer):
        super().__init__(auto_prefix=False)
        self.with_loss = WithLoss(net, loss_fn)
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad_fn = ms.value_and_grad(self.with_loss, None, self.weights, has_aux=True)
        self.reducer = ops.identity
        if ms.get_auto_parallel_context("parallel_mode") in (ms.ParallelMode.DATA_PARALLEL,
                                                                ms.ParallelMode.HYBRID_PARALLEL):
            from mindspore.communication import get_group_size
            self.reducer = nn.DistributedGradReducer(self.weights, True, get_group_size())

    def construct(self, x, y):
        (loss, logits), grads = self.grad_fn(x, y)
        grads = self.reducer(grads)
        loss = ops.depend(loss, self.optimizer(grads))
        correct = (logits.argmax(1) == y).astype(ms.float32).sum()
        return loss, correct


class PhaseSteps:
    """Train cells per freezing phase over one shared optimizer state (momentum SGD or AdamW buffers,
    see :mod:`lrd_mindspore.optim`, and the step counter that indexes the LR)."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, lr: Sequence[float], momentum: float, weight_decay: float,
                 optimizer=None):
        self.net, self.loss_fn, self.momentum, self.weight_decay = net, loss_fn, momentum, weight_decay
        self.optimizer = optimizer_config(optimizer, momentum, weight_decay)
        self.lr = ms.Tensor(np.asarray(lr, np.float32))
        self.params: Dict[str, Parameter] = BACKEND.parameters(net)
        for p in self.params.values():
            p.requires_grad = True
        self.master = self._optimizer(list(self.params.values()))
        self.state_of = {attr: {id(p): buf for p, buf in zip(self.master.parameters, getattr(self.master, attr))}
                         for attr in OPT_STATE[self.optimizer.name]}
        self.cache: Dict[FrozenSet[str], TrainStep] = {}
        self.step_cls = TrainStep

    def _optimizer(self, params):
        name_of = {id(p): k for k, p in self.params.items()}
        return build_optimizer([(name_of[id(p)], p) for p in params], self.optimizer, self.lr)

    def get(self, frozen: FrozenSet[str]) -> TrainStep:
        """The train cell of the phase that freezes ``frozen`` (built and compiled once)."""
        apply_frozen(BACKEND, self.params, frozen)
        if frozen not in self.cache:
            if frozen:
                opt = self._optimizer([p for k, p in self.params.items() if k not in frozen])
                for attr, of in self.state_of.items():
                    setattr(opt, attr, ParameterTuple([of[id(p)] for p in opt.parameters]))
                opt.global_step = self.master.global_step
            else:
                opt = self.master
            cell = self.step_cls(self.net, self.loss_fn, opt)
            cell.set_train(True)
            self.cache[frozen] = cell
        return self.cache[frozen]

    @property
    def global_step(self) -> int:
        return int(self.master.global_step.asnumpy().reshape(-1)[0])

    def save(self, path: str) -> None:
        """Write the shared optimizer buffers (by parameter name) and the step counter as a .ckpt."""
        by_id = {id(p): k for k, p in self.params.items()}
        items = [{"name": OPT_SAVED[attr] + by_id[id(p)], "data": buf} for attr in self.state_of
                 for p, buf in zip(self.master.parameters, getattr(self.master, attr))]
        items.append({"name": "global_step", "data": self.master.global_step})
        ms.save_checkpoint(items, path)

    def load(self, path: str) -> None:
        """Restore what :meth:`save` wrote."""
        saved = ms.load_checkpoint(path)
        by_id = {id(q): k for k, q in self.params.items()}
        for attr in self.state_of:
            key = OPT_SAVED[attr]
            if key + by_id[id(self.master.parameters[0])] not in saved:
                raise MismatchError(f"{path} holds no {self.optimizer.name} optimizer state ({key}*); it was written "
                                    f"by a run with another optimizer: use a fresh output_path or resume: false")
            for p, buf in zip(self.master.parameters, getattr(self.master, attr)):
                buf.set_data(ms.Tensor(saved[key + by_id[id(p)]].asnumpy()))
        self.master.global_step.set_data(ms.Tensor(saved["global_step"].asnumpy()))


class PhaseSwitch(nn.Cell):
    """The network handed to ``ms.train.Model``: runs the train cell chosen for the coming step."""

    def __init__(self, net: nn.Cell):
        super().__init__(auto_prefix=False)
        self.net = net
        self._current = {"cell": None}

    def select(self, cell: TrainStep) -> None:
        self._current["cell"] = cell

    def __call__(self, *inputs):
        return self._current["cell"](*inputs)


# ------------------------------------------------------------------------------------ checkpoints
def save_training_checkpoint(directory: str, net: nn.Cell, steps: PhaseSteps, state: TrainState,
                             plan: Optional[Plan] = None, keep: int = 2) -> str:
    """Write ``directory/ckpt-<step>/`` atomically (weights, optimizer, state, plan); prune old ones."""
    return save_training_checkpoint_dir(directory, state, plan, keep, {
        WEIGHTS: lambda path: BACKEND.write_native(state_to_numpy(net), path), OPTIMIZER: steps.save})


def restore_training_checkpoint(path: str, net: nn.Cell, steps: Optional[PhaseSteps] = None) -> TrainState:
    """Load weights (and optimizer state) of a training checkpoint directory; returns its state."""
    load_checkpoint(net, os.path.join(path, WEIGHTS))
    if steps is not None:
        steps.load(os.path.join(path, OPTIMIZER))
    return read_state(path)


# ------------------------------------------------------------------------------------ training
class _Driver(Callback):
    """Picks each step's phase, feeds the monitor, evaluates and checkpoints."""

    def __init__(self, run: dict):
        super().__init__()
        self.run = run
        self.t0 = 0.0

    def on_train_step_begin(self, run_context):
        r, state = self.run, self.run["state"]
        k = freezing.phase_index(r["freeze"], state.epoch, state.global_step)
        if k != r.get("phase"):
            r["switch"].select(r["steps"].get(freezing.frozen_parameters(r["plan"], r["freeze"], k)))
            r["phase"] = k
            r["monitor"].on_phase(k)
        self.t0 = time.perf_counter()

    def on_train_step_end(self, run_context):
        r, state = self.run, self.run["state"]
        p = run_context.original_args()
        loss, correct = p.net_outputs
        loss, correct = float(loss.asnumpy()), float(correct.asnumpy())
        r["monitor"].on_step(loss, correct, int(p.train_dataset_element[1].shape[0]), time.perf_counter() - self.t0)
        for cb in r["on_step"]:
            cb(state)
        every = r["save_every_steps"]
        if r["out_dir"] and r["main"] and every and state.global_step % every == 0 and state.step_in_epoch:
            save_training_checkpoint(r["out_dir"], r["net"], r["steps"], state, r["plan"], r["keep"])

    def on_train_epoch_end(self, run_context):
        r, state = self.run, self.run["state"]
        acc = evaluate(r["net"], r["eval_data"]) if r["eval_data"] is not None else None
        r["net"].set_train(True)
        r["monitor"].on_epoch_end(acc)
        every = r["save_every_epochs"]
        if r["out_dir"] and r["main"] and every and (state.epoch % every == 0 or state.finished):
            save_training_checkpoint(r["out_dir"], r["net"], r["steps"], state, r["plan"], r["keep"])


def fit(net: nn.Cell, data, lr: Sequence[float], epochs: int, batch_size: int = 64, momentum: float = 0.9,
        weight_decay: float = 1e-4, label_smoothing: float = 0.0, seed: int = 0,
        log: Optional[Callable[[str], None]] = print, *, plan: Optional[Plan] = None, freeze=None,
        out_dir: Optional[str] = None, resume: bool = True, save_every_steps: int = 0, save_every_epochs: int = 1,
        keep: int = 2, eval_data=None, log_every: int = 0, progress: Optional[bool] = None,
        on_step: Iterable[Callable[[TrainState], None]] = (), dist: Optional[DistContext] = None,
        callbacks: Sequence[Callback] = (), teacher: Optional[nn.Cell] = None, distill=None,
        optimizer=None, precision=None) -> dict:
    """Train ``net`` with momentum SGD (or AdamW, ``optimizer``) through ``ms.train.Model``; ``lr`` holds
    one value per step.

    Parameters are those of :func:`lrd_torch.train.fit`; ``data`` may also be a native MindSpore
    dataset (``lrd_mindspore.data.imagenet`` / ``cifar10``), and ``callbacks`` are extra MindSpore
    callbacks passed to ``Model.train``. Use GRAPH mode (``ms.set_context(mode=ms.GRAPH_MODE)``)
    for speed; PyNative works too.
    ``precision={"dataset_sink_mode": True, "sink_size": n}`` sinks ``n`` steps per device call on
    Ascend / GPU in GRAPH mode (:mod:`lrd_mindspore.sink`; ``on_step`` and ``callbacks`` then run at
    chunk ends); elsewhere one line is logged and training runs step by step.
    """
    ctx = dist or D.context()
    freeze = freezing.as_freeze_config(freeze)
    if freeze.policy != "none" and (plan is None or not plan.decomposed()):
        raise ConfigError(f"freeze={freeze.policy!r} needs the plan of a compressed model (nothing to freeze)")
    native = isinstance(data, ms.dataset.Dataset)
    loader = None if native else train_loader(data, batch_size, seed, ctx.rank, ctx.world)
    steps_per_epoch = data.get_dataset_size() if native else loader.steps_per_epoch
    per_rank = data.get_batch_size() if native else loader.batch_size
    if len(lr) < epochs * steps_per_epoch:
        raise ConfigError(f"lr schedule has {len(lr)} values, {epochs} epochs x {steps_per_epoch} steps need "
                          f"{epochs * steps_per_epoch}")
    lr = np.asarray(lr[:epochs * steps_per_epoch], np.float32)
    check_teacher(teacher, distill)
    if teacher is not None:                # knowledge distillation: the teacher's logits are a third input
        from .distill import DistillLoss, DistillStep
        loss_fn = DistillLoss(as_distill_config(distill), label_smoothing)
    else:
        loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    from lrd_core.precision import as_precision
    precision = as_precision(precision)    # amp_level O0-O3, fixed / dynamic loss scaling
    if precision.amp_level != "O0" or precision.scaled:
        if teacher is not None:
            raise ConfigError("mixed precision / loss scaling and distillation together are not supported; "
                              "train the student in float32 (amp_level O0, loss_scale_type none)")
        from .precision import apply_amp, scaled_step
        apply_amp(net, precision)
    from .precision import sinking
    sink = sinking(precision, steps_per_epoch, freeze, save_every_steps, log_every, teacher,
                   log if ctx.is_main else None, native)
    steps = PhaseSteps(net, loss_fn, lr, momentum, weight_decay, optimizer)
    if precision.scaled:
        steps.step_cls = scaled_step(precision)
    if teacher is not None:
        steps.step_cls = DistillStep
    state, resumed, last = resume_or_start(out_dir, resume, epochs, steps_per_epoch, plan, PLAN_FILE,
                                           lambda path: restore_training_checkpoint(path, net, steps), ctx.is_main,
                                           framework="mindspore")
    say = log if ctx.is_main else None
    if resumed is not None and say:
        say(resume_text(last, state))
    monitor = Monitor(state, lr, per_rank * ctx.world, log=say, log_every=log_every, progress=progress,
                      phase_text=lambda k: freezing.describe_phase(plan, freeze, k))
    if teacher is not None:
        from .distill import DistillSwitch
        switch = DistillSwitch(net, teacher)
    else:
        switch = PhaseSwitch(net)
    run = {"state": state, "freeze": freeze, "plan": plan, "steps": steps, "switch": switch, "monitor": monitor,
           "net": net, "on_step": list(on_step), "out_dir": out_dir, "main": ctx.is_main, "keep": keep,
           "save_every_steps": save_every_steps, "save_every_epochs": save_every_epochs, "eval_data": eval_data}
    model = Model(switch)
    cbs = [_Driver(run)] + list(callbacks)
    try:
        if sink and not state.finished:                      # dataset_sink_mode: one Model.train per phase
            from .sink import sink_driver, train_sunk
            train_sunk(run, data, native, loader, sink, [sink_driver(_Driver)(run, per_rank)] + list(callbacks))
        elif state.step_in_epoch and not state.finished:     # finish the interrupted epoch first
            rest = steps_per_epoch - state.step_in_epoch
            part = data.take(rest) if native else from_loader(loader, state.global_step, rest)
            model.train(state.epoch + 1, part, callbacks=cbs, dataset_sink_mode=False, initial_epoch=state.epoch)
        if not state.finished and not sink:
            full = data if native else from_loader(loader, state.global_step)
            model.train(epochs, full, callbacks=cbs, dataset_sink_mode=False, initial_epoch=state.epoch)
    finally:
        monitor.close()
        for p in steps.params.values():
            p.requires_grad = True
        net.set_train(False)
    return {"history": state.history, "curve": state.curve, "timing": monitor.timing(),
            "global_step": state.global_step, "resumed_from": resumed, "steps_per_epoch": steps_per_epoch,
            "compiled_phases": len(steps.cache)}
