"""Mixed precision and loss scaling of the MindSpore trainer (:mod:`lrd_core.precision`)."""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops
from mindspore.amp import DynamicLossScaler, StaticLossScaler, all_finite

from lrd_core.precision import PrecisionConfig

from .train import TrainStep


def apply_amp(net: nn.Cell, cfg: PrecisionConfig) -> nn.Cell:
    """Cast ``net`` for ``cfg.amp_level`` in place (O0 leaves it float32; BatchNorm stays float32 in O2)."""
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(net, cfg.amp_level)
    return net


def scaled_step(cfg: PrecisionConfig):
    """A :class:`TrainStep` class that scales the loss: fixed (every step applied, as ModelZoo's
    ``FixedLossScaleManager(drop_overflow_update=False)``) or dynamic (overflowing steps skipped)."""

    class ScaledTrainStep(TrainStep):
        def __init__(self, net, loss_fn, optimizer):
            super().__init__(net, loss_fn, optimizer)
            if cfg.loss_scale_type == "dynamic":
                self.scaler = DynamicLossScaler(float(cfg.loss_scale), int(cfg.scale_factor), int(cfg.scale_window))
            else:
                self.scaler = StaticLossScaler(float(cfg.loss_scale))
            self.dynamic = cfg.loss_scale_type == "dynamic"
            self.scaled_grad = ms.value_and_grad(self.scaled_loss, None, self.weights, has_aux=True)

        def scaled_loss(self, x, y):
            loss, logits = self.with_loss(x, y)
            return self.scaler.scale(loss), logits

        def construct(self, x, y):
            (loss, logits), grads = self.scaled_grad(x, y)
            loss = self.scaler.unscale(loss)
            grads = self.reducer(self.scaler.unscale(grads))
            finite = all_finite(grads)
            if self.dynamic:
                self.scaler.adjust(finite)
                if finite:
                    loss = ops.depend(loss, self.optimizer(grads))
            else:
                loss = ops.depend(loss, self.optimizer(grads))
            correct = (logits.argmax(1) == y).astype(ms.float32).sum()
            return loss, correct

    return ScaledTrainStep


def sinking(cfg: PrecisionConfig, steps_per_epoch: int, freeze, save_every_steps: int, log_every: int,
            teacher=None, say=None, native: bool = False) -> int:
    """Steps per sunk chunk for :func:`lrd_mindspore.train.fit` (0: step by step).

    Checks the run against the sink size (:func:`lrd_core.precision.sink_steps`) wherever it runs, so an
    Ascend config fails on a CPU try-out too; where MindSpore cannot sink (CPU, PyNative) ``say`` gets
    one line and 0 is returned. A native MindSpore dataset sinks with one train cell only (its pipeline
    cannot be split per freezing phase, and MindSpore ties a dataset to one ``Model``).
    """
    from lrd_core.errors import ConfigError
    from lrd_core.precision import sink_steps

    from .sink import sink_unsupported

    sink = sink_steps(cfg, steps_per_epoch, freeze, save_every_steps, log_every)
    if sink and teacher is not None:
        raise ConfigError("dataset_sink_mode with distillation: the teacher runs on the host every step; set "
                          "dataset_sink_mode false")
    if sink and native and freeze is not None and freeze.policy == "sequential":
        raise ConfigError("dataset_sink_mode with freeze sequential needs lrd's Loader data (data_backend loader): "
                          "a native MindSpore dataset cannot be split per freezing phase; or set dataset_sink_mode "
                          "false")
    reason = sink_unsupported() if sink else ""
    if reason:
        if say:
            say(reason)
        return 0
    return sink
