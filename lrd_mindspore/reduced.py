"""Reduced-order networks in MindSpore: what a cell computes (for the RON/ASNet description), the native
cells of a reduced network (residual block, polynomial features, ASNet head) and input gradients.

The twin of :mod:`lrd_torch.reduced` (same spec kinds, same parameter names, same numbers).
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from lrd_core.errors import UnsupportedLayerError

from .models.resnet import StemMaxPool

__all__ = ["describe", "make", "input_gradients", "Residual", "PolyFeatures", "ASNetHead"]


def _pair(v) -> Tuple[int, int]:
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


# ---------------------------------------------------------------------------- describe
def _batchnorm(c) -> dict:
    if getattr(c, "use_batch_statistics", None) is True:
        return {"op": "unknown", "type": type(c).__name__, "why": "use_batch_statistics=True"}
    f64 = lambda p: p.asnumpy().astype(np.float64)                     # noqa: E731
    return {"op": "batchnorm", "eps": float(c.eps), "gamma": f64(c.gamma), "beta": f64(c.beta),
            "mean": f64(c.moving_mean), "var": f64(c.moving_variance)}


def _pool_padding(c):
    mode = str(getattr(c, "pad_mode", "VALID")).upper()
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode == "PAD":
        ph, pw = _pair(tuple(c.padding)[-2:]) if isinstance(c.padding, (tuple, list)) else _pair(c.padding)
        return (ph, ph, pw, pw)
    return "same" if mode == "SAME" else None


def _pool(c, op: str) -> dict:
    pad = _pool_padding(c)
    prim = getattr(c, "max_pool", None)
    if pad is None or (prim is not None and prim.attrs.get("ceil_mode", False)):
        return {"op": "unknown", "type": type(c).__name__, "why": f"pad_mode={c.pad_mode} or ceil_mode"}
    return {"op": op, "kernel": _pair(c.kernel_size), "stride": _pair(c.stride), "padding": pad}


def _adaptive(c) -> dict:
    prim = getattr(c, "adaptive_avgpool2d", None)
    size = tuple(prim.attrs.get("output_size", ())) if prim is not None else ()
    return {"op": "global_avgpool"} if tuple(size) == (1, 1) else {"op": "unknown", "type": type(c).__name__,
                                                                    "why": f"output size {size} is not 1x1"}


def _flatten(c) -> dict:
    start, end = getattr(c, "start_dim", 1), getattr(c, "end_dim", -1)
    return {"op": "flatten"} if (start, end) == (1, -1) else \
        {"op": "unknown", "type": "Flatten", "why": f"start_dim={start}, end_dim={end}"}


def _leaky(c) -> dict:
    return {"op": "act", "fn": "leaky_relu"} if abs(float(c.alpha) - 0.01) < 1e-12 else \
        {"op": "unknown", "type": "LeakyReLU", "why": f"alpha={c.alpha} (only 0.01)"}


#: cell class -> reader of what it computes (first match in order, subclasses included).
DESCRIBERS: List[Tuple[type, Callable]] = [
    (nn.BatchNorm2d, _batchnorm), (nn.BatchNorm1d, _batchnorm), (nn.MaxPool2d, lambda c: _pool(c, "maxpool")),
    (nn.AvgPool2d, lambda c: _pool(c, "avgpool")), (nn.AdaptiveAvgPool2d, _adaptive), (nn.Flatten, _flatten),
    (nn.LeakyReLU, _leaky), (nn.ReLU, lambda c: {"op": "act", "fn": "relu"}),
    (nn.ReLU6, lambda c: {"op": "act", "fn": "relu6"}), (nn.Tanh, lambda c: {"op": "act", "fn": "tanh"}),
    (nn.Sigmoid, lambda c: {"op": "act", "fn": "sigmoid"}), (nn.Identity, lambda c: {"op": "identity"}),
    (nn.Dropout, lambda c: {"op": "identity"}),
    (StemMaxPool, lambda c: {"op": "maxpool", "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1)}),
]


def describe(cell: nn.Cell) -> dict:
    """What a leaf cell computes, as a plain dict (``op`` key); ``{"op": "unknown", ...}`` otherwise."""
    for cls, reader in DESCRIBERS:
        if isinstance(cell, cls):
            if type(cell).construct is not cls.construct:
                break
            return reader(cell)
    return {"op": "unknown", "type": type(cell).__name__}


# ---------------------------------------------------------------------------- native cells
class Residual(nn.Cell):
    """``act(main(x) + shortcut(x))``; no shortcut cell means the identity path."""

    def __init__(self, main: nn.Cell, shortcut: Optional[nn.Cell], act: nn.Cell):
        super().__init__()
        self.main = main
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.act = act

    def construct(self, x):
        return self.act(self.main(x) + self.shortcut(x))


class PolyFeatures(nn.Cell):
    """Monomials of ``z`` (N, r) from a gather table (T-1, d) into ``[1, z]`` (see
    :class:`lrd_torch.reduced.PolyFeatures`); constants only, no parameters."""

    def __init__(self, index: np.ndarray):
        super().__init__()
        index = np.asarray(index, dtype=np.int64)
        self.degree = int(index.shape[1])
        self.cols = tuple(ms.Tensor(np.maximum(index[:, q] - 1, 0).astype(np.int32)) for q in range(self.degree))
        self.scale = tuple(ms.Tensor((index[:, q] > 0).astype(np.float32)) for q in range(self.degree))
        self.shift = tuple(ms.Tensor((index[:, q] == 0).astype(np.float32)) for q in range(self.degree))

    def construct(self, z):
        out = ops.gather(z, self.cols[0], 1) * self.scale[0] + self.shift[0]
        for q in range(1, self.degree):
            out = out * (ops.gather(z, self.cols[q], 1) * self.scale[q] + self.shift[q])
        return out


class ASNetHead(nn.Cell):
    """Flatten -> ``projection`` Dense (D -> r) -> ``norm`` BatchNorm1d (the standardisation of z) ->
    :class:`PolyFeatures` -> ``output`` Dense (T-1 -> K)."""

    def __init__(self, features: int, dim: int, index: np.ndarray, outputs: int, eps: float = 1e-5):
        super().__init__()
        self.flatten = nn.Flatten()
        self.projection = nn.Dense(features, dim, has_bias=True)
        self.norm = nn.BatchNorm1d(dim, eps=eps)
        self.poly = PolyFeatures(index)
        self.output = nn.Dense(len(index), outputs, has_bias=True)

    def construct(self, x):
        return self.output(self.poly(self.norm(self.projection(self.flatten(x)))))


def _t(a) -> ms.Tensor:
    return ms.Tensor(np.ascontiguousarray(a, dtype=np.float32))


def _layer(spec: dict, like) -> nn.Cell:
    from .backend import MindSporeBackend
    return MindSporeBackend._cell(spec["sub"])


def _batchnorm_cell(spec: dict, like) -> nn.Cell:
    cls = nn.BatchNorm2d if spec.get("dims", 4) == 4 else nn.BatchNorm1d
    momentum = float(like.momentum) if like is not None and hasattr(like, "momentum") else 0.9
    return cls(len(spec["gamma"]), eps=float(spec["eps"]), momentum=momentum, gamma_init=_t(spec["gamma"]),
               beta_init=_t(spec["beta"]), moving_mean_init=_t(spec["mean"]), moving_var_init=_t(spec["var"]))


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity,
         "leaky_relu": lambda: nn.LeakyReLU(0.01)}


def _maxpool_cell(spec: dict, like) -> nn.Cell:
    t, b, l, r = spec["padding"]
    if t != b or l != r:
        raise UnsupportedLayerError(f"asymmetric max-pool padding {spec['padding']} has no MindSpore MaxPool2d")
    if (t, l) == (0, 0):
        return nn.MaxPool2d(tuple(spec["kernel"]), tuple(spec["stride"]), pad_mode="valid")
    return nn.MaxPool2d(tuple(spec["kernel"]), tuple(spec["stride"]), pad_mode="pad", padding=(t, l))


class _GlobalAvgPool(nn.Cell):
    """Mean over H and W keeping (N, C, 1, 1) (exports as ReduceMean everywhere)."""

    def construct(self, x):
        return x.mean((2, 3), keep_dims=True)


def _head(spec: dict, like) -> nn.Cell:
    w, wo = spec["projection_weight"], spec["output_weight"]
    head = ASNetHead(w.shape[1], w.shape[0], spec["poly_index"], wo.shape[0], float(spec["norm_eps"]))
    for param, key in ((head.projection.weight, "projection_weight"), (head.projection.bias, "projection_bias"),
                       (head.norm.moving_mean, "norm_mean"), (head.norm.moving_variance, "norm_var"),
                       (head.output.weight, "output_weight"), (head.output.bias, "output_bias")):
        param.set_data(_t(spec[key]))
    return head


#: spec kind -> builder(spec, like) of the native cell.
BUILDERS: Dict[str, Callable] = {
    "layer": _layer,
    "chain": lambda spec, like: nn.SequentialCell([_layer({"sub": s}, like) for s in spec["subs"]]),
    "batchnorm": _batchnorm_cell,
    "act": lambda spec, like: _ACTS[spec["fn"]](),
    "maxpool": _maxpool_cell,
    "global_avgpool": lambda spec, like: _GlobalAvgPool(),
    "flatten": lambda spec, like: nn.Flatten(),
    "identity": lambda spec, like: nn.Identity(),
    "sequence": lambda spec, like: nn.SequentialCell(OrderedDict(spec["children"])),
    "residual": lambda spec, like: Residual(spec["main"], spec.get("shortcut"), _ACTS[spec.get("act", "identity")]()),
    "asnet_head": _head,
}


def make(spec: dict, like: Optional[nn.Cell] = None) -> nn.Cell:
    """The native cell of a spec (``kind`` key, see :data:`BUILDERS`), in ``like``'s train mode; parameter
    names follow the cell tree."""
    if spec["kind"] not in BUILDERS:
        raise UnsupportedLayerError(f"MindSpore cannot build a {spec['kind']!r} cell")
    cell = BUILDERS[spec["kind"]](spec, like)
    cell.set_train(like.training if like is not None else False)
    for name, p in cell.parameters_and_names():
        p.name = name
    return cell


# ---------------------------------------------------------------------------- gradients
def input_gradients(model: nn.Cell, x: np.ndarray,
                    cotangents: Callable[[np.ndarray], Sequence[np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    """Eval-mode output of ``model`` at ``x`` and ``v^T d out / d x`` for every ``v`` in
    ``cotangents(output)``, stacked (M, *x.shape) (PyNative mode, one forward pass)."""
    was = model.training
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    model.set_train(False)
    try:
        out, vjp = ms.vjp(model, _t(x))
        grads = []
        with warnings.catch_warnings():        # "vjp_fn has been called multiple times": expected here
            warnings.simplefilter("ignore", RuntimeWarning)
            for v in cotangents(out.asnumpy()):
                g = vjp(_t(v))
                grads.append((g[0] if isinstance(g, (tuple, list)) else g).asnumpy())
        return out.asnumpy(), np.stack(grads)
    finally:
        model.set_train(was)
        ms.set_context(mode=mode)
