"""Predictions and top-1 accuracy of a model on NumPy data, for any backend."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, LRDError
from ..validate import ModelRunError
from ..values import integer
from . import checks


def predict(backend, model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode outputs of ``model`` for inputs ``x`` (N, ...), in chunks of ``batch_size``.

    A short last chunk is zero-padded to ``batch_size`` (when ``x`` has more than one chunk), so a
    compiled graph (MindSpore GRAPH mode) serves every chunk with one input shape.
    """
    checks.model(backend, model)
    try:
        x = np.asarray(x)
    except (TypeError, ValueError):
        x = np.asarray(None)
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"predict takes a numeric array (N, C, H, W), got {x.dtype} values")
    batch_size = integer(batch_size, "batch_size", low=1)
    if x.ndim < 2 or len(x) == 0:
        raise ConfigError(f"predict needs a non-empty batch of inputs (N, ...), got shape {x.shape}")
    outs = []
    for start in range(0, len(x), batch_size):
        chunk = np.ascontiguousarray(x[start:start + batch_size], np.float32)
        n = len(chunk)
        if n < batch_size < len(x):
            chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], np.float32)])
        try:
            outs.append(backend.forward(model, chunk)[:n])
        except LRDError:
            raise
        except Exception as exc:  # noqa: BLE001 - the framework refused the input shape
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ModelRunError(f"the model does not run on inputs of shape {chunk.shape} ({type(exc).__name__}: "
                                f"{first}); give inputs of the shape the model takes") from None
    return np.concatenate(outs)


def evaluate(backend, model, data, batch_size: int = 256) -> float:
    """Top-1 accuracy on ``data``: an :class:`lrd_data.ArrayData`, a loader source or an
    :class:`lrd_data.Loader` (labels are integer class indices)."""
    from lrd_data import ArrayData, Loader
    from lrd_data.loader import eval_loader

    checks.model(backend, model)
    if not isinstance(data, (ArrayData, Loader)) and not (hasattr(data, "get") and hasattr(data, "__len__")):
        raise ConfigError(f"evaluate takes an lrd_data.ArrayData(x, y, num_classes), a loader source or an "
                          f"lrd_data.Loader, got {type(data).__name__}")
    if isinstance(data, ArrayData):
        return float((predict(backend, model, data.x, batch_size).argmax(1) == data.y).mean())
    loader = data if isinstance(data, Loader) else eval_loader(data, batch_size)
    correct = seen = 0
    for x, y in loader.epoch_batches(0):
        correct += int((predict(backend, model, x, loader.batch_size).argmax(1) == y).sum())
        seen += len(y)
    return correct / max(seen, 1)
