"""Learning-rate schedules as per-step arrays (one value per optimizer step), framework-neutral."""
from __future__ import annotations

import numpy as np

SCHEDULES = {}


def register_schedule(name: str):
    def wrap(fn):
        SCHEDULES[name] = fn
        return fn
    return wrap


@register_schedule("linear")
def linear(total_steps: int, lr_max: float, lr_init: float = 0.0, lr_end: float = 0.0,
           warmup_steps: int = 0) -> np.ndarray:
    """Linear warm-up lr_init -> lr_max over ``warmup_steps``, then linear decay to lr_end."""
    steps = np.arange(total_steps, dtype=np.float64)
    lr = np.empty(total_steps)
    w = min(warmup_steps, total_steps)
    if w:
        lr[:w] = lr_init + (lr_max - lr_init) * (steps[:w] + 1) / w
    rest = total_steps - w
    if rest:
        lr[w:] = lr_max + (lr_end - lr_max) * (steps[w:] - w) / max(rest, 1)
    return lr.astype(np.float32)


@register_schedule("cosine")
def cosine(total_steps: int, lr_max: float, lr_init: float = 0.0, lr_end: float = 0.0,
           warmup_steps: int = 0) -> np.ndarray:
    """Linear warm-up, then half-cosine decay from lr_max to lr_end."""
    lr = linear(total_steps, lr_max, lr_init, lr_max, warmup_steps).astype(np.float64)
    w = min(warmup_steps, total_steps)
    rest = total_steps - w
    if rest:
        t = np.arange(rest) / max(rest, 1)
        lr[w:] = lr_end + 0.5 * (lr_max - lr_end) * (1 + np.cos(np.pi * t))
    return lr.astype(np.float32)


@register_schedule("constant")
def constant(total_steps: int, lr_max: float, **_) -> np.ndarray:
    return np.full(total_steps, lr_max, np.float32)


def make_schedule(name: str, total_steps: int, **kwargs) -> np.ndarray:
    if name not in SCHEDULES:
        from .errors import ConfigError
        raise ConfigError(f"unknown lr schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](total_steps, **kwargs)
