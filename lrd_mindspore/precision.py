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
