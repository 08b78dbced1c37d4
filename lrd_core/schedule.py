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


@register_schedule("steps")
def steps(total_steps: int, lr_max: float, lr_init: float = 0.0, lr_end: float = 0.0, warmup_steps: int = 0,
          milestones=(0.3, 0.6, 0.8), gamma: float = 0.1) -> np.ndarray:
    """Linear warm-up, then lr_max times ``gamma`` after each milestone (fractions of the run).

    ``lr_end`` is unused (the last value is ``lr_max * gamma ** len(milestones)``).
    """
    lr = linear(total_steps, lr_max, lr_init, lr_max, warmup_steps).astype(np.float64)
    w = min(warmup_steps, total_steps)
    t = np.arange(w, total_steps) / max(total_steps, 1)
    lr[w:] = lr_max * gamma ** np.searchsorted(np.asarray(milestones, np.float64), t, side="right")
    return lr.astype(np.float32)


@register_schedule("poly")
def poly(total_steps: int, lr_max: float, lr_init: float = 0.0, lr_end: float = 0.0, warmup_steps: int = 0,
         power: float = 2.0) -> np.ndarray:
    """Linear warm-up, then ``lr_end + (lr_max - lr_end) * (1 - t) ** power``."""
    lr = linear(total_steps, lr_max, lr_init, lr_max, warmup_steps).astype(np.float64)
    w = min(warmup_steps, total_steps)
    rest = total_steps - w
    if rest:
        t = np.arange(rest) / rest
        lr[w:] = lr_end + (lr_max - lr_end) * (1.0 - t) ** power
    return lr.astype(np.float32)


def epoch_schedule(name: str, epochs: int, steps_per_epoch: int, lr_max: float, lr_init: float = 0.0,
                   lr_end: float = 0.0, warmup_epochs: float = 0.0) -> np.ndarray:
    """Per-step LR of a run given in epochs (ModelZoo style: ``lr_decay_mode``, ``warmup_epochs``)."""
    from .errors import ConfigError

    if epochs < 1 or steps_per_epoch < 1:
        raise ConfigError(f"a run needs at least one epoch of at least one step, got {epochs} x {steps_per_epoch}")
    if lr_max <= 0 or lr_init < 0 or lr_end < 0 or warmup_epochs < 0:
        raise ConfigError(f"learning rates must be >= 0 (lr_max > 0) and warmup_epochs >= 0, got lr_max={lr_max}, "
                          f"lr_init={lr_init}, lr_end={lr_end}, warmup_epochs={warmup_epochs}")
    return make_schedule(name, epochs * steps_per_epoch, lr_max=lr_max, lr_init=lr_init, lr_end=lr_end,
                         warmup_steps=int(round(warmup_epochs * steps_per_epoch)))
