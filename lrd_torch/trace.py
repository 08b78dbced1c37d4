"""Record one example pass of a torch model as a :class:`lrd_core.trace.Trace`.

Leaf modules (and every Conv2d/Linear) are recorded as operations through forward hooks; container
modules as scopes (enter/exit); tensor functions called between modules (``x + identity``,
``torch.cat``, ``flatten``, ``chunk``, functional attention, ...) through a
:class:`torch.overrides.TorchFunctionMode`. Calls made inside a recorded operation are not
recorded. Parameters and buffers are not activations and are left out.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from lrd_core.trace import Trace, TraceRecorder

LAYER_KINDS = ((nn.Conv2d, "conv2d"), (nn.Linear, "dense"))


def layer_kind(module: nn.Module):
    """``conv2d``/``dense`` for the layers lrd decomposes, else None."""
    for cls, kind in LAYER_KINDS:
        if isinstance(module, cls):
            return kind
    return None


def _name_of(func) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


class _FunctionRecorder(TorchFunctionMode):
    """Records every torch function / tensor method called while no recorded operation runs."""

    def __init__(self, rec: TraceRecorder):
        super().__init__()
        self.rec = rec
        self.paused = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused or self.rec.quiet:
            return func(*args, **kwargs)
        outermost = self.rec.begin()
        out = None
        try:
            out = func(*args, **kwargs)
        finally:
            self.paused = True
            try:
                name = _name_of(func)
                self.rec.end(outermost, name, (args, kwargs), out, op_type=name)
            finally:
                self.paused = False
        return out


def _hooks(model: nn.Module, rec: TraceRecorder, mode: _FunctionRecorder):
    handles = []

    @contextlib.contextmanager
    def paused():
        mode.paused = True
        try:
            yield
        finally:
            mode.paused = False

    for name, module in model.named_modules():
        kind = layer_kind(module)
        leaf = kind is not None or next(module.children(), None) is None
        if not name and not leaf:
            continue                                   # the model itself: its scope is the trace
        pre, post = rec.hooks(name, kind, leaf, paused)
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True, always_call=True))
    return handles


def record(model: nn.Module, x: torch.Tensor) -> Trace:
    """Run ``model(x)`` once in eval mode without gradients and return what ran, in order.

    Hooks and the function mode are removed and the train/eval mode restored, also on error.
    """
    state = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    rec = TraceRecorder(lambda t: isinstance(t, torch.Tensor) and not isinstance(t, nn.Parameter)
                        and id(t) not in state, lambda t: tuple(t.shape))
    mode = _FunctionRecorder(rec)
    was_training = model.training
    handles = _hooks(model, rec, mode)
    try:
        model.eval()
        rec.start(x)
        with torch.no_grad(), mode:
            out = model(x)
        mode.paused = True
        return rec.finish(out)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
