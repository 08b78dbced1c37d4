"""The optimizer of a training run, the same in both trainers: momentum SGD or AdamW.

``sgd``: momentum SGD with L2 weight decay (torch ``SGD`` / MindSpore ``nn.Momentum``), the ResNet
recipe. ``adamw``: Adam with decoupled weight decay (Loshchilov & Hutter), the ViT recipe, with
torch's ``AdamW`` semantics in both frameworks: ``p <- p (1 - lr wd)``, bias-corrected moments,
``eps`` added to ``sqrt(v_hat)``, one step count per parameter (a frozen parameter keeps its count).

Weight decay applies only to conv/dense weights: never to biases, normalisation scales and shifts, or
to class/distillation/mask tokens and position embeddings (:func:`decays`, by torch-style name).
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

from .errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
#: parameter names (last component or full name) that are never decayed whatever their shape
NO_DECAY = re.compile(r"(?:^|\.)(?:cls_token|dist_token|mask_token|reg_token|pos_embed|pos_embedding|"
                      r"position_embeddings?|absolute_pos_embed|relative_position_bias_table)$")


def decays(name: str, shape: Sequence[int]) -> bool:
    """Whether the parameter ``name`` (torch-style) of ``shape`` gets weight decay: weights of two or
    more dimensions, except tokens and position embeddings."""
    return len(tuple(shape)) > 1 and not NO_DECAY.search(name)


def split_decay(named_shapes: Sequence[Tuple[str, Sequence[int]]]) -> Tuple[list, list]:
    """``(decayed names, other names)`` of ``[(name, shape)]``, order kept."""
    yes = [n for n, s in named_shapes if decays(n, s)]
    no = [n for n, s in named_shapes if not decays(n, s)]
    return yes, no


@dataclass(frozen=True)
class OptimizerConfig:
    """Validated optimizer options.

    Parameters
    ----------
    name : {'sgd', 'adamw'}
    momentum : float
        SGD momentum in [0, 1).
    weight_decay : float
        L2 coefficient (SGD) or decoupled decay per unit LR (AdamW), >= 0.
    beta1, beta2 : float
        AdamW moment decay rates in [0, 1).
    eps : float
        AdamW denominator term, > 0.
    """

    name: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        for key, low, high, closed in (("momentum", 0.0, 1.0, False), ("beta1", 0.0, 1.0, False),
                                       ("beta2", 0.0, 1.0, False), ("weight_decay", 0.0, math.inf, False)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
                raise ConfigError(f"optimizer {key} must be a number in [{low}, {high}), got {value!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not 0 < self.eps < 1:
            raise ConfigError(f"optimizer eps must be a number in (0, 1), got {self.eps!r}")

    @property
    def betas(self) -> Tuple[float, float]:
        return (float(self.beta1), float(self.beta2))

    def to_dict(self) -> dict:
        return asdict(self)


def optimizer_config(optimizer: Union[None, str, Mapping, OptimizerConfig] = None, momentum: float = 0.9,
                     weight_decay: float = 1e-4) -> OptimizerConfig:
    """The :class:`OptimizerConfig` of a trainer's ``fit`` keywords.

    ``optimizer`` is None or ``"sgd"`` (momentum SGD), ``"adamw"``, a mapping ``{"name": "adamw",
    "beta1": ..., "beta2": ..., "eps": ...}`` or an OptimizerConfig; ``momentum`` and ``weight_decay``
    fill what the mapping leaves out.
    """
    if isinstance(optimizer, OptimizerConfig):
        return optimizer
    if optimizer is None or isinstance(optimizer, str):
        return OptimizerConfig(name=optimizer or "sgd", momentum=momentum, weight_decay=weight_decay)
    if isinstance(optimizer, Mapping):
        d = {"momentum": momentum, "weight_decay": weight_decay, **dict(optimizer)}
        unknown = sorted(set(d) - set(OptimizerConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown optimizer option(s) {unknown}; known: "
                              f"{', '.join(OptimizerConfig.__dataclass_fields__)}")
        return OptimizerConfig(**d)
    raise ConfigError(f"optimizer takes 'sgd', 'adamw', a dict of options or an OptimizerConfig, got {optimizer!r}")


def describe(cfg: Optional[OptimizerConfig]) -> str:
    """One line for logs: ``adamw (0.9, 0.999), eps 1e-08, weight decay 0.05``."""
    cfg = cfg or OptimizerConfig()
    if cfg.name == "sgd":
        return f"sgd momentum {cfg.momentum}, weight decay {cfg.weight_decay}"
    return f"adamw betas ({cfg.beta1}, {cfg.beta2}), eps {cfg.eps:g}, weight decay {cfg.weight_decay}"
