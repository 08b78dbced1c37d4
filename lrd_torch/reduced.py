"""Reduced-order networks in torch: what a module computes (for the RON/ASNet description), the native
modules of a reduced network (residual block, polynomial features, ASNet head) and input gradients.

:func:`describe` reads a non-conv/dense leaf module into a plain dict, :func:`make` builds a native module
from a plain spec (see :mod:`lrd_core.reduce.native` for the kinds), :func:`input_gradients` gives
vector-Jacobian products of a model's output with respect to its input. The same three exist in
:mod:`lrd_mindspore.reduced` and must agree with them and with the NumPy references of
:mod:`lrd_core.reduce`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from lrd_core.errors import UnsupportedLayerError
from lrd_core.layers import SubLayer

__all__ = ["describe", "make", "input_gradients", "Residual", "PolyFeatures", "ASNetHead"]


def _pair(v) -> Tuple[int, int]:
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


# ---------------------------------------------------------------------------- describe
def _batchnorm(m) -> dict:
    if m.running_mean is None or not m.track_running_stats:
        return {"op": "unknown", "type": type(m).__name__, "why": "batch norm without running statistics"}
    n = m.num_features
    w = m.weight.detach().cpu().double().numpy() if m.weight is not None else np.ones(n)
    b = m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(n)
    return {"op": "batchnorm", "eps": float(m.eps), "gamma": w, "beta": b,
            "mean": m.running_mean.detach().cpu().double().numpy(),
            "var": m.running_var.detach().cpu().double().numpy()}


def _maxpool(m) -> dict:
    if m.ceil_mode or _pair(m.dilation) != (1, 1) or m.return_indices:
        return {"op": "unknown", "type": "MaxPool2d", "why": "ceil_mode, dilation or return_indices"}
    ph, pw = _pair(m.padding)
    return {"op": "maxpool", "kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size),
            "padding": (ph, ph, pw, pw)}


def _avgpool(m) -> dict:
    if m.ceil_mode or not m.count_include_pad and _pair(m.padding) != (0, 0) or m.divisor_override:
        return {"op": "unknown", "type": "AvgPool2d", "why": "ceil_mode, divisor_override or count_include_pad"}
    ph, pw = _pair(m.padding)
    return {"op": "avgpool", "kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size),
            "padding": (ph, ph, pw, pw)}


def _adaptive(m) -> dict:
    size = _pair(m.output_size) if m.output_size is not None else None
    return {"op": "global_avgpool"} if size == (1, 1) else {"op": "unknown", "type": "AdaptiveAvgPool2d",
                                                              "why": f"output size {m.output_size} is not 1x1"}


def _flatten(m) -> dict:
    return {"op": "flatten"} if m.start_dim == 1 and m.end_dim == -1 else \
        {"op": "unknown", "type": "Flatten", "why": f"start_dim={m.start_dim}, end_dim={m.end_dim}"}


def _leaky(m) -> dict:
    return {"op": "act", "fn": "leaky_relu"} if abs(m.negative_slope - 0.01) < 1e-12 else \
        {"op": "unknown", "type": "LeakyReLU", "why": f"negative_slope={m.negative_slope} (only 0.01)"}


#: module class -> reader of what it computes (first match in order, subclasses included).
DESCRIBERS: List[Tuple[type, Callable]] = [
    (nn.modules.batchnorm._BatchNorm, _batchnorm), (nn.MaxPool2d, _maxpool), (nn.AvgPool2d, _avgpool),
    (nn.AdaptiveAvgPool2d, _adaptive), (nn.Flatten, _flatten), (nn.LeakyReLU, _leaky),
    (nn.ReLU, lambda m: {"op": "act", "fn": "relu"}), (nn.ReLU6, lambda m: {"op": "act", "fn": "relu6"}),
    (nn.Tanh, lambda m: {"op": "act", "fn": "tanh"}), (nn.Sigmoid, lambda m: {"op": "act", "fn": "sigmoid"}),
    (nn.Identity, lambda m: {"op": "identity"}), (nn.Dropout, lambda m: {"op": "identity"}),
]


def describe(module: nn.Module) -> dict:
    """What a leaf module computes, as a plain dict (``op`` key); ``{"op": "unknown", ...}`` otherwise."""
    for cls, reader in DESCRIBERS:
        if isinstance(module, cls):
            if type(module).forward is not cls.forward:
                break
            return reader(module)
    return {"op": "unknown", "type": type(module).__name__}


# ---------------------------------------------------------------------------- native modules
class Residual(nn.Module):
    """``act(main(x) + shortcut(x))``; no shortcut module means the identity path."""

    def __init__(self, main: nn.Module, shortcut: Optional[nn.Module], act: nn.Module):
        super().__init__()
        self.main = main
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.act = act

    def forward(self, x):
        return self.act(self.main(x) + self.shortcut(x))


class PolyFeatures(nn.Module):
    """Monomials of ``z`` (N, r) from a gather table (T-1, d) into ``[1, z]``: ``prod_q f_q(z)`` with
    ``f_q = z[:, j_q] * a_q + b_q`` (``a_q = 0, b_q = 1`` where the table holds the constant).

    Gathers, multiplies and adds only, so every exporter keeps it exact; no parameters."""

    def __init__(self, index: np.ndarray):
        super().__init__()
        index = np.asarray(index, dtype=np.int64)
        self.degree = int(index.shape[1])
        for q in range(self.degree):
            col = index[:, q]
            self.register_buffer(f"j{q}", torch.as_tensor(np.maximum(col - 1, 0)), persistent=False)
            self.register_buffer(f"a{q}", torch.as_tensor((col > 0).astype(np.float32)), persistent=False)
            self.register_buffer(f"b{q}", torch.as_tensor((col == 0).astype(np.float32)), persistent=False)

    def forward(self, z):
        out = None
        for q in range(self.degree):
            f = torch.index_select(z, 1, getattr(self, f"j{q}")) * getattr(self, f"a{q}") + getattr(self, f"b{q}")
            out = f if out is None else out * f
        return out


class ASNetHead(nn.Module):
    """Flatten -> ``projection`` Dense (D -> r) -> ``norm`` BatchNorm1d (the standardisation of z) ->
    :class:`PolyFeatures` -> ``output`` Dense (T-1 -> K)."""

    def __init__(self, features: int, dim: int, index: np.ndarray, outputs: int, eps: float = 1e-5):
        super().__init__()
        self.flatten = nn.Flatten()
        self.projection = nn.Linear(features, dim)
        self.norm = nn.BatchNorm1d(dim, eps=eps)
        self.poly = PolyFeatures(index)
        self.output = nn.Linear(len(index), outputs)

    def forward(self, x):
        return self.output(self.poly(self.norm(self.projection(self.flatten(x)))))


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _layer(spec: dict, like) -> nn.Module:
    from .backend import BACKEND
    return BACKEND._layer(spec["sub"], None, torch.float32)


def _batchnorm_module(spec: dict, like) -> nn.Module:
    cls = nn.BatchNorm2d if spec.get("dims", 4) == 4 else nn.BatchNorm1d
    m = cls(len(spec["gamma"]), eps=float(spec["eps"]),
            momentum=getattr(like, "momentum", 0.1) if like is not None else 0.1)
    with torch.no_grad():
        for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "mean"), ("running_var", "var")):
            getattr(m, attr).copy_(_t(spec[key]))
    return m


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity,
         "leaky_relu": lambda: nn.LeakyReLU(0.01)}


def _maxpool_module(spec: dict, like) -> nn.Module:
    t, b, l, r = spec["padding"]
    if t != b or l != r:
        raise UnsupportedLayerError(f"asymmetric max-pool padding {spec['padding']} has no torch MaxPool2d")
    return nn.MaxPool2d(tuple(spec["kernel"]), tuple(spec["stride"]), padding=(t, l))


def _sequence(spec: dict, like) -> nn.Module:
    return nn.Sequential(OrderedDict(spec["children"]))


def _head(spec: dict, like) -> nn.Module:
    w, wo = spec["projection_weight"], spec["output_weight"]
    head = ASNetHead(w.shape[1], w.shape[0], spec["poly_index"], wo.shape[0], float(spec["norm_eps"]))
    with torch.no_grad():
        for module, attr, key in ((head.projection, "weight", "projection_weight"),
                                  (head.projection, "bias", "projection_bias"), (head.norm, "running_mean", "norm_mean"),
                                  (head.norm, "running_var", "norm_var"), (head.output, "weight", "output_weight"),
                                  (head.output, "bias", "output_bias")):
            getattr(module, attr).copy_(_t(spec[key]))
    return head


#: spec kind -> builder(spec, like) of the native module.
BUILDERS: Dict[str, Callable] = {
    "layer": _layer,
    "chain": lambda spec, like: nn.Sequential(*[_layer({"sub": s}, like) for s in spec["subs"]]),
    "batchnorm": _batchnorm_module,
    "act": lambda spec, like: _ACTS[spec["fn"]](),
    "maxpool": _maxpool_module,
    "global_avgpool": lambda spec, like: nn.AdaptiveAvgPool2d((1, 1)),
    "flatten": lambda spec, like: nn.Flatten(),
    "identity": lambda spec, like: nn.Identity(),
    "sequence": _sequence,
    "residual": lambda spec, like: Residual(spec["main"], spec.get("shortcut"), _ACTS[spec.get("act", "identity")]()),
    "asnet_head": _head,
}


def make(spec: dict, like: Optional[nn.Module] = None) -> nn.Module:
    """The native module of a spec (``kind`` key, see :data:`BUILDERS`), in ``like``'s train mode."""
    if spec["kind"] not in BUILDERS:
        raise UnsupportedLayerError(f"torch cannot build a {spec['kind']!r} module")
    module = BUILDERS[spec["kind"]](spec, like)
    module.train(like.training if like is not None else False)
    return module


# ---------------------------------------------------------------------------- gradients
def input_gradients(model: nn.Module, x: np.ndarray,
                    cotangents: Callable[[np.ndarray], Sequence[np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    """Eval-mode output of ``model`` at ``x`` and ``v^T d out / d x`` for every ``v`` in
    ``cotangents(output)``, stacked (M, *x.shape); parameter gradients are left untouched."""
    was = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(p.device if p is not None else "cpu")
        xt.requires_grad_(True)
        with torch.enable_grad():
            out = model(xt)
            vs = list(cotangents(out.detach().cpu().numpy()))
            grads = [torch.autograd.grad(out, xt, grad_outputs=_t(v).to(out.device),
                                         retain_graph=k + 1 < len(vs))[0] for k, v in enumerate(vs)]
        return out.detach().cpu().numpy(), torch.stack(grads).cpu().numpy()
    finally:
        model.train(was)
