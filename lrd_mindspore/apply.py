"""Build MindSpore cells from SubLayers and swap them into a network; plan / compress / rebuild.

MindSpore pitfalls handled here: inside a ``SequentialCell`` only ``seq[i] = new`` takes effect,
parameter names must be refreshed after a swap (else checkpoints drop keys and optimizers see
duplicate names), and a GRAPH-mode network compiled before the swap keeps running its old graph
(the compile cache is keyed by the cell's creation time and id), so every cell on the path gets a
fresh creation time.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from lrd_core import apply as core_apply
from lrd_core.errors import UnsupportedLayerError
from lrd_core.layers import SubLayer
from lrd_core.plan import Plan

from . import inspect as _inspect


def build_sublayer(sub: SubLayer) -> nn.Cell:
    w = ms.Tensor(np.ascontiguousarray(sub.weight, dtype=np.float32))
    b = ms.Tensor(np.ascontiguousarray(sub.bias, dtype=np.float32)) if sub.has_bias else "zeros"
    if sub.kind == "dense":
        return nn.Dense(sub.weight.shape[1], sub.weight.shape[0], weight_init=w, bias_init=b, has_bias=sub.has_bias)
    return nn.Conv2d(sub.in_channels, sub.out_channels, sub.kernel, stride=sub.stride, pad_mode="pad",
                     padding=tuple(int(p) for p in sub.padding), dilation=sub.dilation, group=sub.groups,
                     has_bias=sub.has_bias, weight_init=w, bias_init=b)


def build(subs: Sequence[SubLayer], like: Optional[nn.Cell] = None) -> nn.SequentialCell:
    """The factor chain as ``nn.SequentialCell``."""
    if like is not None and isinstance(like, nn.Dense) and getattr(like, "activation_flag", False):
        raise UnsupportedLayerError("Dense layers with a fused activation are not supported; "
                                    "move the activation out of the Dense")
    seq = nn.SequentialCell([build_sublayer(s) for s in subs])
    if like is not None:
        seq.set_train(like.training)
    return seq


def _get_cell(model: nn.Cell, path: str) -> nn.Cell:
    if not path:
        return model
    cells = dict(model.cells_and_names())
    return cells[path]


def replace(model: nn.Cell, name: str, new: nn.Cell) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = _get_cell(model, parent_name)
    if isinstance(parent, nn.SequentialCell) and child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)
    new.update_parameters_name(name + ".")
    invalidate_graphs(model, name)


def invalidate_graphs(model: nn.Cell, name: str = "") -> None:
    """Make MindSpore recompile ``model`` (and the cells on the path to ``name``) on the next call."""
    stamp = time.time_ns()
    path, cells = "", [model]
    by_name = dict(model.cells_and_names()) if name else {}
    for part in name.split(".")[:-1] if name else []:
        path = f"{path}.{part}" if path else part
        if path in by_name:
            cells.append(by_name[path])
    for k, cell in enumerate(cells):
        object.__setattr__(cell, "_create_time", stamp + k)


class MindSporeBackend:
    inspect = staticmethod(lambda model, input_shape: _inspect.inspect(model, input_shape=input_shape))
    named_layers = staticmethod(_inspect.named_layers)
    weight = staticmethod(_inspect.weight)
    bias = staticmethod(_inspect.bias)
    build = staticmethod(build)
    replace = staticmethod(replace)


BACKEND = MindSporeBackend()


def plan(model: nn.Cell, input_shape=(1, 3, 224, 224), **options) -> Plan:
    """Make a :class:`~lrd_core.Plan` for ``model`` (keywords: the PlanConfig fields).

    ``mode="auto"`` times the candidate layers on ``device`` (GRAPH mode) and keeps only faster ones
    (see :func:`lrd_mindspore.latency.auto_plan` for its extra keywords: ``cache_path``, ``threads``).
    """
    if options.get("mode") == "auto":
        from .latency import auto_plan
        return auto_plan(model, input_shape, **options)
    return core_apply.plan_model(BACKEND, model, input_shape, meta={"framework": "mindspore"}, **options)


def compress(model: nn.Cell, plan: Plan, progress=None) -> nn.Cell:
    """Decompose the planned layers of ``model`` in place and return it."""
    return core_apply.compress_model(BACKEND, model, plan, progress=progress)


def rebuild(model: nn.Cell, plan: Plan) -> nn.Cell:
    """Replace the planned layers by factor chains of the right shapes (no decomposition)."""
    return core_apply.rebuild_model(BACKEND, model, plan)
