"""Training and evaluation for torch: SGD with a per-step LR, factor freezing, resumable checkpoints, DDP.

The same options and behaviour as :mod:`lrd_mindspore.train` (MindSpore momentum SGD and torch SGD
apply weight decay and momentum identically); the bookkeeping (state, logs, checkpoint layout) is
shared through :mod:`lrd_core.trainstate`.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from lrd_core import freezing
from lrd_core.distill import as_distill_config, check_teacher
from lrd_core.distributed import DistContext
from lrd_core.errors import ConfigError
from lrd_core.layout import OPTIMIZER_FILES, PLAN_FILE, WEIGHT_FILES
from lrd_core.optim import optimizer_config
from lrd_core.plan import Plan
from lrd_core.trainstate import Monitor, TrainState, read_state, resume_or_start, resume_text
from lrd_core.trainstate import save_training_checkpoint as save_training_checkpoint_dir
from lrd_data import Loader
from lrd_data.loader import train_loader

from lrd_torch import evaluate, predict, set_frozen, unfreeze  # noqa: F401  (bound from lrd_core.api)

from . import distributed as D
from .optim import build_optimizer
from .distill import distiller

WEIGHTS, OPTIMIZER = WEIGHT_FILES["torch"], OPTIMIZER_FILES["torch"]


# ------------------------------------------------------------------------------------ evaluation
def _device(model: nn.Module):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def recalibrate_bn(model: nn.Module, data, batches: int = 20, batch_size: int = 64, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running statistics as the exact average over ``batches`` batches.

    After a decomposition the factor chains reproduce each layer only approximately, so the
    stored statistics no longer match the activations; this restores them without training.
    Returns the number of batches used.
    """
    loader = data if isinstance(data, Loader) else Loader(data, batch_size, shuffle=True, seed=seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                       # cumulative average
    was = model.training
    model.train()
    used = 0
    try:
        with torch.no_grad():
            for x, _ in loader.epoch_batches(0):
                if used >= batches:
                    break
                model(torch.from_numpy(x).to(_device(model)))
                used += 1
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was)
    return used


# ------------------------------------------------------------------------------------ optimizer
def make_optimizer(model: nn.Module, momentum: float = 0.9, weight_decay: float = 1e-4,
                   lr: float = 0.0, optimizer=None) -> torch.optim.Optimizer:
    """SGD + momentum (default) or AdamW (``optimizer``, see :func:`lrd_core.optim.optimizer_config`);
    weight decay on conv/dense weights only (not norms, biases, tokens or position embeddings)."""
    return build_optimizer(model, optimizer_config(optimizer, momentum, weight_decay), lr)


# ------------------------------------------------------------------------------------ checkpoints
def save_training_checkpoint(directory: str, model: nn.Module, optimizer, state: TrainState,
                             plan: Optional[Plan] = None, keep: int = 2) -> str:
    """Write ``directory/ckpt-<step>/`` atomically (weights, optimizer, state, plan); prune old ones."""
    return save_training_checkpoint_dir(directory, state, plan, keep, {
        WEIGHTS: lambda path: torch.save(model.state_dict(), path),
        OPTIMIZER: lambda path: torch.save(optimizer.state_dict(), path)})


def restore_training_checkpoint(path: str, model: nn.Module, optimizer=None) -> TrainState:
    """Load weights (and optimizer state) of a training checkpoint directory; returns its state."""
    model.load_state_dict(torch.load(os.path.join(path, WEIGHTS), map_location=_device(model), weights_only=True))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(os.path.join(path, OPTIMIZER), map_location="cpu", weights_only=True))
    return read_state(path)


# ------------------------------------------------------------------------------------ training
class _Amp:
    """torch's side of :mod:`lrd_core.precision`: ``torch.autocast`` for O1-O3 (bfloat16 on CPU, float16 on
    CUDA) and ``torch.amp.GradScaler`` for loss scaling on CUDA (fixed: growth off; dynamic: backoff and growth)."""

    def __init__(self, cfg, device):
        import contextlib
        self.cfg, self.device = cfg, device
        kind = "cuda" if device.type == "cuda" else "cpu"
        dtype = torch.float16 if kind == "cuda" else torch.bfloat16
        self.autocast = (lambda: torch.autocast(kind, dtype=dtype)) if cfg.amp_level != "O0" else contextlib.nullcontext
        self.scaler = None
        if cfg.scaled and kind == "cuda":
            dynamic = cfg.loss_scale_type == "dynamic"
            self.scaler = torch.amp.GradScaler("cuda", init_scale=cfg.loss_scale, growth_factor=float(cfg.scale_factor) if dynamic else 1.0,
                                               backoff_factor=1 / cfg.scale_factor if dynamic else 1.0,
                                               growth_interval=int(cfg.scale_window))

    def step(self, loss, optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def mixed_precision(precision, device, say=None) -> _Amp:
    """The autocast / loss-scaling helper of ``precision`` (see :mod:`lrd_core.precision`)."""
    from lrd_core.precision import as_precision

    cfg = as_precision(precision)
    if cfg.scaled and device.type != "cuda" and say:
        say(f"loss scaling ({cfg.loss_scale_type}) skipped: torch's GradScaler needs CUDA, and bfloat16 autocast "
            f"on CPU keeps float32's exponent range")
    if cfg.dataset_sink_mode and say:
        say("dataset_sink_mode ignored: torch has no dataset sinking (a MindSpore Ascend / GPU setting); "
            "training step by step")
    return _Amp(cfg, device)


def fit(model: nn.Module, data, lr: Sequence[float], epochs: int, batch_size: int = 64, momentum: float = 0.9,
        weight_decay: float = 1e-4, label_smoothing: float = 0.0, seed: int = 0,
        log: Optional[Callable[[str], None]] = print, *, plan: Optional[Plan] = None, freeze=None,
        out_dir: Optional[str] = None, resume: bool = True, save_every_steps: int = 0, save_every_epochs: int = 1,
        keep: int = 2, eval_data=None, log_every: int = 0, progress: Optional[bool] = None,
        on_step: Iterable[Callable[[TrainState], None]] = (), dist: Optional[DistContext] = None,
        teacher: Optional[nn.Module] = None, distill=None, optimizer=None, precision=None) -> dict:
    """Train ``model`` with momentum SGD (or AdamW, ``optimizer``); ``lr`` holds one value per step.

    Parameters
    ----------
    model : torch.nn.Module
    data : ArrayData, loader source or lrd_data.Loader
        Training data (a Loader fixes batch size, shuffling and sharding itself).
    lr : sequence of float
        Per-step learning rate, at least ``epochs * steps_per_epoch`` values.
    epochs : int
    plan : Plan, optional
        The plan the model was compressed with (needed by ``freeze``).
    freeze : str, dict or FreezeConfig, optional
        ``none`` / ``sequential`` / ``regular`` freezing of factor layers (:mod:`lrd_core.freezing`).
    out_dir : str, optional
        Where checkpoints ``ckpt-<step>/`` go; with ``resume`` the newest one is continued (it must
        have been written for the same plan, epochs and steps per epoch: else MismatchError).
    save_every_steps, save_every_epochs, keep : int
        Checkpoint cadence (0 = off) and how many to keep.
    eval_data : optional
        Evaluated after every epoch.
    on_step : callables
        Called with the :class:`TrainState` after every step.
    dist : DistContext, optional
        Data-parallel group (default: the one ``torchrun`` set up, if any).
    optimizer : str, dict or OptimizerConfig, optional
        ``"sgd"`` (default: ``momentum``, ``weight_decay``) or ``"adamw"`` / ``{"name": "adamw", "beta1": 0.9,
        "beta2": 0.999, "eps": 1e-8}`` (:mod:`lrd_core.optim`; same semantics as the MindSpore trainer).
    teacher : torch.nn.Module, optional
        Knowledge distillation from this model (e.g. the original of a reduced or compressed one), run in
        eval mode; ``distill`` = ``{"alpha": 0.9, "temperature": 4.0}`` (:mod:`lrd_core.distill`).

    Returns
    -------
    dict
        ``history`` (per epoch), ``curve`` (per step), ``timing``, ``global_step``, ``resumed_from``.
    """
    ctx = dist or D.context()
    freeze = freezing.as_freeze_config(freeze)
    if freeze.policy != "none" and (plan is None or not plan.decomposed()):
        raise ConfigError(f"freeze={freeze.policy!r} needs the plan of a compressed model (nothing to freeze)")
    loader = train_loader(data, batch_size, seed, ctx.rank, ctx.world)
    steps = loader.steps_per_epoch
    if len(lr) < epochs * steps:
        raise ConfigError(f"lr schedule has {len(lr)} values, {epochs} epochs x {steps} steps need {epochs * steps}")
    optimizer = make_optimizer(model, momentum, weight_decay, optimizer=optimizer)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    check_teacher(teacher, distill)
    kd = distiller(teacher, as_distill_config(distill), loss_fn) if teacher is not None else None
    state, resumed, last = resume_or_start(out_dir, resume, epochs, steps, plan, PLAN_FILE,
                                           lambda path: restore_training_checkpoint(path, model, optimizer),
                                           ctx.is_main, framework="torch")
    main = ctx.is_main
    say = log if main else None
    if resumed is not None and say:
        say(resume_text(last, state))
    monitor = Monitor(state, lr, loader.global_batch, log=say, log_every=log_every, progress=progress,
                      phase_text=lambda k: freezing.describe_phase(plan, freeze, k))
    device = _device(model)
    amp = mixed_precision(precision, device, say)
    net, phase = None, None
    model.train()
    try:
        while not state.finished:
            epoch = state.epoch
            for x, y in loader.epoch_batches(epoch, state.step_in_epoch):
                k = freezing.phase_index(freeze, epoch, state.global_step)
                if k != phase or net is None:
                    frozen = freezing.frozen_parameters(plan, freeze, k)
                    if phase is None or frozen != freezing.frozen_parameters(plan, freeze, phase):
                        set_frozen(model, frozen)
                        net = None
                        net = D.wrap(model, ctx)
                    phase = k
                    monitor.on_phase(k)
                for group in optimizer.param_groups:
                    group["lr"] = float(lr[state.global_step])
                t0 = time.perf_counter()
                xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
                optimizer.zero_grad(set_to_none=True)
                with amp.autocast():
                    out = net(xt)
                    loss = loss_fn(out.float(), yt) if kd is None else kd(out, yt, xt)
                amp.step(loss, optimizer)
                loss_value, correct = loss.item(), int((out.argmax(1) == yt).sum())
                monitor.on_step(loss_value, correct, len(y), time.perf_counter() - t0)
                for cb in on_step:
                    cb(state)
                if out_dir and main and save_every_steps and state.global_step % save_every_steps == 0 \
                        and state.step_in_epoch:
                    save_training_checkpoint(out_dir, model, optimizer, state, plan, keep)
            acc = evaluate(model, eval_data) if eval_data is not None else None
            model.train()
            monitor.on_epoch_end(acc)
            if out_dir and main and save_every_epochs and (state.epoch % save_every_epochs == 0 or state.finished):
                save_training_checkpoint(out_dir, model, optimizer, state, plan, keep)
    finally:
        monitor.close()
        unfreeze(model)
        model.eval()
    D.barrier(ctx)
    return {"history": state.history, "curve": state.curve, "timing": monitor.timing(),
            "global_step": state.global_step, "resumed_from": resumed, "steps_per_epoch": steps}
