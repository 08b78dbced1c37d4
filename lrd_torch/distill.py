"""Knowledge distillation for :func:`lrd_torch.train.fit` (formula in :mod:`lrd_core.distill`)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lrd_core.distill import DistillConfig

__all__ = ["kd_loss", "distiller"]


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, cfg: DistillConfig,
            ce: Callable) -> torch.Tensor:
    """``alpha T^2 KL(p_teacher || p_student) + (1 - alpha) CE(student, labels)`` (batch mean)."""
    t = float(cfg.temperature)
    log_p = F.log_softmax(student / t, dim=1)
    log_q = F.log_softmax(teacher / t, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()
    return cfg.alpha * t * t * kl + (1.0 - cfg.alpha) * ce(student, labels)


def distiller(teacher: nn.Module, cfg: DistillConfig, ce: Callable) -> Callable:
    """``loss(student_logits, labels, x)`` with the teacher run in eval mode without gradients."""
    teacher.eval()

    def loss(out, labels, x):
        with torch.no_grad():
            t = teacher(x)
        return kd_loss(out, t, labels, cfg, ce)
    return loss
