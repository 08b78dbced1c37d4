"""LayerInfo for every Conv2d / Linear of a torch model, with input sizes seen on an example input."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from lrd_core.errors import ConfigError
from lrd_core.layers import LayerInfo
from lrd_core.roles import infer_roles


def named_layers(model: nn.Module):
    """``[(name, module)]`` of every Conv2d and Linear, in definition order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _padding(m: nn.Conv2d, hw) -> tuple:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0, 0, 0, 0)
        pads = []   # torch 'same' (stride 1): extra padding goes right/bottom
        for k, d in zip(m.kernel_size, m.dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = m.padding
    return (ph, ph, pw, pw)


def example_input(input_shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.zeros(tuple(input_shape), device=device, dtype=dtype)


def inspect(model: nn.Module, example_input_or_shape=None, input_shape: Optional[Sequence[int]] = None
            ) -> List[LayerInfo]:
    """Describe every conv/dense layer of ``model`` (roles and spatial input sizes included).

    Parameters
    ----------
    model : torch.nn.Module
    example_input_or_shape : Tensor or shape, optional
    input_shape : tuple, optional
        ``(N, C, H, W)``; a zero tensor of this shape is run through the model once (eval, no grad).
    """
    x = example_input_or_shape if example_input_or_shape is not None else input_shape
    if x is None:
        raise ConfigError("inspect needs an example input or input_shape=(N, C, H, W)")
    param = next(model.parameters(), None)
    if not isinstance(x, torch.Tensor):
        x = example_input(x, device=None if param is None else param.device,
                          dtype=torch.float32 if param is None else param.dtype)
    layers = named_layers(model)
    seen, order = {}, {}

    def hook(name):
        def fn(module, inputs):
            if name not in seen:
                seen[name] = tuple(inputs[0].shape)
                order[name] = len(order)
        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    roles = infer_roles([(n, "conv2d" if isinstance(m, nn.Conv2d) else "dense", order.get(n)) for n, m in layers])
    infos = []
    for (name, m), role in zip(layers, roles):
        shape = seen.get(name)
        if isinstance(m, nn.Conv2d):
            hw = tuple(shape[2:4]) if shape is not None else (1, 1)
            infos.append(LayerInfo(name=name, kind="conv2d", in_channels=m.in_channels, out_channels=m.out_channels,
                                   kernel=m.kernel_size, stride=m.stride, padding=_padding(m, hw),
                                   dilation=m.dilation, groups=m.groups, has_bias=m.bias is not None,
                                   input_hw=hw, role=role))
        else:
            infos.append(LayerInfo(name=name, kind="dense", in_channels=m.in_features, out_channels=m.out_features,
                                   has_bias=m.bias is not None, role=role))
    return infos


def weight(m: nn.Module) -> np.ndarray:
    return m.weight.detach().cpu().float().numpy().copy()


def bias(m: nn.Module):
    return None if m.bias is None else m.bias.detach().cpu().float().numpy().copy()
