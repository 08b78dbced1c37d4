"""Build torch layers from SubLayers and swap them into a model; plan / compress / rebuild."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from lrd_core import apply as core_apply
from lrd_core.errors import UnsupportedLayerError
from lrd_core.layers import SubLayer
from lrd_core.plan import Plan

from . import inspect as _inspect


def build_sublayer(sub: SubLayer, device=None, dtype=torch.float32) -> nn.Module:
    """One native layer with the SubLayer's weights."""
    if sub.kind == "dense":
        layer = nn.Linear(sub.weight.shape[1], sub.weight.shape[0], bias=sub.has_bias)
    else:
        t, b, l, r = sub.padding
        if t != b or l != r:
            raise UnsupportedLayerError(f"asymmetric padding {sub.padding} has no torch Conv2d equivalent")
        layer = nn.Conv2d(sub.in_channels, sub.out_channels, sub.kernel, stride=sub.stride, padding=(t, l),
                          dilation=sub.dilation, groups=sub.groups, bias=sub.has_bias)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(sub.weight))
        if sub.has_bias:
            layer.bias.copy_(torch.from_numpy(sub.bias))
    return layer.to(device=device, dtype=dtype)


def build(subs: Sequence[SubLayer], like: Optional[nn.Module] = None) -> nn.Sequential:
    """The factor chain as ``nn.Sequential`` on the device/dtype of ``like``."""
    device = dtype = None
    if like is not None:
        if getattr(like, "padding_mode", "zeros") != "zeros":
            raise UnsupportedLayerError(f"padding_mode={like.padding_mode!r} is not supported; only zero padding")
        device, dtype = like.weight.device, like.weight.dtype
    seq = nn.Sequential(*[build_sublayer(s, device, dtype or torch.float32) for s in subs])
    if like is not None:
        seq.train(like.training)
    return seq


def replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


class TorchBackend:
    inspect = staticmethod(lambda model, input_shape: _inspect.inspect(model, input_shape=input_shape))
    named_layers = staticmethod(_inspect.named_layers)
    weight = staticmethod(_inspect.weight)
    bias = staticmethod(_inspect.bias)
    build = staticmethod(build)
    replace = staticmethod(replace)


BACKEND = TorchBackend()


def plan(model: nn.Module, input_shape=(1, 3, 224, 224), **options) -> Plan:
    """Make a :class:`~lrd_core.Plan` for ``model`` (keywords: the PlanConfig fields).

    ``mode="auto"`` times the candidate layers on ``device`` and keeps only faster ones (see
    :func:`lrd_torch.latency.auto_plan` for its extra keywords: ``cache_path``, ``threads``, ``log``).
    """
    if options.get("mode") == "auto":
        from .latency import auto_plan
        return auto_plan(model, input_shape, **options)
    return core_apply.plan_model(BACKEND, model, input_shape, meta={"framework": "torch"}, **options)


def compress(model: nn.Module, plan: Plan, progress=None) -> nn.Module:
    """Decompose the planned layers of ``model`` in place and return it."""
    return core_apply.compress_model(BACKEND, model, plan, progress=progress)


def rebuild(model: nn.Module, plan: Plan) -> nn.Module:
    """Replace the planned layers by factor chains of the right shapes (no decomposition)."""
    return core_apply.rebuild_model(BACKEND, model, plan)
