"""Minimal supervised training (GRAPH mode, ``nn.TrainOneStepCell``) and evaluation on arrays."""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from lrd_data import ArrayData, batches


def predict(net: nn.Cell, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of ``net`` in eval mode; the last batch is padded so one compiled shape serves all."""
    was = net.training
    net.set_train(False)
    outs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        n = len(chunk)
        if n < batch_size and len(x) > batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)])
        outs.append(net(ms.Tensor(np.ascontiguousarray(chunk, dtype=np.float32))).asnumpy()[:n])
    net.set_train(was)
    return np.concatenate(outs)


def evaluate(net: nn.Cell, data: ArrayData, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``net`` on ``data``."""
    return float((predict(net, data.x, batch_size).argmax(1) == data.y).mean())


def fit(net: nn.Cell, data: ArrayData, lr: Sequence[float], epochs: int, batch_size: int = 64,
        momentum: float = 0.9, weight_decay: float = 1e-4, label_smoothing: float = 0.0, seed: int = 0,
        log: Optional[Callable[[str], None]] = print) -> dict:
    """Train with Momentum SGD; ``lr`` holds one value per step (``epochs * steps_per_epoch``)."""
    steps = len(data) // batch_size
    if len(lr) < epochs * steps:
        raise ValueError(f"lr schedule has {len(lr)} values, training needs {epochs * steps}")
    lr_tensor = ms.Tensor(np.asarray(lr[: epochs * steps], np.float32))
    opt = nn.Momentum(net.trainable_params(), learning_rate=lr_tensor, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    step_cell = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt)
    step_cell.set_train(True)
    step, history = 0, []
    for epoch in range(epochs):
        t0, total = time.perf_counter(), 0.0
        for x, y in batches(data, batch_size, shuffle=True, seed=seed, drop_last=True, epoch=epoch):
            total += float(step_cell(ms.Tensor(x), ms.Tensor(y)).asnumpy())
            step += 1
        dt = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": total / max(steps, 1), "seconds": dt})
        if log:
            log(f"  epoch {epoch + 1}/{epochs}  loss {total / max(steps, 1):.4f}  {dt:.1f}s "
                f"({steps * batch_size / dt:.0f} img/s)")
    net.set_train(False)
    return {"history": history, "steps": step}
