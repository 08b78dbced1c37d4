"""Record one example pass of a MindSpore cell as a :class:`lrd_core.trace.Trace` (PyNative mode).

Leaf cells (and every Conv2d/Dense) are recorded as operations and container cells as scopes
through forward (pre-)hooks. Between cells, MindSpore 2.10 shows no tensor operation to Python
hooks, so the operations that matter are seen by temporarily wrapping them: the merges that make
blocks and gates (``Tensor``'s ``__add__`` / ``__radd__`` / ``__iadd__`` / ``add`` and the ``mul``
counterparts, also on ``Parameter``; ``ops.add`` / ``cat`` / ``concat`` / ``mul`` and their ``mint``
variants; the ``Add`` / ``AddN`` / ``Concat`` / ``Mul`` primitives) and the common layout operations
(slicing, reshape, transpose, split, broadcast, mean, ... as methods, functions and primitives), so
that tensors derived from parameters (class tokens) are told apart from activations. Any other
operation stays invisible and :class:`lrd_core.trace.Graph` bridges it from the enclosing cell.
Every wrapper is removed again, also on error.
"""
from __future__ import annotations

import contextlib
from typing import List, Tuple

import mindspore as ms
from mindspore import mint, nn, ops

from lrd_core.trace import Trace, TraceRecorder

LAYER_KINDS = ((nn.Conv2d, "conv2d"), (nn.Dense, "dense"))
_MERGE_METHODS = ("__add__", "__radd__", "__iadd__", "add", "__mul__", "__rmul__", "__imul__", "mul")
_LAYOUT_METHODS = ("__getitem__", "__sub__", "__rsub__", "__truediv__", "__matmul__", "reshape", "view",
                   "transpose", "permute", "swapaxes", "flatten", "squeeze", "unsqueeze", "expand_dims",
                   "broadcast_to", "expand_as", "tile", "repeat", "astype", "split", "chunk", "mean", "sum",
                   "softmax", "matmul")
_FUNCTIONS = ("add", "cat", "concat", "mul", "matmul", "bmm", "reshape", "transpose", "permute", "swapaxes", "split",
              "chunk", "tile", "broadcast_to", "expand_dims", "squeeze", "unsqueeze", "flatten", "mean", "stack",
              "unstack", "softmax", "sub", "div")
_PRIMITIVES = ("Add", "AddN", "Concat", "Mul", "Reshape", "Transpose", "ReduceMean", "Split", "Unstack", "Stack",
               "Tile", "BroadcastTo", "ExpandDims", "Squeeze", "Flatten", "BatchMatMul", "MatMul", "Softmax",
               "Cast", "Sub", "Div", "RealDiv")


def layer_kind(cell: nn.Cell):
    """``conv2d``/``dense`` for the layers lrd decomposes, else None."""
    for cls, kind in LAYER_KINDS:
        if isinstance(cell, cls):
            return kind
    return None


def _targets() -> List[Tuple[object, str, str]]:
    """``(owner, attribute, op name)`` of every operation that gets a recording wrapper."""
    out = [(cls, attr, f"Tensor.{attr}") for cls in (ms.Tensor, ms.Parameter)
           for attr in _MERGE_METHODS + _LAYOUT_METHODS]
    out += [(mod, attr, f"{label}.{attr}") for mod, label in ((ops, "ops"), (mint, "mint"))
            for attr in _FUNCTIONS if hasattr(mod, attr)]
    out += [(getattr(ops, name), "__call__", name) for name in _PRIMITIVES if hasattr(ops, name)]
    return out


def _wrap(fn, op_name: str, rec: TraceRecorder):
    def recorded(*args, **kwargs):
        if rec.quiet:
            return fn(*args, **kwargs)
        outermost = rec.begin()
        out = None
        try:
            out = fn(*args, **kwargs)
        finally:
            rec.end(outermost, op_name, (args, kwargs), out, op_type=op_name.rsplit(".", 1)[-1])
        return out
    recorded.__name__ = getattr(fn, "__name__", op_name)
    recorded.__doc__ = getattr(fn, "__doc__", None)
    return recorded


@contextlib.contextmanager
def _patched(rec: TraceRecorder):
    saved = []
    try:
        for owner, attr, op_name in _targets():
            if not hasattr(owner, attr):
                continue
            own = owner.__dict__.get(attr) if isinstance(owner, type) else None
            original = getattr(owner, attr)
            saved.append((owner, attr, own, original))
            setattr(owner, attr, _wrap(original, op_name, rec))
        yield
    finally:
        for owner, attr, own, original in reversed(saved):
            if not isinstance(owner, type):
                setattr(owner, attr, original)
            elif own is not None:
                setattr(owner, attr, own)
            else:
                delattr(owner, attr)


def _hooks(model: nn.Cell, rec: TraceRecorder):
    handles = []
    for name, cell in model.cells_and_names():
        kind = layer_kind(cell)
        leaf = kind is not None or not cell.name_cells()
        if not name and not leaf:
            continue                                   # the model itself: its scope is the trace
        pre, post = rec.hooks(name, kind, leaf)
        handles.append(cell.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(cell.register_forward_hook(post, with_kwargs=True, always_call=True))
    return handles


def record(model: nn.Cell, x) -> Trace:
    """Run ``model(x)`` once in PyNative eval mode and return what ran, in order.

    The execution mode, the train flag, the hooks and the wrapped operations are all restored,
    also on error.
    """
    state = {id(p) for p in model.get_parameters()}
    rec = TraceRecorder(lambda t: isinstance(t, ms.Tensor) and not isinstance(t, ms.Parameter)
                        and id(t) not in state, lambda t: tuple(t.shape))
    mode = ms.get_context("mode")
    training = model.training
    handles = []
    try:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        model.set_train(False)
        handles = _hooks(model, rec)
        rec.start(x)
        with _patched(rec):
            out = model(x)
        return rec.finish(out)
    finally:
        for h in handles:
            h.remove()
        model.set_train(training)
        ms.set_context(mode=mode)
