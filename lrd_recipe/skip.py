"""Skip training (seed 003): the first ``basis_skip_epochs`` epochs of the original training run with basis
convolutions in ``basis_layers``, then the chains are folded back into full layers and training continues
with the original architecture for the remaining epochs.

The learning-rate schedule is the one of the whole run (``epoch_size`` epochs): the skip trains on its first
``k * steps`` values and the rest of the run on the remaining ones, so the LR history is untouched; the data
order continues with epoch ``k`` too. The optimizer restarts after the fold (its momentum buffers belong to
the basis factors, which no longer exist); weight decay and momentum are unchanged. Each part has its own
checkpoint directory (``original_skip/`` and ``original/``), so a killed run resumes in either part.
"""
from __future__ import annotations

import os
import time
from typing import Callable

from lrd_data import Loader

from .options import skip_options

SKIP_DIR = "original_skip"


class ShiftedLoader(Loader):
    """A :class:`~lrd_data.Loader` whose epoch ``e`` is epoch ``e + offset`` of the wrapped one (same order,
    augmentation and sharding)."""

    def __init__(self, loader: Loader, offset: int):
        self.__dict__.update(vars(loader))
        self.offset = int(offset)

    def order(self, epoch: int):
        return super().order(int(epoch) + self.offset)

    def _make(self, idx, epoch: int, step: int):
        return super()._make(idx, int(epoch) + self.offset, step)


def _merge(first: dict, second: dict, skip_epochs: int, steps: int, plan_json: dict) -> dict:
    """One fit record of both parts: epochs and steps of the second part shifted after the skip."""
    history = [dict(r, basis=True) for r in first["history"]]
    for r in second["history"]:
        history.append(dict(r, epoch=r["epoch"] + skip_epochs, global_step=r["global_step"] + skip_epochs * steps,
                            basis=False))
    curve = list(first["curve"]) + [[s + skip_epochs * steps] + list(rest) for s, *rest in second["curve"]]
    t1, t2 = first["timing"], second["timing"]
    n = t1["steps"] + t2["steps"]
    step_ms = (t1["step_ms"] * t1["steps"] + t2["step_ms"] * t2["steps"]) / n if n else 0.0
    return {"history": history, "curve": curve, "global_step": first["global_step"] + second["global_step"],
            "resumed_from": second.get("resumed_from") or first.get("resumed_from"), "steps_per_epoch": steps,
            "timing": {"step_ms": step_ms, "images_per_s": 0.0, "steps": n, "skip": t1, "after": t2},
            "skip": {"epochs": skip_epochs, "plan": plan_json, "seconds": first["seconds"],
                     "seconds_after": second["seconds"]}}


def train(rt, model, data, lr, out_dir: str, eval_src, log: Callable[[str], None]):
    """Skip-train ``model`` for the run's ``epoch_size`` epochs; returns ``(model, fit record)``.

    ``data`` is the run's training data (a Loader or a native dataset), ``lr`` the whole run's per-step
    schedule, ``out_dir`` the checkpoint directory of the part after the skip. The returned model is a
    fresh, uncompressed network (the caller's ``model`` holds the basis chains at the end of the skip).
    """
    c = rt.cfg
    k, epochs = c.basis_skip_epochs, c.epoch_size
    steps = rt.steps_per_epoch(data)
    plan = rt.fw.plan(model, input_shape=rt.input_shape, **skip_options(c))
    rt.fw.compress(model, plan)
    log(f"  skip training: {len(plan.decomposed())} layers as basis convolutions for {k} of {epochs} epochs")
    log(plan.summary(all_layers=False))
    t0 = time.perf_counter()
    first = rt.fit(model, data, lr[:k * steps], k, os.path.join(os.path.dirname(out_dir), SKIP_DIR), eval_src,
                   plan=plan, log=log)
    first["seconds"] = time.perf_counter() - t0
    full = rt.fw.fold_back(model, plan, rt.model())
    log(f"  folded {len(plan.decomposed())} basis chains back into full layers after epoch {k}")
    rest = data if not isinstance(data, Loader) else ShiftedLoader(data, k)
    t0 = time.perf_counter()
    if epochs > k:
        second = rt.fit(full, rest, lr[k * steps:], epochs - k, out_dir, eval_src, log=log)
    else:
        second = {"history": [], "curve": [], "global_step": 0, "timing": {"step_ms": 0.0, "steps": 0}}
    second["seconds"] = time.perf_counter() - t0
    return full, _merge(first, second, k, steps, plan.to_dict())


def active(cfg) -> bool:
    """Whether the recipe config asks for skip training."""
    return bool(cfg.basis_skip_epochs and cfg.basis_layers)


__all__ = ["train", "active", "ShiftedLoader", "SKIP_DIR"]
