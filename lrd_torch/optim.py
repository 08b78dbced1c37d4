"""The torch optimizers of :mod:`lrd_core.optim`: momentum SGD or AdamW, decay only where it belongs."""
from __future__ import annotations

import torch
from torch import nn

from lrd_core.optim import OptimizerConfig, decays


def param_groups(model: nn.Module, weight_decay: float) -> list:
    """Two groups: conv/dense weights with ``weight_decay``; biases, norms, tokens and position embeddings
    without (:func:`lrd_core.optim.decays`); empty groups dropped."""
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if decays(n, p.shape)], "weight_decay": weight_decay},
              {"params": [p for n, p in named if not decays(n, p.shape)], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimizerConfig, lr: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (momentum, L2 decay) or ``torch.optim.AdamW`` (decoupled decay) over ``model``."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=cfg.eps)
