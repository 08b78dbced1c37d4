"""Knowledge distillation settings shared by both trainers (Hinton et al. 2015).

The loss of a student with logits ``s`` against a teacher with logits ``t`` and labels ``y`` is

    alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

averaged over the batch; ``T^2`` keeps the soft term's gradient scale independent of ``T``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

from .errors import ConfigError

__all__ = ["DistillConfig", "as_distill_config"]


@dataclass(frozen=True)
class DistillConfig:
    """``alpha`` (weight of the soft term, in [0, 1]) and ``temperature`` (> 0)."""

    alpha: float = 0.9
    temperature: float = 4.0

    def __post_init__(self):
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ConfigError(f"distillation alpha must be in [0, 1], got {self.alpha!r}")
        if not float(self.temperature) > 0:
            raise ConfigError(f"distillation temperature must be > 0, got {self.temperature!r}")


def as_distill_config(value: Union[None, Mapping, DistillConfig]) -> DistillConfig:
    """A :class:`DistillConfig` from None (defaults), a dict (``alpha``, ``temperature``) or itself."""
    if value is None:
        return DistillConfig()
    if isinstance(value, DistillConfig):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"alpha", "temperature"})
        if unknown:
            raise ConfigError(f"distill takes alpha and temperature, not {unknown}")
        return DistillConfig(**{k: float(v) for k, v in value.items()})
    raise ConfigError(f"distill must be a dict with alpha/temperature, got {type(value).__name__}")


def check_teacher(teacher, distill: Optional[object]) -> None:
    if distill is not None and teacher is None:
        raise ConfigError("distill= settings need teacher=<the original model>")
