"""LayerInfo for every Conv2d / Dense of a MindSpore cell, with input sizes seen on an example input.

The example forward runs in PyNative mode (forward hooks need it); the previous mode is restored.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from lrd_core.errors import ConfigError
from lrd_core.layers import LayerInfo
from lrd_core.roles import infer_roles


def named_layers(model: nn.Cell):
    """``[(name, cell)]`` of every Conv2d and Dense, in definition order."""
    return [(n, c) for n, c in model.cells_and_names() if isinstance(c, (nn.Conv2d, nn.Dense)) and n]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _padding(c: nn.Conv2d, hw) -> tuple:
    """(top, bottom, left, right) for MindSpore's pad modes, given the input (h, w)."""
    if c.pad_mode == "pad":
        p = c.padding
        if isinstance(p, int):
            return (p, p, p, p)
        if len(p) == 2:
            return (p[0], p[0], p[1], p[1])
        return tuple(p)
    if c.pad_mode == "valid":
        return (0, 0, 0, 0)
    pads = []   # 'same': output = ceil(in / stride); extra padding goes bottom/right
    for size, k, s, d in zip(hw, _pair(c.kernel_size), _pair(c.stride), _pair(c.dilation)):
        total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def inspect(model: nn.Cell, example_input_or_shape=None, input_shape: Optional[Sequence[int]] = None
            ) -> List[LayerInfo]:
    """Describe every conv/dense layer of ``model`` (roles and spatial input sizes included).

    Parameters
    ----------
    model : mindspore.nn.Cell
    example_input_or_shape : Tensor or shape, optional
    input_shape : tuple, optional
        ``(N, C, H, W)``; a zero tensor of this shape is run through the model once in eval mode.
    """
    x = example_input_or_shape if example_input_or_shape is not None else input_shape
    if x is None:
        raise ConfigError("inspect needs an example input or input_shape=(N, C, H, W)")
    if not isinstance(x, ms.Tensor):
        x = ms.Tensor(np.zeros(tuple(x), np.float32))
    layers = named_layers(model)
    seen, order = {}, {}

    def hook(name):
        def fn(cell, inputs):
            if name not in seen:
                seen[name] = tuple(inputs[0].shape)
                order[name] = len(order)
        return fn

    mode = ms.get_context("mode")
    training = model.training
    handles = [c.register_forward_pre_hook(hook(n)) for n, c in layers]
    try:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        model.set_train(False)
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.set_train(training)
        ms.set_context(mode=mode)
    roles = infer_roles([(n, "conv2d" if isinstance(c, nn.Conv2d) else "dense", order.get(n)) for n, c in layers])
    infos = []
    for (name, c), role in zip(layers, roles):
        shape = seen.get(name)
        if isinstance(c, nn.Conv2d):
            hw = tuple(shape[2:4]) if shape is not None else (1, 1)
            infos.append(LayerInfo(name=name, kind="conv2d", in_channels=c.in_channels, out_channels=c.out_channels,
                                   kernel=_pair(c.kernel_size), stride=_pair(c.stride), padding=_padding(c, hw),
                                   dilation=_pair(c.dilation), groups=c.group, has_bias=bool(c.has_bias),
                                   input_hw=hw, role=role))
        else:
            infos.append(LayerInfo(name=name, kind="dense", in_channels=c.in_channels, out_channels=c.out_channels,
                                   has_bias=bool(c.has_bias), role=role))
    return infos


def weight(c: nn.Cell) -> np.ndarray:
    return c.weight.asnumpy().astype(np.float32, copy=True)


def bias(c: nn.Cell):
    return c.bias.asnumpy().astype(np.float32, copy=True) if c.has_bias else None
