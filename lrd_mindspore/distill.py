"""Knowledge distillation for :func:`lrd_mindspore.train.fit` (formula in :mod:`lrd_core.distill`).

The teacher runs as its own eval-mode cell (never a child of the train network, so ``set_train`` on
the train network leaves its BatchNorm statistics alone); :class:`DistillSwitch` hands its logits to
the compiled :class:`DistillStep` of the current freezing phase as a third input.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from lrd_core.distill import DistillConfig

from .train import PhaseSwitch, TrainStep

__all__ = ["DistillLoss", "DistillStep", "DistillSwitch"]


class DistillLoss(nn.Cell):
    """``alpha T^2 KL(p_teacher || p_student) + (1 - alpha) CE(student, labels)`` (batch mean)."""

    def __init__(self, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.alpha = float(cfg.alpha)
        self.t = float(cfg.temperature)

    def construct(self, logits, labels, teacher):
        log_p = ops.log_softmax(logits / self.t, 1)
        log_q = ops.log_softmax(teacher / self.t, 1)
        kl = (ops.exp(log_q) * (log_q - log_p)).sum(1).mean()
        return self.alpha * self.t * self.t * kl + (1.0 - self.alpha) * self.ce(logits, labels)


class _WithDistillLoss(nn.Cell):
    def __init__(self, net: nn.Cell, loss_fn: nn.Cell):
        super().__init__(auto_prefix=False)
        self.net, self.loss_fn = net, loss_fn

    def construct(self, x, y, t):
        logits = self.net(x)
        return self.loss_fn(logits, y, t), logits


class DistillStep(TrainStep):
    """One optimizer step on the distillation loss; inputs (x, labels, teacher logits)."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer):
        super().__init__(net, loss_fn, optimizer)
        self.with_loss = _WithDistillLoss(net, loss_fn)
        self.grad_fn = ms.value_and_grad(self.with_loss, None, self.weights, has_aux=True)

    def construct(self, x, y, t):
        (loss, logits), grads = self.grad_fn(x, y, ops.stop_gradient(t))
        grads = self.reducer(grads)
        loss = ops.depend(loss, self.optimizer(grads))
        correct = (logits.argmax(1) == y).astype(ms.float32).sum()
        return loss, correct


class _Teacher(nn.Cell):
    def __init__(self, net: nn.Cell):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x):
        return ops.stop_gradient(self.net(x))


class DistillSwitch(PhaseSwitch):
    """:class:`~lrd_mindspore.train.PhaseSwitch` that adds the teacher's logits to every step's inputs."""

    def __init__(self, net: nn.Cell, teacher: nn.Cell):
        super().__init__(net)
        cell = _Teacher(teacher)
        cell.set_train(False)
        self._current["teacher"] = cell

    def __call__(self, x, y):
        return self._current["cell"](x, y, self._current["teacher"](x))
