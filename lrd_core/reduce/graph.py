"""A plain-data description of a feed-forward CNN/MLP and its NumPy reference forward.

A network is a list of ops run in order. ``Linear`` wraps a :class:`~lrd_core.layers.SubLayer`
(conv2d OIHW or dense (out, in)); ``BatchNorm``, ``Act``, ``MaxPool``, ``GlobalAvgPool`` and
``Flatten`` act channel by channel; ``Residual`` holds a main branch and a shortcut (an empty
shortcut is the identity path) whose outputs are added and passed through an activation.
Every op has a ``name`` (the native module's qualified name) so an adapter can map the reduced
description back onto its modules. Tensors are NCHW (or NF after ``Flatten``/for MLPs); shapes
passed to :func:`output_shape` exclude the batch axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ReductionError
from ..layers import SubLayer

__all__ = ["Linear", "BatchNorm", "Act", "MaxPool", "GlobalAvgPool", "Flatten", "Residual", "ACTIVATIONS",
           "OUTPUT", "forward", "output_shape", "walk", "conv2d_nchw"]

OUTPUT = "<output>"          # key of the network output in recorded activations

ACTIVATIONS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "identity": lambda x: x,
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def _conv_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + p - d * (k - 1) - 1) // s + 1


def conv2d_nchw(x: np.ndarray, sub: SubLayer) -> np.ndarray:
    """Cross-correlation of ``x`` (N, C, H, W) with ``sub`` (stride, padding t/b/l/r, dilation, groups)."""
    t, b, l, r = sub.padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    w = np.asarray(sub.weight, dtype=np.float64)
    kh, kw = w.shape[2:]
    (sh, sw), (dh, dw) = sub.stride, sub.dilation
    win = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]                    # (N, C, Ho, Wo, kh, kw)
    g = sub.groups
    cin, cout = w.shape[1], w.shape[0] // g
    outs = [np.einsum("nchwij,ocij->nohw", win[:, k * cin:(k + 1) * cin], w[k * cout:(k + 1) * cout],
                      optimize=True) for k in range(g)]
    y = np.concatenate(outs, axis=1)
    if sub.bias is not None:
        y = y + np.asarray(sub.bias, dtype=np.float64)[None, :, None, None]
    return y


@dataclass
class Linear:
    """A conv2d or dense layer (``layer.kind``)."""

    name: str
    layer: SubLayer

    def forward(self, x):
        if self.layer.kind == "conv2d":
            return conv2d_nchw(x, self.layer)
        y = x @ np.asarray(self.layer.weight, dtype=np.float64).T
        return y if self.layer.bias is None else y + self.layer.bias

    def out_shape(self, shape):
        sub = self.layer
        if sub.kind == "dense":
            if len(shape) != 1 or shape[0] != sub.weight.shape[1]:
                raise ReductionError(f"dense layer {self.name!r} takes {sub.weight.shape[1]} features, "
                                     f"gets shape {tuple(shape)}; add a Flatten before it")
            return (sub.out_channels,)
        if len(shape) != 3 or shape[0] != sub.in_channels:
            raise ReductionError(f"conv layer {self.name!r} takes {sub.in_channels} channels (C, H, W), "
                                 f"gets shape {tuple(shape)}")
        kh, kw = sub.kernel
        t, b, l, r = sub.padding
        return (sub.out_channels, _conv_size(shape[1], kh, sub.stride[0], t + b, sub.dilation[0]),
                _conv_size(shape[2], kw, sub.stride[1], l + r, sub.dilation[1]))


@dataclass
class BatchNorm:
    """Inference-mode batch norm over axis 1: ``gamma * (x - mean) / sqrt(var + eps) + beta``."""

    name: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    VECTORS = ("gamma", "beta", "mean", "var")

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = np.asarray(self.gamma, np.float64) / np.sqrt(np.asarray(self.var, np.float64) + self.eps)
        return (x - np.reshape(self.mean, shape)) * scale.reshape(shape) + np.reshape(self.beta, shape)

    def out_shape(self, shape):
        if shape[0] != len(self.gamma):
            raise ReductionError(f"batch norm {self.name!r} has {len(self.gamma)} channels, gets shape "
                                 f"{tuple(shape)}")
        return tuple(shape)


@dataclass
class Act:
    """Element-wise activation (a key of :data:`ACTIVATIONS`)."""

    name: str
    fn: str = "relu"

    def forward(self, x):
        return ACTIVATIONS[self.fn](x)

    def out_shape(self, shape):
        return tuple(shape)


@dataclass
class MaxPool:
    """2-D max pooling with padding (t, b, l, r) filled by -inf; ``stride`` defaults to ``kernel``."""

    name: str
    kernel: Tuple[int, int] = (2, 2)
    stride: Optional[Tuple[int, int]] = None
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)

    def forward(self, x):
        t, b, l, r = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-np.inf)
        sh, sw = self.stride or self.kernel
        win = np.lib.stride_tricks.sliding_window_view(xp, tuple(self.kernel), axis=(2, 3))[:, :, ::sh, ::sw]
        return win.max(axis=(4, 5))

    def out_shape(self, shape):
        (kh, kw), (sh, sw) = self.kernel, self.stride or self.kernel
        t, b, l, r = self.padding
        return (shape[0], _conv_size(shape[1], kh, sh, t + b, 1), _conv_size(shape[2], kw, sw, l + r, 1))


@dataclass
class GlobalAvgPool:
    """Mean over H and W, keeping (N, C, 1, 1)."""

    name: str

    def forward(self, x):
        return x.mean(axis=(2, 3), keepdims=True)

    def out_shape(self, shape):
        return (shape[0], 1, 1)


@dataclass
class Flatten:
    """(N, C, H, W) -> (N, C*H*W), channel-major like torch/MindSpore."""

    name: str

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    def out_shape(self, shape):
        return (int(np.prod(shape)),)


@dataclass
class Residual:
    """``act(main(x) + shortcut(x))``; an empty ``shortcut`` is the identity path."""

    name: str
    main: List = field(default_factory=list)
    shortcut: List = field(default_factory=list)
    act: str = "relu"

    def forward(self, x, record=None):
        y = _run(self.main, x, record) + _run(self.shortcut, x, record)
        return ACTIVATIONS[self.act](y)

    def out_shape(self, shape):
        main = output_shape(self.main, shape)
        short = output_shape(self.shortcut, shape)
        if main != short:
            raise ReductionError(f"residual block {self.name!r}: main branch gives {main}, shortcut {short}")
        return main


def _run(ops: Sequence, x: np.ndarray, record: Optional[Dict[str, np.ndarray]]) -> np.ndarray:
    for op in ops:
        if isinstance(op, Residual):
            x = op.forward(x, record)
            continue
        if record is not None and isinstance(op, Linear):
            record[op.name] = x
        x = op.forward(x)
    return x


def forward(net: Sequence, x: np.ndarray, record: bool = False):
    """Run ``net`` on ``x`` in float64.

    Returns the output, or ``(output, inputs)`` with ``record=True`` where ``inputs`` maps every
    Linear's name to the tensor it read and :data:`OUTPUT` to the network output.
    """
    rec = {} if record else None
    y = _run(net, np.asarray(x, dtype=np.float64), rec)
    if not record:
        return y
    rec[OUTPUT] = y
    return y, rec


def output_shape(net: Sequence, shape: Sequence[int]) -> Tuple[int, ...]:
    """Shape (without batch) of the output of ``net`` for an input of ``shape``."""
    shape = tuple(int(s) for s in shape)
    for op in net:
        shape = op.out_shape(shape)
    return shape


def walk(net: Sequence) -> Iterator:
    """Every op of ``net`` in run order, descending into residual blocks (main, then shortcut)."""
    for op in net:
        yield op
        if isinstance(op, Residual):
            yield from walk(op.main)
            yield from walk(op.shortcut)
