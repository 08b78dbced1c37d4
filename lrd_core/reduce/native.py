"""Native networks from graph ops, and the plain-JSON record that rebuilds them (no framework imports).

Two ways a reduced network becomes native, both through ``backend.make_module(spec)``:

* **in place** (RON): the conv/dense and batch-norm modules whose arrays shrank are replaced, by
  qualified name, in a copy of the model (:func:`replacements`, :func:`apply`); the model keeps its
  class, forward and parameter names, only with fewer channels;
* **built** (ASNet): the ops before the cut become a native sequence (:func:`to_native`: a
  ``residual`` module per :class:`~lrd_core.reduce.graph.Residual`, children named after the original
  modules with ``.`` turned into ``_``), followed by the head.

Spec kinds (what ``make_module`` builds): ``layer`` (``sub``: a SubLayer), ``chain`` (``subs``),
``batchnorm`` (``gamma``, ``beta``, ``mean``, ``var``, ``eps``, ``dims``: 2 or 4), ``act`` (``fn``),
``maxpool`` (``kernel``, ``stride``, ``padding``), ``global_avgpool``, ``flatten``, ``identity``,
``sequence`` (``children``: [(key, module)]), ``residual`` (``main``, ``shortcut`` or None, ``act``),
``asnet_head`` (the arrays of :meth:`~lrd_core.reduce.asnet.ASNetHead.arrays`).

The JSON record (:func:`layer_json`, :func:`bn_json`) keeps shapes only; :func:`skeleton` turns it
back into a spec with zero arrays, so a saved reduced model is rebuilt before its weights are loaded.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, MismatchError
from ..layers import SubLayer
from ..plan import Plan
from .graph import Act, BatchNorm, Flatten, GlobalAvgPool, Linear, MaxPool, Residual

__all__ = ["op_spec", "to_native", "layer_json", "bn_json", "skeleton", "replacements", "apply", "linear_costs",
           "with_reduction"]


def _key(name: str, prefix: str, used: Dict[str, int]) -> str:
    rel = name[len(prefix) + 1:] if prefix and name.startswith(prefix + ".") else name
    key = "".join(ch if ch.isalnum() else "_" for ch in rel).strip("_") or "op"
    used[key] = used.get(key, 0) + 1
    return key if used[key] == 1 else f"{key}_{used[key]}"


def op_spec(backend, op, shape: Tuple[int, ...]) -> dict:
    """The spec of one graph op reading inputs of ``shape`` (no batch axis)."""
    if isinstance(op, Linear):
        return {"kind": "layer", "sub": op.layer}
    if isinstance(op, BatchNorm):
        return {"kind": "batchnorm", "gamma": op.gamma, "beta": op.beta, "mean": op.mean, "var": op.var,
                "eps": op.eps, "dims": len(shape) + 1}
    if isinstance(op, Act):
        return {"kind": "act", "fn": op.fn}
    if isinstance(op, MaxPool):
        return {"kind": "maxpool", "kernel": tuple(op.kernel), "stride": tuple(op.stride or op.kernel),
                "padding": tuple(op.padding)}
    if isinstance(op, GlobalAvgPool):
        return {"kind": "global_avgpool"}
    if isinstance(op, Flatten):
        return {"kind": "flatten"}
    if isinstance(op, Residual):
        return {"kind": "residual", "main": to_native(backend, op.main, shape, op.name),
                "shortcut": to_native(backend, op.shortcut, shape, op.name) if op.shortcut else None,
                "act": op.act}
    raise TypeError(f"no native form for {type(op).__name__}")


def to_native(backend, ops: Sequence, input_shape: Sequence[int], prefix: str = "", tail: Sequence = ()):
    """A native sequence running ``ops`` on inputs of ``input_shape`` (no batch axis), then the
    already-built ``tail`` modules (``[(key, module)]``)."""
    used: Dict[str, int] = {}
    children, shape = [], tuple(int(s) for s in input_shape)
    for op in ops:
        children.append((_key(op.name, prefix, used), backend.make_module(op_spec(backend, op, shape))))
        shape = op.out_shape(shape)
    for key, module in tail:
        children.append((_key(key, "", used), module))
    return backend.make_module({"kind": "sequence", "children": children})


# ---------------------------------------------------------------------------- JSON record
def layer_json(sub: SubLayer) -> dict:
    """Shape and geometry of a conv/dense SubLayer (no arrays)."""
    return {"kind": sub.kind, "shape": [int(s) for s in sub.weight.shape], "bias": sub.bias is not None,
            "stride": list(sub.stride), "padding": list(sub.padding), "dilation": list(sub.dilation),
            "groups": int(sub.groups)}


def bn_json(op: BatchNorm, dims: int) -> dict:
    return {"channels": int(len(op.gamma)), "eps": float(op.eps), "dims": int(dims)}


def _zero_sub(d: dict) -> SubLayer:
    shape = tuple(int(s) for s in d["shape"])
    return SubLayer(d["kind"], np.zeros(shape, np.float32), np.zeros(shape[0], np.float32) if d["bias"] else None,
                    stride=tuple(d["stride"]), padding=tuple(d["padding"]), dilation=tuple(d["dilation"]),
                    groups=int(d["groups"]))


def skeleton(entry: dict) -> dict:
    """A buildable spec (zero arrays) of one JSON replacement entry."""
    kind = entry["kind"]
    if kind == "layer":
        return {"kind": "layer", "sub": _zero_sub(entry["sub"])}
    if kind == "chain":
        return {"kind": "chain", "subs": [_zero_sub(s) for s in entry["subs"]]}
    if kind == "batchnorm":
        c = int(entry["channels"])
        return {"kind": "batchnorm", "gamma": np.ones(c), "beta": np.zeros(c), "mean": np.zeros(c),
                "var": np.ones(c), "eps": entry["eps"], "dims": entry["dims"]}
    raise MismatchError(f"reduction record: unknown replacement kind {kind!r}; the plan was written by a newer lrd")


def _shapes(net: Sequence, shape) -> Dict[str, tuple]:
    """Input shape (no batch) of every op of ``net`` by name, residual blocks included."""
    out = {}
    for op in net:
        out.setdefault(op.name, tuple(shape))
        if isinstance(op, Residual):
            out.update({k: v for k, v in _shapes(op.main, shape).items() if k not in out})
            out.update({k: v for k, v in _shapes(op.shortcut, shape).items() if k not in out})
        shape = op.out_shape(shape)
    return out


def replacements(net: Sequence, input_shape, replaced: Mapping[str, object], appended: Sequence[Linear]
                 ) -> Tuple[List[dict], Dict[str, dict]]:
    """``(json entries, buildable specs by name)`` of the modules RON changed (``RONResult.replaced``);
    the lift layers ``appended`` after the output are chained behind the last layer."""
    shapes = _shapes(net, input_shape)
    entries, specs = [], {}
    last = net[-1].name if net and isinstance(net[-1], Linear) else None
    for name, new in replaced.items():
        if isinstance(new, BatchNorm):
            entries.append({"name": name, "kind": "batchnorm", **bn_json(new, len(shapes[name]) + 1)})
            specs[name] = op_spec(None, new, shapes[name])
        elif appended and name == last:
            subs = [new] + [a.layer for a in appended]
            entries.append({"name": name, "kind": "chain", "subs": [layer_json(s) for s in subs]})
            specs[name] = {"kind": "chain", "subs": subs}
        else:
            entries.append({"name": name, "kind": "layer", "sub": layer_json(new)})
            specs[name] = {"kind": "layer", "sub": new}
    return entries, specs


def apply(backend, model, specs: Mapping[str, dict]) -> None:
    """Replace each named module of ``model`` by the native module of its spec."""
    for name, spec in specs.items():
        backend.replace(model, name, backend.make_module(spec))


def linear_costs(net: Sequence, input_shape) -> Dict[str, Tuple[int, int]]:
    """``{name: (params, MACs per sample)}`` of every conv/dense op of ``net``."""
    out: Dict[str, Tuple[int, int]] = {}
    shape = tuple(input_shape)
    for op in net:
        nxt = op.out_shape(shape)
        if isinstance(op, Residual):
            out.update(linear_costs(op.main, shape))
            out.update(linear_costs(op.shortcut, shape))
        elif isinstance(op, Linear):
            sub = op.layer
            params = int(sub.weight.size) + (int(sub.bias.size) if sub.bias is not None else 0)
            macs = int(sub.weight.size) * (int(np.prod(nxt[1:])) if len(nxt) == 3 else 1)
            out[op.name] = (params, macs)
        shape = nxt
    return out


def with_reduction(plan: Plan, reduced_plan: Plan) -> Plan:
    """Mark ``plan`` (made on a reduced model, e.g. Tucker-2 after RON) as applying on top of
    ``reduced_plan``'s reduction, so that ``save``/``load`` rebuild both; returns ``plan``."""
    if not isinstance(plan, Plan) or not isinstance(reduced_plan, Plan):
        raise ConfigError("with_reduction takes two lrd_core.Plan objects (the decomposition plan, then the plan "
                          "returned by reduce)")
    if "reduction" not in reduced_plan.meta:
        raise ConfigError("reduced_plan is not a plan returned by reduce (it has no reduction record)")
    plan.meta["reduction"] = reduced_plan.meta["reduction"]
    return plan
