"""Minimal supervised training and evaluation loops on in-memory arrays (CPU/CUDA)."""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from lrd_data import ArrayData, batches


def evaluate(model: nn.Module, data: ArrayData, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (eval mode, no grad)."""
    was = model.training
    model.eval()
    correct = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for x, y in batches(data, batch_size):
            pred = model(torch.from_numpy(x).to(device)).argmax(1).cpu().numpy()
            correct += int((pred == y).sum())
    model.train(was)
    return correct / len(data)


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).cpu().numpy()
    model.train(was)
    return out


def fit(model: nn.Module, data: ArrayData, lr: Sequence[float], epochs: int, batch_size: int = 64,
        momentum: float = 0.9, weight_decay: float = 1e-4, label_smoothing: float = 0.0, seed: int = 0,
        log: Optional[Callable[[str], None]] = print) -> dict:
    """Train with SGD + momentum; ``lr`` holds one value per step (``epochs * steps_per_epoch``)."""
    steps = len(data) // batch_size
    if len(lr) < epochs * steps:
        raise ValueError(f"lr schedule has {len(lr)} values, training needs {epochs * steps}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=float(lr[0]), momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    device = next(model.parameters()).device
    model.train()
    step, history = 0, []
    for epoch in range(epochs):
        t0, total = time.perf_counter(), 0.0
        for x, y in batches(data, batch_size, shuffle=True, seed=seed, drop_last=True, epoch=epoch):
            for group in opt.param_groups:
                group["lr"] = float(lr[step])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(torch.from_numpy(x).to(device)), torch.from_numpy(y).long().to(device))
            loss.backward()
            opt.step()
            total += loss.item()
            step += 1
        dt = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": total / max(steps, 1), "seconds": dt})
        if log:
            log(f"  epoch {epoch + 1}/{epochs}  loss {total / max(steps, 1):.4f}  {dt:.1f}s "
                f"({steps * batch_size / dt:.0f} img/s)")
    return {"history": history, "steps": step}
