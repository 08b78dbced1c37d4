"""Read a native model into the plain-data network of :mod:`lrd_core.reduce.graph`.

The model runs once on an example input (the structural trace of :mod:`lrd_core.trace`); every
recorded operation becomes graph ops: conv/dense layers (geometry and weights through the backend),
leaf modules the backend can describe (batch norm, ReLU-family activations, max/average pooling,
global average pooling, flatten, identity/dropout) and the functions called between modules that
matter here (additions, flatten/reshape to (N, features), global means, ReLU/tanh/sigmoid). The
dataflow is replayed from tensor identities: an addition of two tensors that branch off one tensor
becomes a :class:`~lrd_core.reduce.graph.Residual` (main branch = the one with more conv/dense
layers; an empty branch is the identity shortcut) named after the module that ran the addition.

**Supported networks**: chains of those operations with residual additions, i.e. plain sequential
CNNs and MLPs and ResNet-style networks (lrd's own ResNets, torchvision/ModelZoo-style ones).
Concatenations, gating multiplications, attention, grouped-conv streams, modules that override
their class' forward and anything else the trace cannot follow are refused with one clear error;
:func:`check` compares the description with the native model on real inputs, so a model that
computes something the trace did not show is refused too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ReductionError
from ..layers import LayerInfo, SubLayer
from ..trace import LAYER_KINDS
from .graph import Act, BatchNorm, Flatten, GlobalAvgPool, Linear, MaxPool, Residual, forward

__all__ = ["Converted", "convert", "check", "SUPPORTED", "FUNCTION_OPS", "MODULE_OPS"]

SUPPORTED = ("conv2d/dense layers, batch norm, ReLU/ReLU6/LeakyReLU(0.01)/tanh/sigmoid, max pooling, global "
             "average pooling, flatten, identity/dropout and residual additions (plain CNNs/MLPs and ResNets)")


@dataclass
class Converted:
    """A model read into graph ops: ``net`` for inputs of ``input_shape`` (C, H, W) (no batch axis),
    ``infos`` the LayerInfo of every conv/dense layer by name."""

    net: list
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    infos: Dict[str, LayerInfo] = field(default_factory=dict)


@dataclass
class _Node:
    ops: list
    parents: Tuple[int, ...]
    merge: bool = False
    scope: str = ""
    name: str = ""


def _refuse(name: str, what: str) -> ReductionError:
    return ReductionError(f"reduce: {name!r} ({what}) is not supported; RON/ASNet read networks made of "
                          f"{SUPPORTED}")


# ---------------------------------------------------------------------------- module ops
def _pool_op(name: str, d: dict, shape) -> list:
    from ..roles import resolve_padding

    kernel, stride = tuple(d["kernel"]), tuple(d.get("stride") or d["kernel"])
    pad = tuple(resolve_padding(d["padding"], tuple(shape[2:]), kernel, stride, 1))   # "same" needs the size
    if d["op"] == "maxpool":
        return [MaxPool(name, kernel, stride, pad)]
    if len(shape) == 4 and kernel == tuple(shape[2:]) and not any(pad):
        return [GlobalAvgPool(name)]
    raise _refuse(name, f"average pooling {kernel}/{stride} that is not global")


def _bn_op(name: str, d: dict, shape) -> list:
    return [BatchNorm(name, np.asarray(d["gamma"], np.float64), np.asarray(d["beta"], np.float64),
                      np.asarray(d["mean"], np.float64), np.asarray(d["var"], np.float64), float(d["eps"]))]


#: ``describe_module()["op"]`` -> graph ops of that module (name, description, input shape with batch).
MODULE_OPS: Dict[str, Callable[[str, dict, tuple], list]] = {
    "batchnorm": _bn_op,
    "act": lambda name, d, shape: [Act(name, d["fn"])],
    "maxpool": _pool_op,
    "avgpool": _pool_op,
    "global_avgpool": lambda name, d, shape: [GlobalAvgPool(name)],
    "flatten": lambda name, d, shape: [Flatten(name)],
    "identity": lambda name, d, shape: [],
}


# ---------------------------------------------------------------------------- function ops
def _flatten_fn(name, shape, out) -> list:
    if tuple(out) == tuple(shape):
        return []
    if len(shape) >= 2 and len(out) == 2 and out[1] == math.prod(shape[1:]):
        return [Flatten(name)]
    raise _refuse(name, f"reshape {tuple(shape)} -> {tuple(out)}")


def _mean_fn(name, shape, out) -> list:
    if len(shape) == 4 and tuple(out) == (shape[0], shape[1], 1, 1):
        return [GlobalAvgPool(name)]
    if len(shape) == 4 and tuple(out) == (shape[0], shape[1]):
        return [GlobalAvgPool(name), Flatten(name)]
    raise _refuse(name, f"mean/pooling {tuple(shape)} -> {tuple(out)} that is not a global average")


def _same(name, shape, out) -> list:
    if tuple(out) != tuple(shape):
        raise _refuse(name, f"{tuple(shape)} -> {tuple(out)}")
    return []


#: short lower-case function name -> graph ops (name, input shape, output shape), batch axis included.
FUNCTION_OPS: Dict[str, Callable] = {
    **{k: _flatten_fn for k in ("flatten", "reshape", "view", "squeeze")},
    **{k: _mean_fn for k in ("mean", "reducemean", "adaptive_avg_pool2d", "avg_pool2d", "globalavgpooling")},
    **{k: (lambda fn: lambda name, shape, out: [Act(name, fn)])(fn)
       for k, fn in (("relu", "relu"), ("relu_", "relu"), ("tanh", "tanh"), ("sigmoid", "sigmoid"))},
    **{k: _same for k in ("contiguous", "clone", "dropout", "float", "to", "astype", "cast", "detach")},
}


# ---------------------------------------------------------------------------- conversion
def _linear(name: str, info: LayerInfo, backend, layer) -> Linear:
    if info.unsupported:
        raise _refuse(name, info.unsupported)
    bias = backend.bias(layer)
    w = np.asarray(backend.weight(layer), np.float64)
    if info.kind == "dense":
        return Linear(name, SubLayer("dense", w, None if bias is None else np.asarray(bias, np.float64)))
    return Linear(name, SubLayer("conv2d", w, None if bias is None else np.asarray(bias, np.float64),
                                 stride=info.stride, padding=info.padding, dilation=info.dilation, groups=info.groups))


def _translate(backend, model, op, infos, layers) -> Tuple[list, bool]:
    """(graph ops, is_merge) of one recorded operation."""
    shape = op.in_shapes[0] if op.in_shapes else ()
    out = op.out_shapes[0] if op.out_shapes else ()
    if op.kind in LAYER_KINDS:
        if op.name not in infos:
            raise _refuse(op.name, f"a {op.kind} layer the adapter does not list")
        return [_linear(op.name, infos[op.name], backend, layers[op.name])], False
    desc = backend.describe_module(model, op.name)
    if desc is not None:
        kind = str(desc.get("type", "")).lower()
        if desc["op"] == "unknown" and "avg" in kind and "pool" in kind and not desc.get("why"):
            desc = {"op": "global_mean"}           # a zoo's own global-average-pool cell (checked by shape)
        if desc["op"] == "global_mean":
            ops = _mean_fn(op.name, shape, out)
        elif desc["op"] not in MODULE_OPS:
            raise _refuse(op.name, desc.get("type", desc["op"]) + (f": {desc['why']}" if desc.get("why") else ""))
        else:
            ops = MODULE_OPS[desc["op"]](op.name, desc, shape)
    else:
        if op.kind == "add":
            if len(op.inputs) == 2 and tuple(op.in_shapes[0]) == tuple(op.in_shapes[1]) == tuple(out):
                return [], True
            raise _refuse(op.name, "an addition that is not of two activations of one shape")
        key = op.name.rsplit(".", 1)[-1].lower()
        if key not in FUNCTION_OPS:
            raise _refuse(op.name, f"a {op.kind} operation")
        ops = FUNCTION_OPS[key](op.name, shape, out)
    got = tuple(shape[1:])
    for g in ops:
        got = g.out_shape(got)
    if ops and got != tuple(out[1:]):
        raise _refuse(op.name, f"gives {tuple(out[1:])} where its description gives {got}")
    return ops, False


def _replay(backend, model, trace, infos, layers) -> Tuple[List[_Node], int]:
    nodes = [_Node([], (), name="<input>")]
    producer = {t: 0 for t in trace.inputs}
    scopes: List[str] = []
    for op in trace.ops:
        if op.kind == "enter":
            scopes.append(op.name)
            continue
        if op.kind == "exit":
            if scopes:
                scopes.pop()
            continue
        unknown = [t for t in op.inputs if t not in producer]
        if unknown or not op.inputs:
            raise ReductionError(f"reduce: the data flow cannot be followed at {op.name!r}: it reads a tensor made "
                                 "by an operation the trace does not show; RON/ASNet read networks made of "
                                 f"{SUPPORTED}")
        parents = tuple(producer[t] for t in op.inputs)
        ops, merge = _translate(backend, model, op, infos, layers)
        if not ops and not merge and len(parents) == 1:
            for t in op.outputs:
                producer[t] = parents[0]
            continue
        if not merge and len(set(parents)) != 1:
            raise _refuse(op.name, f"an operation reading {len(parents)} tensors")
        nodes.append(_Node(ops, parents if merge else parents[:1], merge, scopes[-1] if scopes else "", op.name))
        for t in op.outputs:
            producer[t] = len(nodes) - 1
    if len(trace.outputs) != 1 or trace.outputs[0] not in producer:
        raise ReductionError(f"reduce: the model returns {len(trace.outputs)} tensors; RON/ASNet need one output "
                             "tensor (the logits)")
    return nodes, producer[trace.outputs[0]]


def _count_linear(ops) -> int:
    return sum(1 if isinstance(o, Linear) else _count_linear(o.main) + _count_linear(o.shortcut)
               if isinstance(o, Residual) else 0 for o in ops)


class _Builder:
    def __init__(self, nodes: List[_Node]):
        self.nodes = nodes
        self.names: Dict[str, int] = {}
        self.anc: List[int] = []
        for k, n in enumerate(nodes):
            mask = 1 << k
            for p in n.parents:
                mask |= self.anc[p]
            self.anc.append(mask)

    def _name(self, node: _Node) -> str:
        base = node.scope or "residual"
        self.names[base] = self.names.get(base, 0) + 1
        return base if self.names[base] == 1 and node.scope else f"{base}#{self.names[base]}"

    def chain(self, stop: int, node: int) -> list:
        out = []
        while node != stop:
            if node < stop:
                raise ReductionError("reduce: the network is not a chain of blocks (a branch leaves the "
                                     f"middle of another one); RON/ASNet read networks made of {SUPPORTED}")
            n = self.nodes[node]
            if n.merge:
                a, b = n.parents
                common = self.anc[a] & self.anc[b]
                fork = common.bit_length() - 1
                branches = [self.chain(fork, p) for p in (a, b)]
                swap = _count_linear(branches[1]) > _count_linear(branches[0])
                main, short = branches[::-1] if swap else branches
                out.append(Residual(self._name(n), main, short, "identity"))
                node = fork
            else:
                out.extend(reversed(n.ops))
                node = n.parents[0]
        return list(reversed(out))


def convert(backend, model, input_shape: Sequence[int], infos: Optional[Sequence[LayerInfo]] = None) -> Converted:
    """The graph ops of ``model`` from one example pass at ``input_shape`` (N, C, H, W).

    Raises
    ------
    ReductionError
        An operation outside the supported set, or a structure other than a chain with residual blocks.
    """
    from .. import roles

    shape = tuple(int(v) for v in input_shape)
    trace = backend.record(model, (1,) + shape[1:])
    layers = dict(backend.named_layers(model))
    if infos is None:
        infos = roles.layer_infos(trace, [(n, backend.geometry(m)) for n, m in layers.items()])
    by_name = {i.name: i for i in infos}
    nodes, out = _replay(backend, model, trace, by_name, layers)
    net = _Builder(nodes).chain(0, out)
    names = [o.name for o in _walk(net) if isinstance(o, (Linear, BatchNorm))]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ReductionError(f"reduce: layers {dup} run more than once (shared weights); RON/ASNet need every "
                             "conv/dense/batch-norm module to run once")
    out_shape = tuple(trace.output_shapes[0][1:])
    return Converted(net, shape[1:], out_shape, by_name)


def _walk(ops):
    for o in ops:
        yield o
        if isinstance(o, Residual):
            yield from _walk(o.main)
            yield from _walk(o.shortcut)


def check(backend, model, conv: Converted, x: np.ndarray, rtol: float = 1e-4) -> float:
    """Relative difference between the native model and its description on the batch ``x``; a
    ReductionError when above ``rtol`` (the model computes something the trace did not show)."""
    ref = np.asarray(backend.forward(model, x), np.float64)
    got = forward(conv.net, np.asarray(x, np.float64))
    if got.shape != ref.shape:
        raise ReductionError(f"reduce: the description of the model gives outputs {got.shape}, the model "
                             f"{ref.shape}; its forward does something the trace does not show")
    err = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
    if not err <= rtol:
        raise ReductionError(f"reduce: the description of the model differs from it by {err:.1e} (relative) on "
                             "calibration data: its forward computes something the trace does not show; RON/ASNet "
                             f"read networks made of {SUPPORTED}")
    return err

