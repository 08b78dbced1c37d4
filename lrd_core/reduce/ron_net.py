"""RON on a whole network description: streams, ranks, selection and the reduced network.

A *stream* is a set of tensors that must share one channel selection. Every conv/dense output
starts a stream; channel-wise ops (BatchNorm, activation, pooling, flatten) keep it; a residual
addition merges the stream of the main branch's output with that of the shortcut. With an
identity shortcut the block input joins too, so the stem output and every block output of a
ResNet stage up to the next projection shortcut form *one residual stream* (the seed's
``V c ~= psi(V_1 c_1 + ... + V_k c_k)`` with a single sampling matrix ``S``). One basis ``V``
is computed from all tensors read from the stream, one selection ``I`` is used by every
*producer* (the stem conv or projection shortcut, each block's last main-branch conv, and the
BatchNorms after them), and the identity paths stay plain identities carrying the kept channels.
Every *consumer* (a conv/dense reading the stream) gets its input side lifted by ``V P``.
Streams that contain the network input cannot be reduced. A reduced output stream gets an extra
lift layer appended to the network (the seed's (K+1)-th layer).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ReductionError, UnsupportedLayerError
from .graph import OUTPUT, BatchNorm, Linear, Residual, output_shape, walk
from .ron import (Basis, activation_basis, budget_ranks, lift_input, lift_layer, select_batchnorm,
                  select_channels, select_output, stream_samples)

__all__ = ["Stream", "RONResult", "trace_streams", "record_points", "network_macs", "ron_reduce"]


@dataclass
class Stream:
    """Tensors sharing one channel selection; named after its first producer."""

    name: str
    channels: int
    producers: List[str] = field(default_factory=list)
    consumers: List[str] = field(default_factory=list)
    batchnorms: List[str] = field(default_factory=list)
    has_input: bool = False
    is_output: bool = False
    # filled by ron_reduce
    rank: Optional[int] = None
    kept: Optional[np.ndarray] = None
    basis: Optional[Basis] = None
    coef: Optional[np.ndarray] = None

    @property
    def lift(self) -> np.ndarray:
        """``V @ P`` (channels x kept): all channels from the kept ones."""
        return self.basis.vectors @ self.coef

    def to_dict(self) -> dict:
        return {"name": self.name, "channels": self.channels, "rank": self.rank,
                "kept": None if self.kept is None else [int(i) for i in self.kept],
                "energy": None if self.basis is None else self.basis.energy,
                "producers": list(self.producers), "consumers": list(self.consumers)}


@dataclass
class _Trace:
    streams: List[Stream]
    linear_io: Dict[str, tuple]        # name -> (in stream, out stream, in_shape, out_shape, macs)
    bn_stream: Dict[str, int]


def _layer_macs(op: Linear, out_shape) -> int:
    return int(op.layer.weight.size) * (int(np.prod(out_shape[1:])) if len(out_shape) == 3 else 1)


def trace_streams(net: Sequence, input_shape: Sequence[int]) -> _Trace:
    """Find the streams of ``net`` for an input of ``input_shape`` (without batch axis)."""
    parent: List[int] = []
    channels: List[int] = []

    def new(c):
        parent.append(len(parent))
        channels.append(int(c))
        return len(parent) - 1

    def find(s):
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    linear_io, bn_raw = {}, {}

    def run(ops, s, shape):
        for op in ops:
            if isinstance(op, Residual):
                s_main, out = run(op.main, s, shape)
                s_short, short = run(op.shortcut, s, shape)
                if out != short:
                    raise ReductionError(f"residual block {op.name!r}: main branch gives {out}, shortcut {short}")
                if channels[find(s_main)] != channels[find(s_short)]:
                    raise ReductionError(f"residual block {op.name!r}: branches disagree on channels")
                parent[find(s_main)] = find(s_short)
                s, shape = find(s_short), out
                continue
            out = op.out_shape(shape)
            if isinstance(op, Linear):
                s_out = new(out[0])
                linear_io[op.name] = (s, s_out, shape, out, _layer_macs(op, out))
                s = s_out
            elif isinstance(op, BatchNorm):
                bn_raw[op.name] = s
            shape = out
        return s, shape

    first = new(input_shape[0])
    last, _ = run(net, first, tuple(input_shape))
    roots = sorted({find(i) for i in range(len(parent))})
    index = {r: i for i, r in enumerate(roots)}
    streams = [Stream("", channels[r]) for r in roots]
    streams[index[find(first)]].has_input = True
    streams[index[find(last)]].is_output = True
    io = {}
    for name, (s_in, s_out, shp_in, shp_out, macs) in linear_io.items():
        i, o = index[find(s_in)], index[find(s_out)]
        io[name] = (i, o, shp_in, shp_out, macs)
        streams[i].consumers.append(name)
        streams[o].producers.append(name)
    bns = {name: index[find(s)] for name, s in bn_raw.items()}
    for name, i in bns.items():
        streams[i].batchnorms.append(name)
    for st in streams:
        st.name = st.producers[0] if st.producers else "<input>"
    return _Trace(streams, io, bns)


def network_macs(net: Sequence, input_shape: Sequence[int]) -> int:
    """MACs of all conv/dense layers of ``net`` for one sample (as :mod:`lrd_core.cost` counts them)."""
    total, shape = 0, tuple(input_shape)
    for op in net:
        out = op.out_shape(shape)
        if isinstance(op, Residual):
            total += network_macs(op.main, shape) + network_macs(op.shortcut, shape)
        elif isinstance(op, Linear):
            total += _layer_macs(op, out)
        shape = out
    return total


def _check_layers(net: Sequence, trace: _Trace, chosen: Sequence[int]) -> None:
    """Unique names; every layer writing or reading a reduced stream must be a plain conv/dense."""
    names = [op.name for op in walk(net) if isinstance(op, (Linear, BatchNorm))]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ReductionError(f"RON: layer names must be unique, repeated: {dup}")
    linears = {op.name: op.layer for op in walk(net) if isinstance(op, Linear)}
    for i in chosen:
        st = trace.streams[i]
        for name in st.producers + st.consumers:
            if linears[name].kind == "conv2d" and linears[name].groups != 1:
                raise UnsupportedLayerError(f"RON: {name!r} is a grouped conv (groups={linears[name].groups}) "
                                            f"touching the stream of {st.name!r}; RON keeps whole channels of "
                                            "plain convs only: leave that stream out (layers=...)")


def _chosen(trace: _Trace, layers) -> List[int]:
    reducible = [i for i, st in enumerate(trace.streams) if st.producers and not st.has_input]
    if layers is None:
        return [i for i in reducible if not trace.streams[i].is_output]
    by_name = {p: i for i in reducible for p in trace.streams[i].producers}
    chosen = []
    for name in layers:
        if name not in by_name:
            known = sorted(by_name)
            raise ReductionError(f"RON: {name!r} is not a conv/dense layer whose output can be reduced; "
                                 f"choose among {known}")
        if by_name[name] not in chosen:
            chosen.append(by_name[name])
    return chosen


def record_points(net: Sequence, input_shape: Sequence[int], layers: Optional[Sequence[str]] = None) -> List[str]:
    """Names whose *inputs* must be recorded on the calibration data (:data:`OUTPUT` = net output)."""
    trace = trace_streams(net, input_shape)
    names = []
    for i in _chosen(trace, layers):
        st = trace.streams[i]
        names += st.consumers + ([OUTPUT] if st.is_output else [])
    return names


def _samples(st: Stream, activations: Mapping[str, np.ndarray], trace: _Trace) -> np.ndarray:
    mats = []
    for c in st.consumers + ([OUTPUT] if st.is_output else []):
        if c not in activations:
            raise ReductionError(f"RON: no calibration activations for the input of {c!r} (stream of "
                                 f"{st.name!r}); record the input of every layer named by "
                                 "lrd_core.reduce.record_points() on the calibration data")
        x = np.asarray(activations[c])
        if c != OUTPUT and tuple(x.shape[1:]) != tuple(trace.linear_io[c][2]):
            raise ReductionError(f"RON: calibration activations for {c!r} have shape {x.shape}, expected "
                                 f"(N,) + {tuple(trace.linear_io[c][2])}; check input_shape and the data")
        mats.append(stream_samples(x, st.channels, name=f"input of {c!r}"))
    return np.concatenate(mats, axis=0)


@dataclass
class RONResult:
    """The reduced network (same op structure, smaller arrays) and what was kept per stream."""

    net: List
    streams: List[Stream]
    macs_before: int
    macs_after: int
    replaced: Dict[str, object]
    appended: List[Linear]

    def to_dict(self) -> dict:
        """Plain-data record for a plan: kept channels per stream, ranks, energies, MACs."""
        return {"method": "ron", "macs_before": self.macs_before, "macs_after": self.macs_after,
                "streams": [s.to_dict() for s in self.streams],
                "appended": [a.name for a in self.appended]}


def _rebuild(ops, trace: _Trace, reduced: Dict[int, Stream], replaced: dict) -> list:
    out = []
    for op in ops:
        if isinstance(op, Residual):
            new = Residual(op.name, _rebuild(op.main, trace, reduced, replaced),
                           _rebuild(op.shortcut, trace, reduced, replaced), op.act)
        elif isinstance(op, Linear):
            s_in, s_out = trace.linear_io[op.name][:2]
            sub = op.layer
            if s_in in reduced:
                sub = lift_input(sub, reduced[s_in].lift)
            if s_out in reduced:
                sub = select_output(sub, reduced[s_out].kept)
            new = Linear(op.name, sub)
            if sub is not op.layer:
                replaced[op.name] = sub
        elif isinstance(op, BatchNorm) and trace.bn_stream[op.name] in reduced:
            new = select_batchnorm(op, reduced[trace.bn_stream[op.name]].kept)
            replaced[op.name] = new
        else:
            new = copy.copy(op)
        out.append(new)
    return out


def ron_reduce(net: Sequence, activations: Mapping[str, np.ndarray], input_shape: Sequence[int],
               layers: Optional[Sequence[str]] = None, ranks: Union[int, Mapping[str, int], None] = None,
               energy: Optional[float] = None, flop_budget: Optional[float] = None, tol: float = 1.05,
               max_rows: Optional[int] = None, randomized: bool = True, seed: int = 0) -> RONResult:
    """Reduce the chosen streams of ``net`` from recorded calibration activations.

    Parameters
    ----------
    net : list of ops (:mod:`lrd_core.reduce.graph`)
    activations : mapping
        Input tensor of every consumer layer named by :func:`record_points` (and :data:`OUTPUT`).
    input_shape : (C, H, W) or (F,)
    layers : list of str, optional
        Producer names of the streams to reduce (any producer names its whole residual stream);
        default: every reducible stream except the network output.
    ranks, energy, flop_budget
        At most one: a rank for all streams or per producer name; the energy fraction kept per
        stream (default 0.95); or the fraction of the original conv/dense MACs allowed (ranks
        by :func:`~lrd_core.reduce.ron.budget_ranks`, square selection so kept channels = rank).
    tol, max_rows
        :func:`~lrd_core.reduce.maxvol.rect_maxvol` tolerance and cap on kept channels per stream.
    """
    given = [k for k, v in (("ranks", ranks), ("energy", energy), ("flop_budget", flop_budget)) if v is not None]
    if len(given) > 1:
        raise ReductionError(f"RON: give only one of ranks=, energy=, flop_budget= (got {', '.join(given)})")
    if not given:
        energy = 0.95
    if flop_budget is not None and not 0 < flop_budget <= 1:
        raise ReductionError(f"RON: flop_budget is the fraction of MACs kept, in (0, 1]; got {flop_budget!r}")
    trace = trace_streams(net, input_shape)
    chosen = _chosen(trace, layers)
    _check_layers(net, trace, chosen)
    out_idx = next(i for i, st in enumerate(trace.streams) if st.is_output)
    if isinstance(ranks, Mapping):
        known = {p for i in chosen for p in trace.streams[i].producers}
        unknown = sorted(set(ranks) - known)
        if unknown:
            raise ReductionError(f"RON: ranks= names {unknown}, which are not reduced layers; use {sorted(known)}")
    macs_before = network_macs(net, input_shape)
    reduced: Dict[int, Stream] = {}
    for i in chosen:
        st = trace.streams[i]
        x = _samples(st, activations, trace)
        label = f"RON stream of {st.name!r}"
        if flop_budget is not None:
            st.basis = activation_basis(x, rank=min(x.shape), randomized=randomized, seed=seed, name=label)
        elif ranks is not None:
            r = ranks if isinstance(ranks, int) else next((ranks[p] for p in st.producers if p in ranks), None)
            if r is None:
                raise ReductionError(f"RON: no rank for {st.name!r} in ranks=; give one per reduced layer")
            st.basis = activation_basis(x, rank=r, randomized=randomized, seed=seed, name=label)
        else:
            st.basis = activation_basis(x, energy=energy, randomized=randomized, seed=seed, name=label)
        reduced[i] = st
    if flop_budget is not None:
        pos = {i: k for k, i in enumerate(chosen)}
        terms = [(pos.get(o, -1), shp[0], pos.get(s, -1), trace.streams[s].channels,
                  macs / (shp[0] * trace.streams[s].channels)) for s, o, _, shp, macs in trace.linear_io.values()]
        out_shape = output_shape(net, input_shape)
        if out_idx in pos:                       # the lift layer appended after a reduced output
            c = trace.streams[out_idx].channels
            terms.append((-1, c, pos[out_idx], c, float(np.prod(out_shape[1:]))))
        fracs = [reduced[i].basis.fractions() for i in chosen]
        for i, r in zip(chosen, budget_ranks(fracs, terms, flop_budget * macs_before)):
            b = reduced[i].basis
            b.vectors = b.vectors[:, :r]
    for i, st in reduced.items():
        st.rank = st.basis.rank
        st.kept, st.coef = select_channels(st.basis.vectors, tol=tol, max_rows=max_rows,
                                           square=flop_budget is not None)
    replaced: Dict[str, object] = {}
    new_net = _rebuild(net, trace, reduced, replaced)
    appended = []
    if out_idx in reduced:
        kind = "conv2d" if len(output_shape(net, input_shape)) == 3 else "dense"
        like = next(op.layer.weight for op in walk(net)
                    if isinstance(op, Linear) and op.name == reduced[out_idx].producers[0])
        appended.append(Linear(f"{reduced[out_idx].name}.ron_lift", lift_layer(reduced[out_idx].lift, kind, like)))
        new_net.extend(appended)
    macs_after = network_macs(new_net, input_shape)
    return RONResult(new_net, [reduced[i] for i in chosen], macs_before, macs_after, replaced, appended)
