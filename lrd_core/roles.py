"""Roles of the conv/dense layers (stem, stage, projection shortcut, final dense) and LayerInfo lists.

Roles come from the structure of one traced example pass (:mod:`lrd_core.trace`), not from names:

- a *block* is an add or concatenation whose inputs come from branches of one tensor (the block
  input) with at least one layer between; the *stem* are the convs that run before the first block
  input is produced;
- the *projection shortcut* of an add block is the single conv on its lighter branch (it may read
  a pooled block input, as in ResNet-D); an identity shortcut has no conv;
- the *stage* starts at 1 with the first block and grows by one at every block whose output is
  spatially smaller than the previous block's (a stride-1 projection such as ResNet-50's first
  block stays in stage 1); a layer outside every block takes the stage of its output size;
- a *final dense* layer is a dense layer whose output reaches the model output with no conv/dense
  in between;
- layers on a gating branch (squeeze-and-excitation, CBAM, attention maps: a branch that runs on a
  pooled or otherwise smaller tensor and multiplies the tensor it left) belong to no stage, like
  the stem;
- in transformers, the attention projections (query/key/value, packed or not, and output), the MLP
  layers and the block index come from the matrix products of the pass (:mod:`lrd_core.vit_roles`).

Module names are only a fallback: for layers that did not run, and for networks without any block
(stages from ``layer<k>``/``stage<k>`` names, else from where the spatial size shrinks). The user
can override any role per layer (:func:`apply_overrides`, the plan's ``roles`` keyword).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .config import names_matching
from .errors import ConfigError, UnknownLayerError
from .layers import LayerInfo, Role
from .trace import Graph, Trace, find_blocks, find_gate_layers, output_size, spatial_size
from . import vit_roles

NOT_RUN = ("did not run on the example input (its weight is used outside the layer's own forward, e.g. a "
           "packed attention projection, or its branch was not taken): it cannot be replaced by a factor chain")

# ---------------------------------------------------------------------------- name rules (fallback)
_STAGE = re.compile(r"(?:^|\.)(?:layer|stage)(\d+)\.")
_DOWNSAMPLE = {"downsample", "shortcut", "down_sample_layer", "down_sample", "proj", "identity_conv"}


def stage_from_name(name: str) -> Optional[int]:
    """Stage index from a ``layer<k>.`` / ``stage<k>.`` path component (k >= 1), else None."""
    m = _STAGE.search(name)
    return int(m.group(1)) if m and int(m.group(1)) >= 1 else None


def downsample_from_name(name: str, kind: str) -> bool:
    return kind == "conv2d" and bool(set(name.split(".")) & _DOWNSAMPLE)


def roles_from_names(layers: Sequence[Tuple[str, str]], order: Optional[Sequence[str]] = None,
                     finals: Optional[Sequence[str]] = None) -> Dict[str, Role]:
    """Roles of ``[(name, kind)]`` from names alone; ``order`` is the run order (default: as given)
    and ``finals`` the final dense layers (default: the last dense layer to run)."""
    kinds = dict(layers)
    order = list(order) if order is not None else [n for n, _ in layers]
    stages = {n: stage_from_name(n) for n in kinds}
    first_conv = next((n for n in order if kinds.get(n) == "conv2d"), None)
    stem = first_conv if first_conv is not None and stages[first_conv] is None else None
    if finals is None:
        dense = [n for n in order if kinds.get(n) == "dense"]
        finals = dense[-1:]
    num = max((s for s in stages.values() if s is not None), default=None)
    return {n: Role(stage=None if n in finals else stages[n], num_stages=num,
                    is_downsample=downsample_from_name(n, k), is_stem=n == stem, is_final_dense=n in finals)
            for n, k in layers}


# ---------------------------------------------------------------------------- structure
def _stages_of_blocks(blocks) -> List[int]:
    stages, stage, previous = [], 0, None
    for b in blocks:
        if stage == 0:
            stage = 1
        elif b.out_size is not None and previous is not None and b.out_size < previous:
            stage += 1
        if b.out_size is not None:
            previous = b.out_size
        stages.append(stage)
    return stages


def _outside_stage(k: int, size: Optional[int], starts: Dict[int, Tuple[int, Optional[int]]],
                   blocks, block_stages) -> int:
    """Stage of a layer node outside every block: the stage of its output size that had started,
    else the stage of the latest block before it."""
    same = [(start, st) for st, (start, sz) in sorted(starts.items()) if size is not None and sz == size]
    if same:
        begun = [st for start, st in same if start < k]
        return begun[-1] if begun else same[0][1]
    before = [st for b, st in zip(blocks, block_stages) if b.merge < k]
    return before[-1] if before else 1


def _roles_from_blocks(graph: Graph, blocks, nodes: Dict[str, int], kinds: Dict[str, str],
                       finals: set) -> Dict[str, Role]:
    block_stages = _stages_of_blocks(blocks)
    num = max(block_stages)
    first_fork = min(b.fork for b in blocks)
    inside: Dict[int, int] = {}
    starts: Dict[int, Tuple[int, Optional[int]]] = {}
    for b, st in zip(blocks, block_stages):
        starts.setdefault(st, (b.fork, b.out_size))
        for k in b.layers:
            inside.setdefault(k, st)
    shortcuts = {b.shortcut for b in blocks if b.shortcut is not None}
    gates = find_gate_layers(graph)
    roles = {}
    for name, k in nodes.items():
        if name in finals:
            roles[name] = Role(num_stages=num, is_final_dense=True)
        elif k in gates:
            roles[name] = Role(num_stages=num)
        elif k <= first_fork and k not in inside:
            roles[name] = Role(num_stages=num, is_stem=kinds[name] == "conv2d")
        else:
            stage = inside.get(k) or _outside_stage(k, output_size(graph, k), starts, blocks, block_stages)
            roles[name] = Role(stage=stage, num_stages=num, is_downsample=k in shortcuts)
    return roles


def _roles_by_size(graph: Graph, nodes: Dict[str, int], kinds: Dict[str, str], finals: set) -> Dict[str, Role]:
    """No block: the first conv is the stem; the stage grows wherever a layer's input shrinks."""
    ordered = sorted(nodes.items(), key=lambda item: item[1])
    stem = next((n for n, _ in ordered if kinds[n] == "conv2d"), None)
    stages, stage, previous = {}, 1, None
    for name, k in ordered:
        shapes = graph.nodes[k].in_shapes
        size = spatial_size(shapes[0]) if shapes else None
        if previous is not None and size is not None and size < previous:
            stage += 1
        if size is not None:
            previous = size
        stages[name] = stage
    num = max(stages.values(), default=None)
    return {n: Role(stage=None if n in finals or n == stem else stages[n], num_stages=num, is_stem=n == stem,
                    is_final_dense=n in finals) for n, _ in ordered}


def infer_roles(trace: Optional[Trace], layers: Sequence[Tuple[str, str]]) -> Dict[str, Role]:
    """Roles of the model's conv/dense layers ``[(name, kind)]`` from a traced example pass.

    Parameters
    ----------
    trace : Trace or None
        The example pass; None uses the name rules only.
    layers : list of (str, str)
        Every conv/dense layer (qualified name, ``conv2d``/``dense``), in definition order.

    Returns
    -------
    dict
        ``{name: Role}``.
    """
    kinds = dict(layers)
    if trace is None:
        return vit_roles.roles_from_names(roles_from_names(layers), layers)
    graph = Graph(trace)
    nodes: Dict[str, int] = {}
    for node in graph.nodes:
        if node.is_layer and node.name in kinds and graph.live[node.index]:
            nodes.setdefault(node.name, node.index)
    finals = {graph.nodes[k].name for k in graph.final_layers() if graph.nodes[k].kind == "dense"}
    blocks = find_blocks(graph)
    ran = [(n, kinds[n]) for n in nodes]
    if blocks:
        roles = _roles_from_blocks(graph, blocks, nodes, kinds, finals)
    elif any(stage_from_name(n) is not None for n in nodes):
        order = sorted(nodes, key=nodes.get)
        roles = roles_from_names(ran, order=order, finals=sorted(finals))
    else:
        roles = _roles_by_size(graph, nodes, kinds, finals)
    roles = vit_roles.transformer_roles(graph, nodes, roles)
    num = next((r.num_stages for r in roles.values()), None)
    by_name = roles_from_names(layers)
    for name, kind in layers:     # layers that did not run: names are all there is
        if name not in roles:
            r = by_name[name]
            stage = r.stage if r.stage is not None and r.stage <= (num or 0) else None
            roles[name] = Role(stage=stage, num_stages=num, is_downsample=r.is_downsample)
    roles = vit_roles.roles_from_names(roles, layers, only=set(kinds) - set(nodes))
    return {n: roles[n] for n, _ in layers}


# ---------------------------------------------------------------------------- user overrides
def _stage_value(pattern: str, value):
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigError(f"roles[{pattern!r}]: stage must be an integer >= 1 (or null for outside the stages), "
                      f"got {value!r}")


def _flag_value(key: str):
    def check(pattern: str, value):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"roles[{pattern!r}]: {key} must be true or false, got {value!r}")
    return check


def _kind_value(pattern: str, value):
    if value is None or value in vit_roles.KINDS:
        return value
    raise ConfigError(f"roles[{pattern!r}]: kind must be one of {', '.join(vit_roles.KINDS)} or null, got {value!r}")


def _part_value(pattern: str, value):
    if value is None or (isinstance(value, str) and value):
        return value
    raise ConfigError(f"roles[{pattern!r}]: part must be a name such as q, k, v, qkv, proj, fc1, fc2 or null, "
                      f"got {value!r}")


def _block_value(pattern: str, value):
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigError(f"roles[{pattern!r}]: block_index must be an integer >= 1 (or null), got {value!r}")


ROLE_FIELDS = {"stage": _stage_value, "is_downsample": _flag_value("is_downsample"),
               "is_stem": _flag_value("is_stem"), "is_final_dense": _flag_value("is_final_dense"),
               "kind": _kind_value, "part": _part_value, "block_index": _block_value}


def validate_overrides(overrides) -> Dict[str, Dict[str, object]]:
    """Check ``{layer_regex: {field: value}}`` (fields: stage, is_downsample, is_stem,
    is_final_dense, kind, part, block_index) and return it as plain dicts; :class:`ConfigError` names what to fix."""
    if overrides is None:
        return {}
    example = "{'layer4\\\\..*': {'stage': 4}, 'head\\\\.fc': {'is_final_dense': True}}"
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"roles takes {{layer_regex: {{field: value}}}}, e.g. {example}; got {overrides!r}")
    out: Dict[str, Dict[str, object]] = {}
    for pattern, fields in overrides.items():
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"roles: the keys are layer names or regular expressions, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"roles: {pattern!r} is not a valid regular expression: {exc}") from None
        if not isinstance(fields, Mapping) or not fields:
            raise ConfigError(f"roles[{pattern!r}] must be a non-empty {{field: value}} mapping with fields "
                              f"{', '.join(ROLE_FIELDS)}; got {fields!r}")
        for key in fields:
            if key not in ROLE_FIELDS:
                raise ConfigError(f"roles[{pattern!r}]: unknown role field {key!r}; use "
                                  f"{', '.join(ROLE_FIELDS)}")
        out[pattern] = {key: ROLE_FIELDS[key](pattern, value) for key, value in fields.items()}
    return out


def apply_overrides(roles: Mapping[str, Role], overrides) -> Dict[str, Role]:
    """``roles`` with the fields of ``overrides = {layer_name_or_regex: {field: value}}`` set.

    Patterns are tried in order (an exact name first, else a full regular-expression match) and a
    pattern matching no layer is an error. When a stage is overridden, ``num_stages`` of every
    layer becomes the highest stage left.
    """
    overrides = validate_overrides(overrides)
    out = dict(roles)
    names = list(out)
    for pattern, fields in overrides.items():
        hits = names_matching(pattern, names)
        if not hits:
            raise UnknownLayerError(f"role override {pattern!r} matches no conv/dense layer of the model (names "
                                    f"look like {', '.join(names[:3])}, ...; list them with `lrd inspect`)")
        for name in hits:
            out[name] = dataclasses.replace(out[name], **fields)
    if any("stage" in fields for fields in overrides.values()):
        num = max((r.stage for r in out.values() if r.stage is not None), default=None)
        out = {n: dataclasses.replace(r, num_stages=num) for n, r in out.items()}
    if any("block_index" in fields for fields in overrides.values()):
        num = max((r.block_index for r in out.values() if r.block_index is not None), default=None)
        out = {n: dataclasses.replace(r, num_blocks=num) for n, r in out.items()}
    return out


def override_layers(layers: Sequence[LayerInfo], overrides) -> List[LayerInfo]:
    """The LayerInfo list with :func:`apply_overrides` applied to the roles."""
    if not overrides:
        return list(layers)
    roles = apply_overrides({l.name: l.role for l in layers}, overrides)
    return [dataclasses.replace(l, role=roles[l.name]) for l in layers]


# ---------------------------------------------------------------------------- LayerInfo from geometry
def _pair(v) -> Tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def resolve_padding(padding, hw, kernel, stride, dilation) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) of ``padding``: ``valid``, ``same`` (output = ceil(input / stride),
    the odd pixel at bottom/right), an int, (ph, pw) or the four sides."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"unknown padding {padding!r}")
        pads = []
        for size, k, s, d in zip(hw, _pair(kernel), _pair(stride), _pair(dilation)):
            total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return tuple(int(p) for p in padding)
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def _positions(shape) -> Tuple[int, int]:
    """Positions a dense layer is applied at, from its input shape (batch, ..., features)."""
    inner = [int(d) for d in (shape or ())[1:-1]]
    if not inner:
        return (1, 1)
    if len(inner) == 2:
        return (inner[0], inner[1])
    return (math.prod(inner), 1)


def layer_infos(trace: Optional[Trace], layers: Sequence[Tuple[str, Mapping]]) -> List[LayerInfo]:
    """The LayerInfo list of a model from its traced example pass and each layer's geometry.

    Parameters
    ----------
    trace : Trace or None
    layers : list of (str, dict)
        ``(qualified name, geometry)`` of every conv/dense layer in definition order. Geometry keys:
        ``kind``, ``in_channels``, ``out_channels``, ``kernel``, ``stride``, ``padding`` (``valid``,
        ``same``, int, pair or four sides), ``dilation``, ``groups``, ``has_bias`` and optionally
        ``unsupported`` (why the adapter cannot replace the layer).

    Returns
    -------
    list of LayerInfo
        Input sizes from the layer's first call; a layer that did not run is marked unsupported.
    """
    roles = infer_roles(trace, [(n, g["kind"]) for n, g in layers])
    calls = trace.layer_calls() if trace is not None else {}
    infos = []
    for name, g in layers:
        call = calls.get(name)
        shape = call.in_shapes[0] if call is not None and call.in_shapes else None
        unsupported = g.get("unsupported") or (None if call is not None or trace is None else NOT_RUN)
        if g["kind"] == "conv2d":
            hw = tuple(shape[-2:]) if shape is not None and len(shape) >= 3 else (1, 1)
            infos.append(LayerInfo(name=name, kind="conv2d", in_channels=g["in_channels"],
                                   out_channels=g["out_channels"], kernel=_pair(g.get("kernel", 1)),
                                   stride=_pair(g.get("stride", 1)),
                                   padding=resolve_padding(g.get("padding", 0), hw, g.get("kernel", 1),
                                                           g.get("stride", 1), g.get("dilation", 1)),
                                   dilation=_pair(g.get("dilation", 1)), groups=int(g.get("groups", 1)),
                                   has_bias=bool(g.get("has_bias", False)), input_hw=hw, role=roles[name],
                                   unsupported=unsupported))
        else:
            infos.append(LayerInfo(name=name, kind="dense", in_channels=g["in_channels"],
                                   out_channels=g["out_channels"], has_bias=bool(g.get("has_bias", False)),
                                   input_hw=_positions(shape), role=roles[name], unsupported=unsupported))
    return infos
