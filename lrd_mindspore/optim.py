"""The MindSpore optimizers of :mod:`lrd_core.optim`: ``nn.Momentum`` (SGD) and :class:`AdamW`.

:class:`AdamW` is ``nn.AdamWeightDecay`` (its parameter groups, moments and LR handling) with the
update of ``torch.optim.AdamW``: MindSpore's own adds ``eps`` to ``sqrt(v)`` without bias correction,
which changes the first steps (by ``sqrt(1 - beta2) / (1 - beta1)`` = 0.32 at step 1 for the usual
betas) and so the training of a ViT. Here, per parameter with gradient ``g`` at its step ``t``::

    p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Each parameter has its own step count, like torch's ``state["step"]``, so a parameter that sequential
freezing leaves out of a phase's optimizer resumes its bias correction where it stopped.

Optimizers of one run share their state across freezing phases (:data:`STATE` names the buffers) and
save it by parameter name (:data:`SAVED`).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from lrd_core.optim import OptimizerConfig, decays

_adamw = ops.MultitypeFuncGraph("lrd_adamw")


@_adamw.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                 "Bool")
def _adamw_update(beta1, beta2, eps, lr, weight_decay, param, m, v, step, gradient, decay_flag):
    """One torch-AdamW update of ``param`` in place; returns the new parameter."""
    g = ops.cast(gradient, ms.float32)
    p = ops.cast(param, ms.float32)
    t = step + 1.0
    if decay_flag:
        p = p * (1.0 - lr * weight_decay)
    next_m = beta1 * m + (1.0 - beta1) * g
    next_v = beta2 * v + (1.0 - beta2) * g * g
    bias1 = 1.0 - ops.pow(beta1, t)
    bias2 = 1.0 - ops.pow(beta2, t)
    denom = ops.sqrt(next_v) / ops.sqrt(bias2) + eps
    next_p = p - (lr / bias1) * next_m / denom
    next_p = ops.depend(next_p, ops.assign(param, ops.cast(next_p, param.dtype)))
    next_p = ops.depend(next_p, ops.assign(m, next_m))
    next_p = ops.depend(next_p, ops.assign(v, next_v))
    next_p = ops.depend(next_p, ops.assign(step, t))
    return next_p


class AdamW(nn.AdamWeightDecay):
    """``torch.optim.AdamW`` in MindSpore (see the module docstring).

    Parameters
    ----------
    params : list of Parameter or of group dicts
        As ``nn.AdamWeightDecay`` (groups may set ``weight_decay``).
    learning_rate : float, Tensor (one value per step) or schedule
    beta1, beta2, eps, weight_decay : float
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, learning_rate, beta1, beta2, eps, weight_decay)
        self.steps = ParameterTuple([Parameter(Tensor(np.zeros(1, np.float32)), name=f"adam_step.{p.name}")
                                     for p in self._parameters])

    def construct(self, gradients):
        weight_decay = self.get_weight_decay()
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        if not self.is_group:
            weight_decay = tuple(weight_decay for _ in self._parameters)
        return self.hyper_map(ops.partial(_adamw, self.beta1, self.beta2, self.eps, lr), weight_decay,
                              self._parameters, self.moments1, self.moments2, self.steps, gradients,
                              self.decay_flags)


#: buffers of each optimizer that freezing phases share (one entry per parameter, in parameter order)
STATE: Dict[str, Tuple[str, ...]] = {"sgd": ("moments",), "adamw": ("moments1", "moments2", "steps")}
#: checkpoint key prefix of each buffer (``moment.<param name>`` is the SGD layout of earlier runs)
SAVED: Dict[str, str] = {"moments": "moment.", "moments1": "adam_m.", "moments2": "adam_v.", "steps": "adam_step."}


def groups(named: Sequence[Tuple[str, Parameter]], weight_decay: float) -> list:
    """Two parameter groups: decayed (conv/dense weights) and not (norms, biases, tokens, position
    embeddings), by torch-style name (:func:`lrd_core.optim.decays`); empty groups dropped."""
    out = [{"params": [p for n, p in named if decays(n, p.shape)], "weight_decay": weight_decay},
           {"params": [p for n, p in named if not decays(n, p.shape)], "weight_decay": 0.0}]
    return [g for g in out if g["params"]]


def build_optimizer(named: Sequence[Tuple[str, Parameter]], cfg: OptimizerConfig, learning_rate) -> nn.Optimizer:
    """``nn.Momentum`` or :class:`AdamW` over ``[(torch-style name, parameter)]``."""
    param_groups = groups(named, cfg.weight_decay)
    if cfg.name == "sgd":
        return nn.Momentum(param_groups, learning_rate=learning_rate, momentum=cfg.momentum)
    return AdamW(param_groups, learning_rate=learning_rate, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps)
